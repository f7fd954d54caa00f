"""Reports end to end: the real runner and openai SDK against the loopback judge on real RMB
items, then `rmb report` and `rmb compare` on the run directories it wrote."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

import pytest
from support.runs import go

from benchmark.cli import main
from benchmark.data import BoNItem, Item, Selection, load

SELECTION = Selection(per_scenario=1, seed=0)


def _record(it: Item) -> dict[str, Any]:
    """An item back in RMB's record shape."""
    conv = [{"role": m.role, "content": m.content} for m in it.conversation]
    rec: dict[str, Any] = {"category_path": it.category.path, "conversation_input": conv}
    if isinstance(it, BoNItem):
        rec["bon_uid"] = it.uid.removeprefix("bon:")
        rec["bon_best"] = {"llm_name": it.best.model, "answer": it.best.text}
        rec["loser_list"] = [{"llm_name": r.model, "answer": r.text} for r in it.losers]
    else:
        rec["pair_uid"] = it.uid.removeprefix("pair:")
        rec["chosen"] = {"llm_name": it.chosen.model, "answer": it.chosen.text}
        rec["reject"] = {"llm_name": it.rejected.model, "answer": it.rejected.text}
    return rec


@pytest.fixture
def real_subset(rmb_dir: Path, tmp_path: Path) -> Path:
    """One real item per scenario as a JSONL dataset (loads in milliseconds)."""
    items = SELECTION.apply(load(rmb_dir))
    path = tmp_path / "rmb-subset.jsonl"
    path.write_text("".join(json.dumps(_record(it)) + "\n" for it in items))
    return path


@pytest.mark.slow
def test_position_biased_judge_scores_exactly_one_half(
    loopback: Any, tmp_path: Path, real_subset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A judge that always answers [[A]]: pairwise items are right in one order of two (0.5);
    BoN items win every duel when the best is shown first and lose every one otherwise (0.5);
    nothing survives the swap and every choice is the first position."""
    loopback.configure(policy="first")
    biased = go(loopback, real_subset, tmp_path)
    assert biased.status == "complete"
    report = json.loads((biased.run_dir / "report.json").read_text())
    assert {k: g["accuracy"] for k, g in report["subsets"].items()} == {
        "Helpfulness BoN": 0.5,
        "Helpfulness Pairwise": 0.5,
        "Harmlessness BoN": 0.5,
        "Harmlessness Pairwise": 0.5,
    }
    overall = report["overall"]
    assert overall["accuracy"] == 0.5 and overall["consistency"] == 0
    assert overall["first_position_rate"] == 1 and overall["invalid_rate"] == 0
    assert overall["comparisons"] == biased.comparisons
    assert report["manifest"]["judge"].startswith("openai:loopback-judge")
    assert (biased.run_dir / "report.html").is_file() and (biased.run_dir / "report.md").is_file()
    # the run let its texts go once answered; the examples read theirs again from the dataset
    html = (biased.run_dir / "report.html").read_text()
    shown = [it for it in load(real_subset) if f"<summary>{escape(it.uid)} — item score" in html]
    assert shown and "conversation not shown" not in html
    for it in shown:
        assert escape(it.conversation[-1].content[:60]) in html
        assert all(escape(r.text[:60]) in html for r in it.candidates().values())

    # a fair judge with some unreadable answers, under another template
    loopback.configure(policy="hash", faults={"unparseable": 0.1})
    fair = go(loopback, real_subset, tmp_path, template="pairwise-tie")
    fair_report = json.loads((fair.run_dir / "report.json").read_text())
    assert 0 < fair_report["overall"]["invalid_rate"] < 0.3
    assert fair_report["overall"]["top_invalid_reasons"]
    assert 0 < fair_report["overall"]["consistency"] < 1

    # `rmb report` rebuilds the same numbers from the cache alone
    capsys.readouterr()
    assert main(["report", str(fair.run_dir), "--bootstrap", "50"]) == 0
    err = capsys.readouterr().err
    assert "(0 verdicts changed)" in err and "0 comparisons not in the cache" in err
    rebuilt = json.loads((fair.run_dir / "report.json").read_text())
    assert rebuilt["overall"]["accuracy"] == fair_report["overall"]["accuracy"]
    assert rebuilt["subsets"] == fair_report["subsets"]
    html = (fair.run_dir / "report.html").read_text()
    assert "Final verdict: [[" in html  # the judge's raw answers, read back from the cache
    assert "prompt sent to the judge" in html  # and the prompt, rebuilt from the same template

    # the two runs side by side, over the same items
    assert main(["compare", str(biased.run_dir), str(fair.run_dir), "--bootstrap", "200"]) == 0
    out = capsys.readouterr()
    assert "warning" not in out.err
    assert "× pairwise |" in out.out and "× pairwise-tie |" in out.out
    assert out.out.count("| McNemar p |") == 2  # subsets table and scenarios table of the pair
