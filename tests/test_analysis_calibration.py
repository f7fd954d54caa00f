"""Calibration statistics against hand-computed answers: a perfectly calibrated judge and an
overconfident one, as pure numbers and as runs whose verdicts carry probabilities."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_runs import item, judge, pick

from benchmark.analysis.calibration import (
    auroc,
    calibration,
    duel_calibration,
    margin_ranking,
    rating_margins,
)
from benchmark.analysis.duels import duels
from benchmark.analysis.facts import item_facts
from benchmark.data import Item
from benchmark.plan import Comparison, plan
from benchmark.results import JudgedComparison
from benchmark.scoring import vote_all
from prompts.parsers import Verdict

# calibrated: 10 at 0.8 of which 8 right, 10 at 0.6 of which 6 right
CALIBRATED = ([0.8] * 10 + [0.6] * 10, [True] * 8 + [False] * 2 + [True] * 6 + [False] * 4)
# overconfident: 20 at 0.95, 14 right
OVERCONFIDENT = ([0.95] * 20, [True] * 14 + [False] * 6)


def test_perfectly_calibrated() -> None:
    cal = calibration(*CALIBRATED, bootstrap=200)
    assert cal is not None
    assert cal.ece == pytest.approx(0.0)
    # (8·0.2² + 2·0.8² + 6·0.4² + 4·0.6²) / 20
    assert cal.brier.value == pytest.approx(0.2)
    # right vs wrong pairs: 8·4 right-more-confident, 8·2 + 6·4 tied, of 14·6
    assert cal.auroc == pytest.approx(52 / 84)
    # the 10 at 0.8; then those and 6 of the 0.6 group at its accuracy: (8 + 6·0.6) / 16
    assert cal.selective == {0.5: pytest.approx(0.8), 0.8: pytest.approx(0.725)}
    assert [(b.low, b.n, b.confidence, b.accuracy) for b in cal.bins] == [
        (pytest.approx(0.6), 10, pytest.approx(0.6), pytest.approx(0.6)),
        (pytest.approx(0.8), 10, pytest.approx(0.8), pytest.approx(0.8)),
    ]


def test_overconfident() -> None:
    cal = calibration(*OVERCONFIDENT, bootstrap=0)
    assert cal is not None
    assert cal.accuracy == pytest.approx(0.7)
    assert cal.ece == pytest.approx(0.25)
    # (14·0.05² + 6·0.95²) / 20
    assert cal.brier.value == pytest.approx(0.2725)
    # one confidence for all: it ranks nothing
    assert cal.auroc == pytest.approx(0.5)
    assert cal.selective[0.5] == pytest.approx(0.7)
    assert cal.bins[-1].high == 1.0 and cal.bins[-1].n == 20


def test_auroc_extremes() -> None:
    conf = np.array([0.9, 0.8, 0.7, 0.6])
    assert auroc(conf, np.array([True, True, False, False])) == 1.0
    assert auroc(conf, np.array([False, False, True, True])) == 0.0
    assert auroc(conf, np.array([True] * 4)) is None
    assert calibration([], []) is None


@pytest.mark.parametrize("case", [CALIBRATED, OVERCONFIDENT])
def test_from_a_run_with_probabilities(case: tuple[list[float], list[bool]]) -> None:
    confidence, right = case
    items = [item(str(i)) for i in range(len(confidence))]
    table = {it.uid: (p, ok) for it, p, ok in zip(items, confidence, right, strict=True)}

    def policy(it: Item, c: Comparison) -> Verdict:
        p, ok = table[it.uid]
        cid = "chosen" if ok else "rejected"
        p_first = p if c.shown[0] == cid else 1 - p
        return pick(c, cid, (p_first, 1 - p_first))

    # both orders: each order is a comparison with the same confidence and outcome
    voted, _ = vote_all(judge(items, policy))
    cal = duel_calibration(duels(voted, item_facts(items)), bootstrap=0)
    expected = calibration(confidence * 2, right * 2, bootstrap=0)
    assert cal is not None and expected is not None
    assert cal.comparisons == 2 * len(items)
    assert cal.ece == pytest.approx(expected.ece)
    assert cal.brier.value == pytest.approx(expected.brier.value)
    assert cal.auroc == pytest.approx(expected.auroc)


def test_no_probabilities_no_calibration() -> None:
    items = [item("x")]
    voted, _ = vote_all(judge(items, lambda it, c: pick(c, "chosen")))
    assert duel_calibration(duels(voted, item_facts(items))) is None


def test_rating_margins_rank_right_items_above_wrong_ones() -> None:

    # (chosen, rejected) ratings: gaps 6 (right), 3 (right), 1 (wrong), 0 (tie: wrong)
    ratings = {"pair:0": (9, 3), "pair:1": (7, 4), "pair:2": (5, 6), "pair:3": (5, 5)}
    items = [item(str(i)) for i in range(4)]
    judged = [
        JudgedComparison(
            c,
            c.id,
            Verdict("score", score=ratings[c.item_uid][c.shown[0] == "rejected"]),
            "stop",
        )
        for c in plan(items, "pointwise")
    ]
    voted, _ = vote_all(judged)
    gaps, right = rating_margins(voted, item_facts(items))
    assert sorted(zip(gaps, right, strict=True)) == [(0, False), (1, False), (3, True), (6, True)]
    ranking = margin_ranking(gaps, right)
    assert ranking is not None
    assert ranking.items == 4 and ranking.accuracy == 0.5
    assert ranking.auroc == 1.0 and ranking.selective[0.5] == 1.0
