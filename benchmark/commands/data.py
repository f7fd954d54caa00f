"""`rmb data stats` (what a dataset holds) and `rmb data fetch` (download and verify RMB)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.commands.selection_args import Selected, add_selection_args, select
from benchmark.data import QUIRK_KINDS, SUBSETS, BoNItem, Category, Item, Manifest
from benchmark.data.fetch import ARCHIVE_URL, URL_ENV, fetch_dataset, fetch_home
from benchmark.reporting.escape import for_rich, for_terminal

if TYPE_CHECKING:
    from rich.console import Console


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="inspect or download the RMB dataset")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    stats = dsub.add_parser(
        "stats",
        help="counts per goal, set, task and scenario; absent files and data quirks",
        description="Pairs, BoN lists, best-vs-loser comparisons and multi-turn share per "
        "scenario, subset and in total, for the whole dataset or a selection of it.",
    )
    add_selection_args(stats)
    stats.add_argument("--json", action="store_true", help="print JSON instead of tables")
    stats.set_defaults(func=cmd_stats)

    fetch = dsub.add_parser(
        "fetch",
        help="download RMB at the pinned commit and verify every file",
        description="Download the RMB repository archive at the pinned commit and keep only "
        "its RMB_dataset/ files, each checked against its git blob id. Safe to interrupt and "
        "rerun: a partial download resumes, a verified copy is left alone.",
    )
    fetch.add_argument(
        "--dest",
        type=Path,
        metavar="DIR",
        help="where to keep the copy (default: the user cache directory, see --print-path)",
    )
    fetch.add_argument(
        "--url",
        help=f"archive URL (default: ${URL_ENV}, else {ARCHIVE_URL.format(repo='<repo>', commit='<commit>')})",
    )
    fetch.add_argument(
        "--manifest",
        type=Path,
        metavar="FILE",
        help="manifest JSON to verify against: repo, commit, files[] with path and git_blob_sha1 "
        "(default: the pinned commit's)",
    )
    fetch.add_argument(
        "--print-path",
        action="store_true",
        help="print where the verified dataset is (or would be) and exit",
    )
    fetch.set_defaults(func=cmd_fetch)


# ---------------------------------------------------------------- stats


@dataclass
class Counts:
    pairs: int = 0
    bon_lists: int = 0
    bon_comparisons: int = 0  # best vs each loser
    multi_turn: int = 0

    def add(self, item: Item) -> None:
        if isinstance(item, BoNItem):
            self.bon_lists += 1
            self.bon_comparisons += len(item.losers)
        else:
            self.pairs += 1
        self.multi_turn += len(item.conversation) > 1

    @property
    def items(self) -> int:
        return self.pairs + self.bon_lists

    def as_json(self) -> dict[str, Any]:
        return {
            "pairs": self.pairs,
            "bon_lists": self.bon_lists,
            "bon_comparisons": self.bon_comparisons,
            "multi_turn": self.multi_turn,
            "multi_turn_share": round(self.multi_turn / self.items, 4) if self.items else None,
        }


def _absent_by_scenario(sel: Selected) -> dict[tuple[str, str, str], list[str]]:
    """Absent files of the selected sets and goals, by the scenario they would hold."""
    out: dict[tuple[str, str, str], list[str]] = {}
    for path in sel.dataset.absent_files:
        try:
            c = Category.parse(path.removesuffix(".json"))
        except ValueError:
            continue
        if c.set in sel.selection.sets and c.goal in sel.selection.goals:
            out.setdefault((c.goal, c.task, c.scenario), []).append(c.set)
    return out


def _natural(text: str) -> tuple[Any, ...]:
    # S2 before S10
    return tuple(int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", text))


def _row_order(row: tuple[tuple[str, str, str], Counts]) -> tuple[Any, ...]:
    (goal, task, scenario), _ = row
    return (goal != "helpfulness", _natural(task), _natural(scenario))


def stats_json(sel: Selected) -> dict[str, Any]:
    scenarios: dict[tuple[str, str, str], Counts] = {}
    subsets = {Category(s, g, "", "").subset: Counts() for g, s in SUBSETS}  # type: ignore[arg-type]
    total = Counts()
    for it in sel.items:
        c = it.category
        scenarios.setdefault((c.goal, c.task, c.scenario), Counts()).add(it)
        subsets[c.subset].add(it)
        total.add(it)
    absent = _absent_by_scenario(sel)
    keep = {it.uid for it in sel.items}
    quirks = [q for q in sel.dataset.quirks if q.uid in keep]
    n_scen = Counter(goal for goal, _, _ in scenarios)
    return {
        "source": str(sel.dataset.source),
        "sets": list(sel.selection.sets),
        "scenarios": [
            {
                "goal": g,
                "task": t,
                "scenario": s,
                **counts.as_json(),
                "absent_sets": absent.get((g, t, s), []),
            }
            for (g, t, s), counts in sorted(scenarios.items(), key=_row_order)
        ],
        "subsets": {name: counts.as_json() for name, counts in subsets.items()},
        "totals": {
            **total.as_json(),
            "items": total.items,
            "scenarios": len(scenarios),
            "scenarios_per_goal": dict(sorted(n_scen.items())),
            "helpfulness_tasks": len({t for g, t, _ in scenarios if g == "helpfulness"}),
        },
        "files": sel.dataset.file_records,
        "absent_files": list(sel.dataset.absent_files),
        "extra_files": list(sel.dataset.extra_files),
        "count_mismatches": list(sel.dataset.count_mismatches),
        "quirks": {
            "counts": dict(sorted(Counter(q.kind for q in quirks).items())),
            "list": [{"kind": q.kind, "uid": q.uid, "field": q.field} for q in quirks],
        },
    }


def _pct(counts: dict[str, Any]) -> str:
    share = counts["multi_turn_share"]
    return "" if share is None else f"{100 * share:.1f}%"


def _cells(counts: dict[str, Any], sets: list[str]) -> list[str]:
    """pairs, BoN lists, best-vs-loser, multi-turn share; blank for a set not shown, 'absent'
    for a file the pinned commit has and this copy lacks."""
    absent = counts.get("absent_sets", [])
    cells = []
    for set_name, n in (("pairwise", counts["pairs"]), ("bon", counts["bon_lists"])):
        cells.append(
            "" if set_name not in sets else "absent" if set_name in absent and not n else str(n)
        )
    cells.append(str(counts["bon_comparisons"]) if "bon" in sets else "")
    return [*cells, _pct(counts)]


def _print_stats(st: dict[str, Any], console: Console) -> None:
    # rich is imported where it prints: at start-up it cost every `rmb` command ~50 ms
    from rich.table import Table

    table = Table(title=f"RMB items in {for_rich(st['source'])}", title_justify="left")
    for name, justify in [
        ("goal", "left"),
        ("task", "left"),
        ("scenario", "left"),
        ("pairs", "right"),
        ("BoN lists", "right"),
        ("best vs loser", "right"),
        ("multi-turn", "right"),
    ]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    previous_goal = None
    for row in st["scenarios"]:
        if previous_goal and row["goal"] != previous_goal:
            table.add_section()
        previous_goal = row["goal"]
        task = row["task"] if row["goal"] == "helpfulness" else ""
        table.add_row(
            *map(for_rich, (row["goal"], task, row["scenario"])), *_cells(row, st["sets"])
        )
    table.add_section()
    for name, c in st["subsets"].items():
        if c["pairs"] or c["bon_lists"]:
            table.add_row(
                for_rich(name), "", "", *_cells(c, ["bon" if name.endswith("BoN") else "pairwise"])
            )
    t = st["totals"]
    per_goal = ", ".join(f"{n} {g}" for g, n in t["scenarios_per_goal"].items())
    table.add_section()
    table.add_row(
        "total",
        f"{t['helpfulness_tasks']} tasks" if t["helpfulness_tasks"] else "",
        f"{t['scenarios']} scenarios ({per_goal})",
        str(t["pairs"]),
        str(t["bon_lists"]),
        str(t["bon_comparisons"]),
        _pct(t),
        style="bold",
    )
    console.print(table)
    for key, what in [
        ("absent_files", "files of the pinned RMB commit absent here (not loaded)"),
        ("extra_files", "files not in the pinned RMB commit (loaded)"),
        ("count_mismatches", "files whose record count differs from the pinned commit"),
    ]:
        if st[key]:
            console.print(f"\n{len(st[key])} {what}:")
            for path in st[key]:
                console.print(f"  {for_terminal(path)}", markup=False, highlight=False)
    quirks = st["quirks"]
    if quirks["list"]:
        counts = ", ".join(f"{n} {kind}" for kind, n in quirks["counts"].items())
        console.print(f"\n{len(quirks['list'])} data quirks (kept; not errors): {counts}")
        for kind in quirks["counts"]:
            console.print(f"  {kind}: {QUIRK_KINDS[kind]}")
            for q in quirks["list"]:
                if q["kind"] == kind:
                    line = f"    {q['uid']}  {q['field']}"
                    console.print(for_terminal(line), markup=False, highlight=False)


def cmd_stats(args: argparse.Namespace) -> int:
    st = stats_json(select(args))
    if args.json:
        json.dump(st, sys.stdout, indent=1, ensure_ascii=False)
        print()
    else:
        from rich.console import Console

        # a pipe gets the full table width, not rich's 80-column default
        _print_stats(st, Console(width=None if sys.stdout.isatty() else 160))
    return 0


# ---------------------------------------------------------------- fetch


def cmd_fetch(args: argparse.Namespace) -> int:
    manifest = Manifest.read(args.manifest) if args.manifest else None
    home = args.dest or fetch_home(manifest)
    if args.print_path:
        print(home / "RMB_dataset")
        return 0
    from rich.console import Console

    err = Console(stderr=True)
    last = [-1]

    def progress(done: int, total: int | None) -> None:
        mb = done >> 20
        if mb != last[0] and err.is_terminal:
            last[0] = mb
            of = f" of {total / 2**20:.1f}" if total else ""
            err.print(f"downloading: {done / 2**20:.1f}{of} MiB", end="\r")

    report = fetch_dataset(home, args.url, manifest, progress=progress)
    if report.downloaded_bytes:
        resumed = f" (resumed after {report.resumed_from} bytes)" if report.resumed_from else ""
        print(f"downloaded {report.downloaded_bytes} bytes{resumed}")
    if report.installed:
        print(f"installed {len(report.installed)} verified files")
    else:
        print("already verified; nothing to do")
    print(
        f"{report.verified} files of commit {report.commit[:12]} verified in {report.dataset_dir}"
    )
    if args.dest:  # only the default location is found without --data
        print(f"use it with --data '{report.dataset_dir}' or RMB_DATA='{report.dataset_dir}'")
    return 0
