"""Reports from a run directory: report.json / .md / .html, and `rmb report RUN` rebuilding them
from the cache with the current parser.

Runs are built here the way the runner writes them (the real planner, the real cache store, the
real verdict parser) with a simulated judge whose raw answers are seeded text."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from support.items import real_items
from support.runs import make_run

from benchmark.cli import main
from benchmark.data import Item
from benchmark.reporting.rebuild import rebuild
from benchmark.reporting.report import write_reports
from benchmark.results import JudgedComparison
from benchmark.rundir import COMPARISONS_FILE
from benchmark.scoring import SUBSET_NAMES, score
from prompts.parsers import Verdict


@pytest.fixture
def rmb_items(rmb_dir: Path) -> list[Item]:
    return real_items(rmb_dir)


@pytest.fixture(scope="session")
def finished_run(
    tmp_path_factory: pytest.TempPathFactory, rmb_dir: Path
) -> tuple[Path, list[JudgedComparison]]:
    root = tmp_path_factory.mktemp("run")
    judged = make_run(root / "runs" / "a", root / "cache", real_items(rmb_dir), rmb_dir)
    return root / "runs" / "a", judged


def test_reports_hold_the_scores(
    tmp_path: Path, finished_run: tuple[Path, list[JudgedComparison]], rmb_items: list[Item]
) -> None:
    _, judged = finished_run
    s = score(rmb_items, judged)
    manifest = {"judge": "sim:judge-a", "template": {"name": "t"}}
    paths = write_reports(tmp_path, s, manifest=manifest, judged=judged)
    assert [p.name for p in paths] == ["report.json", "report.md", "report.html"]
    data = json.loads(paths[0].read_text())
    assert data["label"] == "sim:judge-a × t"
    assert data["overall"]["accuracy"] == pytest.approx(s.overall.accuracy)
    assert list(data["subsets"]) == list(SUBSET_NAMES)  # the paper's column order
    assert len(data["items"]) == len(rmb_items) == s.overall.items
    assert (
        data["subsets"]["Helpfulness BoN"]["ci"]["low"]
        < data["subsets"]["Helpfulness BoN"]["accuracy"]
    )
    md = paths[1].read_text().splitlines()
    assert md[2] == "| Judge × template | " + " | ".join(SUBSET_NAMES) + " | Overall |"
    assert md[4].startswith("| sim:judge-a × t | ")
    assert f"{s.overall.accuracy:.3f}" in md[4]
    text = paths[1].read_text()
    for heading in (
        "## Subsets",
        "## Invalid verdicts: top reasons",
        "## Helpfulness tasks",
        "## Scenarios",
    ):
        assert heading in text
    # every scenario has a row
    assert sum(1 for line in md if line.startswith("| Helpfulness BoN / ")) >= len(
        [k for k in s.scenarios if k.startswith("Helpfulness BoN / ")]
    )
    html = paths[2].read_text()
    # self-contained: no script, no stylesheet or image fetched from anywhere
    assert "<script" not in html.lower() and "<link" not in html and " src=" not in html
    # the judge's raw answers came from the cache the manifest names; here there is none
    assert "raw answer not in the cache" in html


def test_html_examples_show_conversation_answers_and_judge(
    tmp_path: Path, finished_run: tuple[Path, list[JudgedComparison]], rmb_items: list[Item]
) -> None:
    run_dir, judged = finished_run
    s = score(rmb_items, judged)
    out = tmp_path / "copy"
    out.mkdir()
    (out / "manifest.json").write_text((run_dir / "manifest.json").read_text())
    write_reports(out, s, items=rmb_items, judged=judged)
    html = (out / "report.html").read_text()
    assert html.count('<details class="scenario">') == 5
    assert "follows the request more closely &lt;and&gt; is safer" in html  # raw answer, escaped
    wrong = next(r for r in s.items if r.score < 1)
    assert wrong.uid in html or html.count('<details class="example">') > 0
    item = next(it for it in rmb_items if f"{it.uid} — item score" in html)
    from html import escape

    assert escape(item.conversation[0].content[:60]) in html


@pytest.mark.slow
def test_rebuild_rereads_raw_answers_with_the_current_parser(
    tmp_path: Path, finished_run: tuple[Path, list[JudgedComparison]], rmb_items: list[Item]
) -> None:
    """An old parser read nothing: every stored verdict is invalid. `rmb report` re-reads the
    cached answers and gets the true scores back without a single request."""
    run_dir, judged = finished_run
    old = tmp_path / "old-run"
    old.mkdir()
    (old / "manifest.json").write_text((run_dir / "manifest.json").read_text())
    broken = [replace(j, verdict=Verdict("invalid", reason="old parser")) for j in judged]
    (old / COMPARISONS_FILE).write_text("".join(j.to_json() + "\n" for j in broken))
    assert score(rmb_items, broken, bootstrap=0).overall.accuracy == 0

    r = rebuild(old)
    truth = score(rmb_items, judged)
    assert r.reparsed == len(judged) and r.not_in_cache == 0
    assert r.changed == sum(1 for j in judged if j.verdict.kind != "invalid") + sum(
        1 for j in judged if j.verdict.kind == "invalid" and j.verdict.reason != "old parser"
    )
    assert r.scores.overall.accuracy == pytest.approx(truth.overall.accuracy)
    assert r.scores.to_dict()["subsets"] == truth.to_dict()["subsets"]
    assert json.loads((old / "report.json").read_text())["overall"]["accuracy"] == pytest.approx(
        truth.overall.accuracy
    )

    # --no-reparse keeps the stored verdicts
    kept = rebuild(old, reparse_answers=False, bootstrap=0)
    assert kept.scores.overall.accuracy == 0 and kept.scores.overall.invalid_rate == 1


@pytest.mark.slow
def test_rmb_report_command(
    tmp_path: Path,
    finished_run: tuple[Path, list[JudgedComparison]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    run_dir, _ = finished_run
    copy = tmp_path / "r"
    copy.mkdir()
    for name in ("manifest.json", COMPARISONS_FILE):
        (copy / name).write_text((run_dir / name).read_text())
    assert main(["report", str(copy), "--ties", "half", "--bootstrap", "200"]) == 0
    out = capsys.readouterr().out
    assert "| Judge × template | Helpfulness BoN |" in out and "report.html" in out
    data = json.loads((copy / "report.json").read_text())
    assert data["options"] == {"ties": "half", "bootstrap": 200, "seed": 0}

    assert main(["report", str(tmp_path / "nothing-here")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_examples_are_read_again_from_the_files_of_their_categories(
    rmb_dir: Path, rmb_items: list[Item]
) -> None:
    """A run drops its items' texts once answered: the report reads the examples' items again,
    from the one file of each category, equal to what the full load gave."""
    from benchmark.reporting.examples import example_items
    from benchmark.scoring import ItemResult

    picked = [rmb_items[0], rmb_items[len(rmb_items) // 2], rmb_items[-1]]
    wanted = [ItemResult(it.uid, it.category, "duel", 0.0) for it in picked]
    got = example_items(rmb_dir, wanted)
    assert got == {it.uid: it for it in picked}
    assert example_items(rmb_dir / "gone", wanted) == {}


@pytest.mark.slow
def test_rebuilt_examples_read_their_texts_from_the_data_given(
    tmp_path: Path, finished_run: tuple[Path, list[JudgedComparison]], rmb_dir: Path
) -> None:
    """`rmb report` scores outlines of the items (no texts); the examples' conversations come
    from the dataset: the recorded one, or `--data` when that one has moved."""
    run_dir, _ = finished_run
    moved = tmp_path / "moved"
    moved.mkdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["data"] = {**manifest.get("data", {}), "source": str(tmp_path / "gone")}
    (moved / "manifest.json").write_text(json.dumps(manifest))
    (moved / COMPARISONS_FILE).write_text((run_dir / COMPARISONS_FILE).read_text())
    rebuild(moved, data=rmb_dir, bootstrap=0)
    html = (moved / "report.html").read_text()
    assert "<h4>Conversation</h4>" in html and "conversation not shown" not in html
