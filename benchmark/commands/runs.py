"""`rmb jury RUN RUN...` and `rmb leaderboard [RUNS_DIR]`: new tables made of several runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.commands.report import stats_args
from benchmark.reporting.facts import run_label
from benchmark.reporting.jury import make_jury
from benchmark.reporting.leaderboard import write_leaderboard
from benchmark.reporting.markdown import paper_table
from benchmark.rundir import read_manifest


def register(sub: argparse._SubParsersAction) -> None:
    j = sub.add_parser(
        "jury",
        help="a new run whose verdicts combine several runs' verdicts per comparison",
        description="Several judges (or templates) vote on every comparison they all judged; "
        "the jury is written as a run directory, scored and reported like any run, so "
        "`rmb compare` can pit it against its members. No request is made.",
    )
    j.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="two or more run directories")
    j.add_argument(
        "--rule",
        choices=("majority", "mean-prob"),  # analysis.jury.JURY_RULES
        default="majority",
        help="majority: one vote per member, a split is a tie; mean-prob: average the members' "
        "probabilities (logprob templates) (default majority)",
    )
    j.add_argument(
        "--shared",
        action="store_true",
        help="runs over different items or plans: keep the comparisons all of them judged "
        "(default: refuse, saying what differs)",
    )
    j.add_argument("--out", type=Path, help="the jury's run directory (default: beside the first)")
    j.add_argument("--data", type=Path, help="the dataset (default: the runs')")
    stats_args(j, ties=False)
    j.set_defaults(func=cmd_jury)

    b = sub.add_parser(
        "leaderboard",
        help="every run side by side, ranked by Overall within each data selection",
    )
    b.add_argument(
        "runs_dir",
        type=Path,
        nargs="?",
        default=Path("runs"),
        metavar="RUNS_DIR",
        help="the directory holding the runs (default: runs)",
    )
    b.add_argument(
        "--out", type=Path, help="write leaderboard.json/.md/.html here (default: RUNS_DIR)"
    )
    b.set_defaults(func=cmd_leaderboard)


def cmd_jury(args: argparse.Namespace) -> int:
    run = make_jury(
        args.runs,
        rule=args.rule,
        shared=args.shared,
        out=args.out,
        data=args.data,
        bootstrap=args.bootstrap,
        seed=args.seed,
    )
    for warning in run.warnings:
        print(f"rmb: warning: {warning}", file=sys.stderr)
    print(paper_table(run_label(read_manifest(run.run_dir)), run.rebuilt.scores))
    for path in run.rebuilt.paths:
        print(path)
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    paths, md, warnings = write_leaderboard(args.runs_dir, args.out)
    for warning in warnings:
        print(f"rmb: warning: {warning}", file=sys.stderr)
    print(md, end="")
    for path in paths:
        print(path, file=sys.stderr)
    return 0
