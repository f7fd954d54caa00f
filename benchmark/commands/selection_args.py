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
from dataclasses import dataclass
from pathlib import Path

from benchmark.commands.flags import add_flags, from_values
from benchmark.data import DataError, Dataset, Item, Selection, load_dataset
from benchmark.data.fetch import default_data_source
from benchmark.options import fields_in


def add_selection_args(parser: argparse.ArgumentParser) -> None:
    """--data --set --goal --task --scenario --per-scenario --limit --seed (RunOptions' flags)."""
    add_flags(parser, ("selection",), with_defaults=True)


def selection_from_args(args: argparse.Namespace) -> Selection:
    given = {name: getattr(args, name, None) for name, _ in fields_in("selection")}
    return from_values(given).selection()


def data_source(args: argparse.Namespace) -> Path:
    return Path(args.data) if args.data is not None else default_data_source()


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
