"""plan(): orders, BoN strategies, permutations, samples, and the errors for options that clash."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from benchmark.data import BoNItem, Category, PairwiseItem, Response, Selection, load
from benchmark.plan import PlanError, plan
from judges.base import Message

HELP = Category("pairwise", "helpfulness", "Code", "Data Management")
BON = Category("bon", "helpfulness", "Code", "Data Management")
CONV = (Message("user", "hi"),)


def pair(uid: str) -> PairwiseItem:
    return PairwiseItem(f"pair:{uid}", HELP, CONV, Response("m1", "good"), Response("m2", "bad"))


def bon(uid: str, losers: int = 3) -> BoNItem:
    return BoNItem(
        f"bon:{uid}",
        BON,
        CONV,
        Response("m0", "best"),
        tuple(Response(f"m{i}", f"l{i}") for i in range(losers)),
    )


def test_pairwise_both_orders() -> None:
    cs = plan([pair("1")], "pairwise")
    assert [c.shown for c in cs] == [("chosen", "rejected"), ("rejected", "chosen")]
    assert [c.variant for c in cs] == [0, 1]
    assert {c.kind for c in cs} == {"pairwise"}


def test_fixed_puts_chosen_first() -> None:
    cs = plan([pair("1"), bon("2")], "pairwise", orders="fixed")
    assert all(c.shown[0] in ("chosen", "best") for c in cs)
    assert len(cs) == 1 + 3


def test_random_is_seeded_per_comparison_and_stable() -> None:
    items = [pair(str(i)) for i in range(400)]
    a = plan(items, "pairwise", orders="random", seed=7)
    assert len(a) == 400
    firsts = Counter(c.shown[0] for c in a)
    assert 150 < firsts["chosen"] < 250  # roughly balanced, not all one way
    assert plan(items, "pairwise", orders="random", seed=7) == a
    assert plan(items, "pairwise", orders="random", seed=8) != a
    # an item's order does not move when other items come and go
    assert plan(items[100:200], "pairwise", orders="random", seed=7) == a[100:200]
    # variant says which order was drawn
    assert all((c.variant == 1) == (c.shown[0] == "rejected") for c in a)


def test_bon_pairwise_best_against_each_loser() -> None:
    cs = plan([bon("1", losers=3)], "pairwise")
    assert {c.kind for c in cs} == {"bon-pairwise"}
    assert sorted(c.shown for c in cs) == sorted(
        [(a, b) for x in ("loser1", "loser2", "loser3") for a, b in (("best", x), (x, "best"))]
    )


def test_listwise_distinct_seeded_shuffles() -> None:
    cs = plan([bon("1", losers=3)], "listwise", permutations=5, seed=1)
    assert len(cs) == 5 and {c.kind for c in cs} == {"listwise"}
    assert len({c.shown for c in cs}) == 5
    assert all(sorted(c.shown) == ["best", "loser1", "loser2", "loser3"] for c in cs)
    assert [c.variant for c in cs] == list(range(5))
    assert plan([bon("1", losers=3)], "listwise", permutations=5, seed=1) == cs
    # more permutations than exist: each distinct order once
    assert len(plan([bon("2", losers=1)], "listwise", permutations=5)) == 2
    # big lists draw without enumerating
    assert len({c.shown for c in plan([bon("3", losers=9)], "listwise", permutations=30)}) == 30


def test_listwise_refuses_pairwise_items() -> None:
    with pytest.raises(PlanError, match="--set bon"):
        plan([pair("1"), bon("2")], "listwise")


def test_pointwise_rates_every_candidate_alone() -> None:
    cs = plan([pair("1"), bon("2", losers=2)], "pointwise")
    assert [c.shown for c in cs] == [
        ("chosen",),
        ("rejected",),
        ("best",),
        ("loser1",),
        ("loser2",),
    ]
    assert {c.kind for c in cs} == {"pointwise"}


def test_strategy_must_match_template_mode() -> None:
    with pytest.raises(PlanError, match="listwise template"):
        plan([bon("1")], "pairwise", bon_strategy="listwise")
    with pytest.raises(PlanError, match="pointwise"):
        plan([bon("1")], "listwise", bon_strategy="pointwise")
    assert plan([bon("1")], "listwise", bon_strategy="listwise")


def test_samples_repeat_each_comparison() -> None:
    cs = plan([pair("1")], "pairwise", samples=3)
    assert [(c.variant, c.sample_index) for c in cs] == [
        (0, 0),
        (0, 1),
        (0, 2),
        (1, 0),
        (1, 1),
        (1, 2),
    ]
    assert len({c.id for c in cs}) == 6


def test_bad_options() -> None:
    with pytest.raises(PlanError):
        plan([pair("1")], "pairwise", orders="sometimes")  # type: ignore[arg-type]
    with pytest.raises(PlanError):
        plan([pair("1")], "pairwise", samples=0)


def test_real_rmb_counts(rmb_dir: Path) -> None:
    items = Selection(per_scenario=2).apply(load(rmb_dir))
    cs = plan(items, "pairwise")
    pairs = [i for i in items if isinstance(i, PairwiseItem)]
    duels = sum(len(i.losers) for i in items if isinstance(i, BoNItem))
    assert len(cs) == 2 * len(pairs) + 2 * duels
    assert len({c.id for c in cs}) == len(cs)
