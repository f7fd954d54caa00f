"""`rmb compare`: paired differences and McNemar against hand-computed answers, and two
simulated judges on real RMB items through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.items import CR, choice, jc, pair, real_items
from support.runs import make_run

from benchmark.cli import main
from benchmark.reporting.compare import compare_runs
from benchmark.reporting.markdown import compare_markdown
from benchmark.reporting.report import write_reports
from benchmark.scoring import score


def _run(path: Path, model: str, correct: set[int], n: int = 40, ties: str = "strict") -> None:
    """A pairwise run over items pair:0..n-1 (scenario S1 for even, S2 for odd) that is right
    exactly on the items in `correct`."""
    items = [pair(str(i), "S1" if i % 2 == 0 else "S2") for i in range(n)]
    judged = [jc(f"pair:{i}", "pairwise", CR, choice(0 if i in correct else 1)) for i in range(n)]
    scores = score(items, judged, ties=ties)  # type: ignore[arg-type]
    write_reports(path, scores, manifest={"judge": model, "template": {"name": "t"}})


def test_paired_difference_and_mcnemar_by_hand(tmp_path: Path) -> None:
    _run(tmp_path / "a", "judge-a", set(range(20)))  # right on 0..19
    _run(tmp_path / "b", "judge-b", set(range(30)))  # right on 0..29: fixes 10, breaks none
    r = compare_runs([tmp_path / "a", tmp_path / "b"], bootstrap=2000)
    assert r.warnings == []
    (p,) = r.pairs
    (sub,) = p.subsets
    assert (sub.name, sub.items, sub.a, sub.b) == ("Harmlessness Pairwise", 40, 0.5, 0.75)
    assert sub.diff == pytest.approx(0.25)
    # 10 discordant items, all for B: exact two-sided p = 2 / 2^10
    assert (sub.mcnemar.a_better, sub.mcnemar.b_better) == (0, 10)
    assert sub.mcnemar.p_value == pytest.approx(2 / 1024)
    assert sub.ci is not None and 0.1 < sub.ci.low < 0.25 < sub.ci.high < 0.4 and sub.significant
    assert p.overall is not None and p.overall.diff == pytest.approx(0.25)
    # scenarios: S1 holds the even items (A right on 10 of 20, B on 15), S2 the odd ones
    s1 = next(d for d in p.scenarios if d.name == "Harmlessness Pairwise / S1")
    assert (s1.items, s1.a, s1.b) == (20, 0.5, 0.75)
    # 5 discordant items, all for B: p = 2/32; Holm over the 2 scenarios doubles it. Its
    # interval may exclude 0, but one scenario of several is not called a difference on that
    assert s1.mcnemar.p_value == pytest.approx(2 / 32) and s1.holm_p == pytest.approx(4 / 32)
    assert not s1.significant
    assert sub.holm_p is None  # subsets are judged by their interval

    # the other way round the sign flips and the test is symmetric
    back = compare_runs([tmp_path / "b", tmp_path / "a"], bootstrap=2000).pairs[0].subsets[0]
    assert back.diff == pytest.approx(-0.25)
    assert back.ci is not None and back.ci.high < 0
    assert back.mcnemar.p_value == sub.mcnemar.p_value

    md = compare_markdown(r)
    assert "| judge-a × t |" in md and "| judge-b × t |" in md
    assert "## judge-b × t − judge-a × t" in md and "+0.250 *" in md


def test_identical_runs_differ_by_nothing(tmp_path: Path) -> None:
    _run(tmp_path / "a", "judge-a", {1, 2, 3, 5, 8, 13})
    _run(tmp_path / "b", "judge-a", {1, 2, 3, 5, 8, 13})
    r = compare_runs([tmp_path / "a", tmp_path / "b"])
    d = r.pairs[0].subsets[0]
    assert d.diff == 0 and d.ci is not None and (d.ci.low, d.ci.high) == (0, 0)
    assert d.mcnemar.p_value == 1.0 and not d.significant
    # the same label twice: rows are told apart by directory
    assert [x.label for x in r.runs] == ["judge-a × t (a)", "judge-a × t (b)"]


def test_different_items_warn_and_use_the_intersection(tmp_path: Path) -> None:
    _run(tmp_path / "a", "judge-a", set(range(20)), n=40)
    _run(tmp_path / "b", "judge-b", set(range(20)), n=30)
    r = compare_runs([tmp_path / "a", tmp_path / "b"])
    assert len(r.warnings) == 1 and "10 only in the first" in r.warnings[0]
    assert r.pairs[0].common == 30 and r.pairs[0].subsets[0].items == 30


def test_compare_needs_two_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(tmp_path)]) == 2
    assert "at least two" in capsys.readouterr().err


@pytest.mark.slow
def test_two_simulated_judges_on_real_items(
    tmp_path: Path, rmb_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A strong and a weak judge over the same real items, each a run with its cache; compare
    builds their reports from the cache and finds the weak one worse overall."""
    rmb_items = real_items(rmb_dir)
    make_run(
        tmp_path / "strong", tmp_path / "cache", rmb_items, rmb_dir, model="strong", quality=0.95
    )
    make_run(tmp_path / "weak", tmp_path / "cache", rmb_items, rmb_dir, model="weak", quality=0.6)
    out = tmp_path / "cmp"
    code = main(["compare", str(tmp_path / "strong"), str(tmp_path / "weak"), "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert (
        "| sim:strong × pairwise |" in text
        and "## sim:weak × pairwise − sim:strong × pairwise" in text
    )
    data = json.loads((out / "compare.json").read_text())
    overall = data["pairs"][0]["overall"]
    assert overall["diff"] < 0 and overall["significant"] and overall["ci"]["high"] < 0
    assert overall["mcnemar"]["a_better"] > overall["mcnemar"]["b_better"]
    assert (out / "compare.md").read_text() == text
    html = (out / "compare.html").read_text()
    assert "<script" not in html.lower() and " src=" not in html  # one self-contained file
    assert 'id="runs-table"' in html and "sim:strong × pairwise" in html
    assert 'id="chart-pair-1"' in html and 'id="chart-pair-1-scenarios"' in html
    # the weak judge is significantly worse overall: a solid red dot and a starred cell
    assert f"{overall['diff']:+.3f} *" in html and 'class="diff bad"' in html
    assert html.count("<circle") == len(data["pairs"][0]["subsets"]) + 1 + len(
        data["pairs"][0]["scenarios"]
    )
    # each run got its reports on the way
    assert (tmp_path / "strong" / "report.html").is_file()


def test_different_tie_rules_warn(tmp_path: Path) -> None:
    _run(tmp_path / "a", "judge-a", {1, 2})
    _run(tmp_path / "b", "judge-b", {1, 2}, ties="half")
    (warning,) = compare_runs([tmp_path / "a", tmp_path / "b"], bootstrap=0).warnings
    assert "different tie rules" in warning and "judge-b × t: half" in warning
