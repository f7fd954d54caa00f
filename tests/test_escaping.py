"""Names from the dataset or a judge reach terminals and Markdown as text: escape sequences are
shown, not obeyed; rich markup is printed as typed; Markdown gets no raw HTML."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from test_runner import subprocess_cmd
from test_runner_cli import run_cli

from benchmark.reporting.escape import for_markdown, for_rich, for_terminal

OSC52 = "\x1b]52;c;ZXZpbA==\x07"  # writes "evil" to the clipboard of many terminals
NASTY = f"Data{OSC52}\x1b[2J<img src=x onerror=alert(1)>[bold red]loud[/bold red]|\u202ecod"


SCENARIO = NASTY.replace("[/bold red]", "")  # a category path has no other '/'


def test_terminal_text_shows_control_characters() -> None:
    out = for_terminal(NASTY)
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "\\x1b]52;c;ZXZpbA==\\x07" in out and "\\u202e" in out
    assert for_terminal("a\nb") == "a\nb" and for_terminal("a\nb", keep_newlines=False) == "a\\nb"


def test_markdown_gets_no_html_and_no_column_break() -> None:
    cell = for_markdown(NASTY + "\nnext")
    assert "<" not in cell and ">" not in cell and "\n" not in cell and "\x1b" not in cell
    assert "&lt;img" in cell and "\\|" in cell


def test_rich_prints_markup_as_typed() -> None:
    buf = io.StringIO()
    Console(file=buf, width=200).print(for_rich(NASTY))
    assert "[bold red]loud[/bold red]" in buf.getvalue() and "\x1b" not in buf.getvalue()


def write_nasty_items(path: Path, n: int) -> Path:
    lines = [
        {
            "pair_uid": f"p{i}",
            "category_path": f"Pairwise_set/Helpfulness/Code/{SCENARIO}",
            "conversation_input": [{"role": "user", "content": f"Question {i}"}],
            "chosen": {"llm_name": f"m{OSC52}<b>", "answer": f"Use sorted() ({i})."},
            "reject": {"llm_name": "b[red]x[/red]", "answer": f"Impossible ({i})."},
        }
        for i in range(n)
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


def test_names_from_the_data_reach_reports_and_terminals_escaped(
    loopback: Any, tmp_path: Path
) -> None:
    data = write_nasty_items(tmp_path / "items.jsonl", 6)
    for rid, tpl in (("a", "pairwise"), ("b", "pairwise-tie")):
        r = run_cli(subprocess_cmd(loopback, data, tmp_path, "--run-id", rid, "--template", tpl))
        assert r.returncode == 0, r.stderr
        assert "\x1b" not in r.stdout + r.stderr
        md = (tmp_path / "runs" / rid / "report.md").read_text()
        assert "\x1b" not in md and "<img" not in md and "<b>" not in md, md
    runs = [str(tmp_path / "runs" / x) for x in "ab"]
    out = tmp_path / "cmp"
    r = run_cli([sys.executable, "-m", "benchmark.cli", "compare", *runs, "--out", str(out)])
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout + r.stderr and "\\x1b]52" in r.stdout
    for p in out.glob("*.md"):
        text = p.read_text()
        assert "\x1b" not in text and "<img" not in text
    r = run_cli([sys.executable, "-m", "benchmark.cli", "data", "stats", "--data", str(data)])
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout and "\\x1b]52" in r.stdout
    assert "[bold" in r.stdout and "red]loud" in r.stdout  # printed as typed (wrapped)
