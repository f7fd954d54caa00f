from __future__ import annotations

from collections import Counter
from pathlib import Path

from benchmark.data import BoNItem, Category, PairwiseItem, load


def test_full_shared_copy_counts(rmb_dir: Path) -> None:
    items = load(rmb_dir)
    pairs = [i for i in items if isinstance(i, PairwiseItem)]
    bons = [i for i in items if isinstance(i, BoNItem)]
    assert len(pairs) == 14543
    assert len(bons) == 3786
    assert sum(len(b.losers) for b in bons) == 8714
    scen = {(i.category.goal, i.category.scenario) for i in items}
    assert len(scen) == 49
    assert Counter(g for g, _ in scen) == {"helpfulness": 37, "harmlessness": 12}
    tasks = {i.category.task for i in items if i.category.goal == "helpfulness"}
    assert len(tasks) == 12


def test_category_parse() -> None:
    c = Category.parse("Pairwise_set/Helpfulness/Code/Data Management")
    assert (c.set, c.goal, c.task, c.scenario) == ("pairwise", "helpfulness", "Code", "Data Management")
    h = Category.parse("BoN_set/Harmlessness/S1")
    assert (h.set, h.goal, h.task, h.scenario) == ("bon", "harmlessness", "S1", "S1")
    assert h.subset == "Harmlessness BoN"
    assert Category.parse(c.path) == c
