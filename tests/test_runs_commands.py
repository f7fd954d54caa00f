"""`rmb jury` over three runs and `rmb leaderboard` over five, on real RMB items with the real
cache and parser, and their pages opened in headless Chromium."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_html_chromium import chromium
from test_report import make_run, real_items

from benchmark.cli import main
from benchmark.rundir import read_judged
from benchmark.scoring.votes import picked

pytestmark = pytest.mark.slow  # real RMB runs, reports and a browser: ~10-30 s


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, rmb_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("runs")
    items = real_items(rmb_dir)
    for name, quality in (("judge-a", 0.7), ("judge-b", 0.65), ("judge-c", 0.6)):
        make_run(root / "runs" / name, root / "cache", items, rmb_dir, model=name, quality=quality)
    return root / "runs"


def test_jury_of_three_is_a_run(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    members = [runs / n for n in ("judge-a", "judge-b", "judge-c")]
    out = tmp_path / "jury"
    assert main(["jury", *map(str, members), "--out", str(out), "--bootstrap", "200"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["judge"] == "jury (majority): sim:judge-a + sim:judge-b + sim:judge-c"
    assert [m["label"] for m in manifest["jury"]["members"]] == [
        "sim:judge-a × pairwise",
        "sim:judge-b × pairwise",
        "sim:judge-c × pairwise",
    ]
    # one line per comparison, voted from the three members' verdicts on it
    jury_lines = read_judged(out)
    member_lines = [read_judged(m) for m in members]
    assert len(jury_lines) == len(member_lines[0])

    for j, *ms in zip(jury_lines, *member_lines, strict=True):
        picks = [picked(m.comparison, m.verdict) for m in ms]
        valid = [p for p in picks if p is not None]
        top = max(set(valid), key=valid.count) if valid else None
        if valid and valid.count(top) * 2 > len(valid):
            assert picked(j.comparison, j.verdict) == top
    report = json.loads((out / "report.json").read_text())
    assert report["overall"]["accuracy"] is not None
    # the jury can be compared with its members like any run
    cmp = tmp_path / "cmp"
    capsys.readouterr()
    assert (
        main(["compare", str(members[0]), str(out), "--bootstrap", "100", "--out", str(cmp)]) == 0
    )
    md = capsys.readouterr().out
    assert "Agreement: Cohen's kappa" in md and "### Agreement by scenario" in md
    pair = json.loads((cmp / "compare.json").read_text())["pairs"][0]
    kappa = pair["agreement"]["overall"]
    # the jury follows its members' majority: it agrees with judge-a well above chance
    assert kappa["comparisons"] > 0 and 0.3 < kappa["kappa"] < 1
    dom = chromium(tmp_path, "--dump-dom", (cmp / "compare.html").as_uri()).stdout
    assert '<p class="agreement">Agreement: Cohen' in dom and '<table class="kappa">' in dom
    dom = chromium(tmp_path, "--dump-dom", (out / "report.html").as_uri()).stdout
    assert '<table class="paper" id="rmb-table">' in dom
    assert "jury (majority)" in dom


def test_jury_refuses_runs_over_different_plans(
    runs: Path, tmp_path: Path, rmb_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_run(tmp_path / "fixed", tmp_path / "cache", real_items(rmb_dir), rmb_dir, orders="fixed")
    members = [str(runs / "judge-a"), str(runs / "judge-b"), str(tmp_path / "fixed")]
    assert main(["jury", *members, "--out", str(tmp_path / "j1")]) == 2
    err = capsys.readouterr().err
    assert "did not judge the same comparisons" in err and "--shared" in err
    assert "the plans differ" in err and "orders fixed" in err
    assert not (tmp_path / "j1" / "comparisons.jsonl").exists()
    assert main(["jury", *members, "--shared", "--out", str(tmp_path / "j2")]) == 0
    assert "restricted to the" in capsys.readouterr().err


def test_leaderboard_over_five_runs_sorts_in_the_browser(
    runs: Path, tmp_path: Path, rmb_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    board_runs = tmp_path / "board"
    items = real_items(rmb_dir)
    for name, quality in (("strong", 0.9), ("middling", 0.7), ("weak", 0.55), ("coin", 0.5)):
        make_run(board_runs / name, tmp_path / "cache", items, rmb_dir, model=name, quality=quality)
    # a run over other items: its own table, never ranked with the others
    make_run(
        board_runs / "small", tmp_path / "cache", items[:10], rmb_dir, model="small", quality=1.0
    )
    out = tmp_path / "out"
    assert main(["leaderboard", str(board_runs), "--out", str(out)]) == 0
    md = capsys.readouterr().out
    assert md.count("## ") == 2
    data = json.loads((out / "leaderboard.json").read_text())
    assert [len(g["rows"]) for g in data] == [4, 1]
    overall = [r["overall"]["accuracy"] for r in data[0]["rows"]]
    assert overall == sorted(overall, reverse=True)
    assert data[0]["rows"][0]["judge"] == "sim:strong"
    page = out / "leaderboard.html"
    dom = chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    tables = re.findall(r'<table class="board" id="(board-\d)">', dom)
    assert tables == ["board-1", "board-2"]
    first = dom[dom.index('id="board-1"') : dom.index('id="board-2"')]
    assert len(re.findall(r"<tr>", first)) == 1 + 4
    # sorting: a click on a header reorders the rows (the script ran in the browser)
    probe = tmp_path / "probe.html"
    probe.write_text(
        page.read_text().replace(
            "</body>",
            "<script>var t=document.getElementById('board-1');"
            "var h=Array.from(t.tHead.rows[0].cells).find(c=>c.textContent==='Overall');"
            "h.click();h.click();"  # descending, then ascending
            "document.title=Array.from(t.tBodies[0].rows).map(r=>r.cells[1].textContent).join(',');"
            "</script></body>",
        )
    )
    dom = chromium(tmp_path, "--dump-dom", probe.as_uri()).stdout
    title = re.search(r"<title>(.*?)</title>", dom)
    assert title is not None
    ascending = [r["judge"] for r in reversed(data[0]["rows"])]
    assert title.group(1) == ",".join(ascending)
