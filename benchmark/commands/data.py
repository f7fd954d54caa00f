"""`rmb data ...`: dataset statistics and download."""

from __future__ import annotations

import argparse
import os
from collections import Counter
from pathlib import Path

from benchmark.data import DataError, load


def default_data_dir() -> Path:
    env = os.environ.get("RMB_DATA")
    if env:
        return Path(env)
    raise DataError("no dataset given: pass --data DIR, set RMB_DATA, or run `rmb data fetch`")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("data", help="inspect or download the RMB dataset")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    stats = dsub.add_parser("stats", help="counts per goal, set, task and scenario")
    stats.add_argument("--data", type=Path, help="dataset directory or file (default: $RMB_DATA)")
    stats.set_defaults(func=cmd_stats)


def cmd_stats(args: argparse.Namespace) -> int:
    items = load(args.data or default_data_dir())
    counts = Counter(it.category.subset for it in items)
    for subset, n in sorted(counts.items()):
        print(f"{subset:<24}{n:>8}")
    print(f"{'total':<24}{len(items):>8}")
    return 0
