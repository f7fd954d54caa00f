"""Selection flags and seeded, stable sampling on the real shared copy."""

from __future__ import annotations

import argparse
import random
from collections import Counter
from pathlib import Path

import pytest

from benchmark.commands.selection_args import (
    add_selection_args,
    data_source,
    load_selected,
    select,
    selection_from_args,
)
from benchmark.data import DataError, Item, Selection, load, pinned_manifest
from benchmark.data.fetch import STAMP, fetch_home
from judges.errors import UserError


@pytest.fixture(scope="module")
def items(rmb_dir: Path) -> list[Item]:
    return load(rmb_dir)


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_selection_args(p)
    return p.parse_args(list(argv))


def test_flags_to_selection() -> None:
    s = selection_from_args(
        _args("--set", "BoN", "--goal", "harmlessness,helpfulness", "--task", "Code,Chat",
              "--scenario", "S1*", "--scenario", "*Translation", "--per-scenario", "3",
              "--limit", "10", "--seed", "7")
    )  # fmt: skip
    assert s == Selection(
        sets=("bon",),
        goals=("harmlessness", "helpfulness"),
        tasks=("Code", "Chat"),
        scenarios=("S1*", "*Translation"),
        per_scenario=3,
        limit=10,
        seed=7,
    )
    assert selection_from_args(_args()) == Selection()


def test_bad_flags() -> None:
    with pytest.raises(UserError, match=r"--set: unknown value 'pair'; choose from pairwise, bon"):
        selection_from_args(_args("--set", "pair"))
    with pytest.raises(UserError, match="--goal: unknown value"):
        selection_from_args(_args("--goal", "honesty"))
    with pytest.raises(SystemExit):
        _args("--limit", "0")
    with pytest.raises(SystemExit):
        _args("--per-scenario", "x")


def test_filters(items: list[Item]) -> None:
    harm_bon = Selection(sets=("bon",), goals=("harmlessness",)).apply(items)
    assert {(i.category.set, i.category.goal) for i in harm_bon} == {("bon", "harmlessness")}
    assert len(harm_bon) == sum(
        1 for i in items if i.category.set == "bon" and i.category.goal == "harmlessness"
    )
    code = Selection(tasks=("code",)).apply(items)  # case-insensitive
    assert {i.category.scenario for i in code} == {
        "Data Management",
        "Development and Implementation",
        "Documentation",
        "Quality and Optimization",
    }
    s1 = Selection(scenarios=("S1*",)).apply(items)
    assert {i.category.scenario for i in s1} == {"S1", "S10", "S11"}


def test_per_scenario_and_limit(items: list[Item]) -> None:
    per = Selection(per_scenario=2).apply(items)
    counts = Counter((i.category.set, i.category.goal, i.category.scenario) for i in per)
    # 49 scenarios with BoN lists, 46 with pairs (3 pairwise files are absent)
    assert len(counts) == 49 + 46 and set(counts.values()) == {2}
    assert len(Selection(limit=25).apply(items)) == 25


def test_same_seed_same_items_other_seed_others(items: list[Item]) -> None:
    a = Selection(per_scenario=3, seed=1).apply(items)
    b = Selection(per_scenario=3, seed=1).apply(list(reversed(items)))
    c = Selection(per_scenario=3, seed=2).apply(items)
    assert [i.uid for i in a] == [i.uid for i in b]
    assert {i.uid for i in a} != {i.uid for i in c}


@pytest.mark.parametrize("sel", [Selection(limit=300, seed=5), Selection(per_scenario=4, seed=5)])
def test_adding_items_does_not_reshuffle(items: list[Item], sel: Selection) -> None:
    rng = random.Random(0)
    fewer = [i for i in items if rng.random() < 0.8]
    from_fewer = {i.uid for i in sel.apply(fewer)}
    from_all = {i.uid for i in sel.apply(items)}
    kept = {i.uid for i in fewer}
    # an item picked from the bigger set that was also in the smaller one was picked there too:
    # new items only displace others, they never reorder the ones already there
    assert from_all & kept <= from_fewer
    assert len(from_all - kept) > 0


def test_data_source_order(tmp_path: Path, rmb_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("RMB_DATA", raising=False)
    with pytest.raises(DataError, match=r"run `rmb data fetch`.*--data PATH"):
        data_source(_args())
    home = fetch_home()
    assert home.parent == tmp_path / "cache" / "rmb-judge"
    (home / "RMB_dataset").mkdir(parents=True)
    with pytest.raises(DataError):  # not verified yet: no stamp
        data_source(_args())
    (home / STAMP).write_text(pinned_manifest().commit + "\n")
    assert data_source(_args()) == home / "RMB_dataset"
    monkeypatch.setenv("RMB_DATA", str(rmb_dir))
    assert data_source(_args()) == rmb_dir
    assert data_source(_args("--data", "elsewhere")) == Path("elsewhere")


def test_load_selected(rmb_dir: Path, items: list[Item]) -> None:
    args = _args("--data", str(rmb_dir), "--set", "pairwise", "--task", "Code", "--limit", "5")
    sel = select(args)
    assert len(sel.items) == 5
    assert all(i.category.task == "Code" and i.category.set == "pairwise" for i in sel.items)
    assert sel.items == Selection(sets=("pairwise",), tasks=("Code",), limit=5).apply(items)
    assert len(sel.dataset.absent_files) == 3
    one = rmb_dir / "BoN_set" / "Harmlessness" / "S1.json"
    chosen = load_selected(_args("--data", str(one), "--limit", "7", "--seed", "3"))
    assert chosen == Selection(limit=7, seed=3).apply(load(one))
    with pytest.raises(DataError, match="no items match the selection"):
        select(_args("--data", str(one), "--scenario", "nothing-like-this"))
