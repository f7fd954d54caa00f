"""The dataset flags every command that reads RMB shares (`run`, `templates render`, `demo`,
`data stats`): where the data is and which items to take.

    add_selection_args(parser)          --data --set --goal --task --scenario --per-scenario --limit --seed
    selection_from_args(args)           -> Selection
    data_source(args)                   -> Path: --data, else $RMB_DATA, else the fetched copy
    select(args)                        -> Selected(dataset, selection, items)
    load_selected(args)                 -> list[Item]
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from benchmark.data import DataError, Dataset, Goal, Item, Selection, SetName, load_dataset
from benchmark.data.fetch import verified_dataset

DATA_ENV = "RMB_DATA"


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a number ≥ 1, got {n}")
    return n


def add_selection_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("dataset selection")
    g.add_argument(
        "--data",
        type=Path,
        metavar="PATH",
        help=f"RMB_dataset directory, one RMB JSON file, or a JSONL file of records in the same "
        f"shape (default: ${DATA_ENV}, else the copy `rmb data fetch` made)",
    )
    g.add_argument(
        "--set",
        dest="sets",
        action="append",
        metavar="SET",
        help="pairwise and/or bon (repeat or comma-separate; default: both)",
    )
    g.add_argument(
        "--goal",
        dest="goals",
        action="append",
        metavar="GOAL",
        help="helpfulness and/or harmlessness (repeat or comma-separate; default: both)",
    )
    g.add_argument(
        "--task",
        dest="tasks",
        action="append",
        metavar="GLOB",
        help="helpfulness task name or glob, e.g. 'Code' (case-insensitive; repeatable)",
    )
    g.add_argument(
        "--scenario",
        dest="scenarios",
        action="append",
        metavar="GLOB",
        help="scenario name or glob, e.g. 'S1*' or '*Translation' (case-insensitive; repeatable)",
    )
    g.add_argument(
        "--per-scenario",
        type=_positive_int,
        metavar="N",
        help="at most N items per scenario and set, seeded sample",
    )
    g.add_argument(
        "--limit", type=_positive_int, metavar="N", help="at most N items in all, seeded sample"
    )
    g.add_argument(
        "--seed",
        type=int,
        default=0,
        help="sampling seed (default 0); a given seed picks the same items every time",
    )


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for raw in values or [] for v in raw.split(",") if v.strip()]


def _choices(flag: str, values: list[str] | None, allowed: tuple[str, ...]) -> tuple[str, ...]:
    picked = [v.lower() for v in _split(values)]
    for v in picked:
        if v not in allowed:
            raise DataError(f"{flag}: unknown value {v!r}; choose from {', '.join(allowed)}")
    return tuple(dict.fromkeys(picked)) or allowed


def selection_from_args(args: argparse.Namespace) -> Selection:
    return Selection(
        sets=_choices("--set", args.sets, get_args(SetName)),  # type: ignore[arg-type]
        goals=_choices("--goal", args.goals, get_args(Goal)),  # type: ignore[arg-type]
        tasks=tuple(_split(args.tasks)),
        scenarios=tuple(_split(args.scenarios)),
        per_scenario=args.per_scenario,
        limit=args.limit,
        seed=args.seed,
    )


def data_source(args: argparse.Namespace) -> Path:
    if args.data is not None:
        return Path(args.data)
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    fetched = verified_dataset()
    if fetched is not None:
        return fetched
    raise DataError(
        f"no dataset: run `rmb data fetch` to download RMB, or pass --data PATH (or set {DATA_ENV})"
    )


@dataclass(frozen=True)
class Selected:
    dataset: Dataset  # everything loaded, with absent files and quirks
    selection: Selection
    items: list[Item]  # what the selection kept, in dataset order


def select(args: argparse.Namespace) -> Selected:
    selection = selection_from_args(args)
    dataset = load_dataset(data_source(args))
    items = selection.apply(dataset.items)
    if not items:
        raise DataError(
            f"{dataset.source}: no items match the selection "
            f"(sets {','.join(selection.sets)}, goals {','.join(selection.goals)}"
            + (f", tasks {','.join(selection.tasks)}" if selection.tasks else "")
            + (f", scenarios {','.join(selection.scenarios)}" if selection.scenarios else "")
            + ")"
        )
    return Selected(dataset, selection, items)


def load_selected(args: argparse.Namespace) -> list[Item]:
    return select(args).items
