"""`rmb score-rewards`: a classifier reward model's per-item rewards (the RMB authors' result
format) scored on the real dataset with the judges' rules."""

from __future__ import annotations

import json
from pathlib import Path
from statistics import fmean

import pytest
from support.items import real_items

from benchmark.cli import main
from benchmark.data import BoNItem, Item
from benchmark.scoring.rewards import score_rewards


def _records(items: list[Item]) -> list[dict[str, object]]:
    """Pairwise i: by i % 3 chosen above / equal to / below rejected. BoN j: by j % 4 best above
    every loser / tied with the top loser / below one loser / one loser's reward missing."""
    out: list[dict[str, object]] = []
    pairs = [it for it in items if not isinstance(it, BoNItem)]
    bons = [it for it in items if isinstance(it, BoNItem)]
    for i, it in enumerate(pairs):
        chosen, reject = [(0.9, 0.2), (0.5, 0.5), (0.1, 0.7)][i % 3]
        out.append(
            {
                "pair_uid": it.uid.removeprefix("pair:"),
                "category_path": it.category.path,
                "chosen_reward": chosen,
                "reject_reward": reject,
                "is_correct": int(chosen > reject),
            }
        )
    for j, it in enumerate(bons):
        n = len(it.losers)
        losers: list[float | None] = [0.1 * k for k in range(n)]
        best: float = 5.0
        if j % 4 == 1:
            best = max(x for x in losers if x is not None)
        elif j % 4 == 2:
            losers[-1] = 9.0
        elif j % 4 == 3:
            losers[0] = None
        out.append(
            {
                "bon_uid": it.uid.removeprefix("bon:"),
                "bon_best_reward": best,
                "loser_rewards": losers,
            }
        )
    return out


def _expected(items: list[Item], ties: str) -> dict[str, float]:
    pairs = [it for it in items if not isinstance(it, BoNItem)]
    bons = [it for it in items if isinstance(it, BoNItem)]
    half = ties == "half"
    by_uid = {it.uid: [1.0, 0.5 if half else 0.0, 0.0][i % 3] for i, it in enumerate(pairs)}
    for j, it in enumerate(bons):
        # a tie at the top between best and one loser: 1/2 under half
        by_uid[it.uid] = [1.0, 0.5 if half else 0.0, 0.0, 0.0][j % 4]
    subsets: dict[str, list[float]] = {}
    for it in items:
        subsets.setdefault(it.category.subset, []).append(by_uid[it.uid])
    return {k: fmean(v) for k, v in subsets.items()}


@pytest.mark.parametrize("ties", ["strict", "half"])
def test_rewards_follow_the_shared_rules(rmb_dir: Path, ties: str) -> None:
    items = real_items(rmb_dir)
    recs = [(f"rec {i}", r) for i, r in enumerate(_records(items))]
    scores, warnings = score_rewards(recs, items, ties=ties, bootstrap=0)  # type: ignore[arg-type]
    assert warnings == []
    expected = _expected(items, ties)
    for name, acc in expected.items():
        assert scores.subsets[name].accuracy == pytest.approx(acc), name
    assert scores.overall.accuracy == pytest.approx(fmean(expected.values()))
    bons = [it for it in items if isinstance(it, BoNItem)]
    assert scores.overall.invalid_items == len(bons[3::4])
    assert scores.overall.top_invalid_reasons == (("missing reward", len(bons[3::4])),)


def test_is_correct_stands_in_for_missing_rewards(rmb_dir: Path) -> None:
    items = [it for it in real_items(rmb_dir) if not isinstance(it, BoNItem)][:4]
    recs = [
        (
            f"rec {i}",
            {
                "pair_uid": it.uid[5:],
                "chosen_reward": None,
                "reject_reward": None,
                "is_correct": i % 2,
            },
        )
        for i, it in enumerate(items)
    ]
    scores, _ = score_rewards(recs, items, bootstrap=0)
    assert [r.score for r in scores.items] == [0, 1, 0, 1]


@pytest.mark.slow
def test_score_rewards_command(
    tmp_path: Path, rmb_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = real_items(rmb_dir)
    records = _records(items)
    pairwise = [r for r in records if "pair_uid" in r]
    bon = [r for r in records if "bon_uid" in r]
    # the authors write an indented JSON list; JSONL works too
    (tmp_path / "rm_result.json").write_text(json.dumps(pairwise, indent=2))
    (tmp_path / "rm_bon.jsonl").write_text("".join(json.dumps(r) + "\n" for r in bon))
    out = tmp_path / "report"
    code = main(
        [
            "score-rewards",
            str(tmp_path / "rm_result.json"),
            "--data",
            str(rmb_dir),
            "--name",
            "MyRM",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    expected = _expected(items, "strict")
    assert "| MyRM |" in captured.out and f"{expected['Helpfulness Pairwise']:.3f}" in captured.out
    assert "dataset items have no reward" in captured.err
    report = json.loads((out / "report.json").read_text())
    assert report["missing_subsets"] == ["Helpfulness BoN", "Harmlessness BoN"]
    assert (out / "report.html").is_file() and (out / "report.md").is_file()

    assert main(["score-rewards", str(tmp_path / "rm_bon.jsonl"), "--data", str(rmb_dir)]) == 0
    assert f"{expected['Harmlessness BoN']:.3f}" in capsys.readouterr().out


def test_bad_records_name_the_place(
    tmp_path: Path, rmb_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = rmb_dir / "BoN_set" / "Harmlessness" / "S1.json"
    first = json.loads(data.read_text())[0]
    cases = {
        "unknown.jsonl": (
            {"pair_uid": "no-such-uid", "chosen_reward": 1, "reject_reward": 0},
            "line 1: pair:no-such-uid is not in the dataset",
        ),
        "count.jsonl": (
            {"bon_uid": first["bon_uid"], "bon_best_reward": 1, "loser_rewards": [0]},
            "expected a list of",
        ),
        "type.jsonl": (
            {"bon_uid": first["bon_uid"], "bon_best_reward": "high", "loser_rewards": []},
            "field 'bon_best_reward': expected a number",
        ),
    }
    if len(first["loser_list"]) == 1:
        del cases["count.jsonl"]
    for name, (rec, message) in cases.items():
        (tmp_path / name).write_text(json.dumps(rec) + "\n")
        assert main(["score-rewards", str(tmp_path / name), "--data", str(data)]) == 2
        err = capsys.readouterr().err
        assert name in err and message in err, err


def test_records_for_items_the_dataset_lacks_are_skipped_with_a_warning(rmb_dir: Path) -> None:
    """The authors' result files cover RMB files the public dataset lacks (e.g. Idea
    Development): those records are skipped and counted, the rest scored."""
    items = [it for it in real_items(rmb_dir) if not isinstance(it, BoNItem)][:3]
    recs = [
        (f"rec {i}", {"pair_uid": it.uid[5:], "chosen_reward": 1, "reject_reward": 0})
        for i, it in enumerate(items)
    ]
    recs.append(("rec 3", {"pair_uid": "9218", "chosen_reward": 0.17, "reject_reward": 0.16}))
    scores, warnings = score_rewards(recs, items, bootstrap=0)
    assert scores.overall.items == 3 and scores.overall.accuracy == 1
    assert warnings == [
        "1 records name items not in the dataset and are skipped (first: rec 3: pair:9218)"
    ]
