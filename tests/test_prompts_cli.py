"""`rmb templates ...` and `rmb parse` through the real CLI entry point."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.data import BoNItem, PairwiseItem, load
from judges.base import Completion
from prompts.parsers import parse

CORPUS = Path(__file__).parent / "judge_outputs" / "corpus.jsonl"
REPO = Path(__file__).resolve().parent.parent


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "templates", "list")
    assert code == 0
    rows = [line.split() for line in out.splitlines()]
    assert [r[0] for r in rows][:2] == ["listwise", "pairwise"] and len(rows) == 8
    assert rows[4][:3] == ["pairwise-logprob", "pairwise", "logprob-ab"]
    code, out, _ = run(capsys, "templates", "show", "pairwise-logprob")
    assert code == 0
    assert "max_tokens=1 top_logprobs=5" in out and "{% block user %}" in out


def test_render_pairwise_item(capsys: pytest.CaptureFixture[str], rmb_dir: Path) -> None:
    f = rmb_dir / "Pairwise_set/Harmlessness/S9.json"
    item = next(it for it in load(f) if isinstance(it, PairwiseItem) and len(it.conversation) == 5)
    number = item.uid.split(":")[1]
    code, out, _ = run(
        capsys, "templates", "render", "pairwise-goal", "--item", item.uid, "--data", str(f)
    )
    assert code == 0
    assert "A = chosen, B = rejected" in out and "harmlessness" in out
    assert out.index(item.chosen.text) < out.index(item.rejected.text)
    # the bare number works when only one set has it (a single file holds only pairwise items)
    code, out2, _ = run(
        capsys, "templates", "render", "pairwise-goal", "--item", number, "--data", str(f)
    )
    assert (code, out2) == (0, out)


def test_render_bon_listwise_and_loser(capsys: pytest.CaptureFixture[str], rmb_dir: Path) -> None:
    f = rmb_dir / "BoN_set/Harmlessness/S3.json"
    item = next(it for it in load(f) if isinstance(it, BoNItem) and len(it.losers) == 6)
    code, out, _ = run(
        capsys, "templates", "render", "listwise", "--item", item.uid, "--data", str(f), "--json"
    )
    assert code == 0
    got = json.loads(out)
    assert got["shown"] == ["best", *(f"loser{i}" for i in range(1, 7))]
    user = got["messages"][-1]["content"]
    for r in (item.best, *item.losers):
        assert user.count(r.text) == 1
    code, out, _ = run(capsys, "templates", "render", "pairwise", "--item", item.uid, "--data", str(f),
                       "--loser", "6", "--json")  # fmt: skip
    assert json.loads(out)["shown"] == ["best", "loser6"]
    code, _, err = run(
        capsys,
        "templates",
        "render",
        "pairwise",
        "--item",
        item.uid,
        "--data",
        str(f),
        "--loser",
        "7",
    )
    assert code == 2 and "--loser 7" in err
    code, out, _ = run(capsys, "templates", "render", "pointwise", "--item", item.uid, "--data", str(f),
                       "--candidate", "loser2", "--json")  # fmt: skip
    assert json.loads(out)["shown"] == ["loser2"]


def test_render_ambiguous_number(capsys: pytest.CaptureFixture[str], rmb_dir: Path) -> None:
    # bon:3294 and pair:3294 both exist in the full dataset
    code, _, err = run(
        capsys, "templates", "render", "pairwise", "--item", "3294", "--data", str(rmb_dir)
    )
    assert code == 2
    assert (
        err.strip()
        == "rmb: error: --item 3294 is ambiguous: pair:3294 and bon:3294 both exist; give one"
    )


def test_parse_jsonl_agrees_with_library(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [json.loads(line) for line in CORPUS.read_text().splitlines()]
    code, out, _ = run(capsys, "parse", "--template", "pairwise-tie", str(CORPUS))
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == len(rows)
    for row, got in zip(rows, lines, strict=True):
        n = row.get("n_shown", 2)
        v = parse("verdict-abc", Completion.from_dict(row), n)
        assert got["kind"] == v.kind and got.get("choice") == v.choice
        assert got.get("reason", "") == v.reason
        if v.kind == "invalid":
            assert got["reason"]


def test_parse_plain_text_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = 'Reasoning mentions [[A]] first.\n{"winner": "A"}\n\n**Final verdict:** [[ b ]]\n'
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    code, out, _ = run(capsys, "parse", "-")
    assert code == 0
    assert json.loads(out) == {"kind": "choice", "choice": 1, "label": "B"}
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"text": "Best is [[3]]", "id": 7}\n'))
    code, out, _ = run(capsys, "parse", "--template", "listwise", "--n", "4")
    assert json.loads(out) == {"id": 7, "kind": "choice", "choice": 2, "label": "3"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["templates", "show", "nope"], "unknown template 'nope'"),
        (["templates", "render", "nope", "--item", "pair:1"], "unknown template 'nope'"),
        (["parse", "--template", "listwise", "-"], "listwise needs --n N"),
        (["parse", "--template", "pairwise", "/no/such/file"], "/no/such/file: cannot read"),
    ],
)
def test_errors_are_one_line_exit_2(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("[[1]]"))
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.startswith("rmb: error: ") and message in err and err.count("\n") == 1


def test_bad_template_file_via_real_process(tmp_path: Path) -> None:
    bad = tmp_path / "bad.j2"
    bad.write_text(
        '{#---\nname = "bad"\nmode = "pairwise"\nparser = "nonexistent"\nversion = "1"\n'
        'description = "x"\n---#}\n{% block user %}{{ responses }}{% endblock %}'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "benchmark.cli", "templates", "show", str(bad)],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert (
        proc.stderr.strip()
        == f"rmb: error: {bad}: parser 'nonexistent' does not exist; known: "
        + ("verdict-ab, verdict-abc, json-winner, logprob-ab, verdict-index, rating-10, rating-5")
    )


def test_parse_reads_cache_export(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # what `rmb cache export` writes, from a real cache store, piped into `rmb parse`
    from judges.base import JudgeIdentity
    from judges.cache import CacheStore

    ident = JudgeIdentity("openai", "m")
    with CacheStore(tmp_path) as store:
        store.put_many(
            [("k1", ident, Completion("x [[A]]\nFinal: [[B]]")), ("k2", ident, Completion("[[2]]"))]
        )
        buf = io.StringIO()
        assert store.export(buf) == 2
    monkeypatch.setattr(sys, "stdin", io.StringIO(buf.getvalue()))
    code, out, _ = run(capsys, "parse", "--template", "pairwise-tie")
    assert code == 0
    got = {d["key"]: d for d in map(json.loads, out.splitlines())}
    assert got["k1"]["label"] == "B"
    assert got["k2"]["kind"] == "invalid" and "not one of A, B, C" in got["k2"]["reason"]
