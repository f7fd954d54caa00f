"""`rmb report RUN`, `rmb compare RUN RUN...`, `rmb score-rewards FILE`: tables from runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.reporting.compare import compare_runs
from benchmark.reporting.escape import for_terminal
from benchmark.reporting.facts import run_label
from benchmark.reporting.markdown import compare_markdown, paper_table
from benchmark.reporting.rebuild import ensure_reports, rebuild
from benchmark.reporting.report import write_comparison, write_reports
from benchmark.rundir import read_manifest
from benchmark.scoring.rewards import score_rewards_file


def stats_args(p: argparse.ArgumentParser, ties: bool = True) -> None:
    if ties:
        p.add_argument(
            "--ties",
            choices=("strict", "half"),  # scoring.TIES, not imported: it imports numpy
            help="a tie scores 0 (strict, RMB's rule) or 0.5 (half); default: the run's rule",
        )
    p.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        metavar="N",
        help="bootstrap resamples for the 95%% intervals (default 1000; 0 for none)",
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="rebuild a run's report.json/.md/.html from its comparisons and the cache",
        description="Score a run again with no new requests: raw answers are read back from the "
        "cache and parsed with the current parser, so a better parser re-scores old runs.",
    )
    p.add_argument("run", type=Path, metavar="RUN", help="run directory (runs/<run-id>)")
    p.add_argument("--data", type=Path, help="the dataset (default: the run's, else $RMB_DATA)")
    p.add_argument("--cache-dir", type=Path, help="cache directory (default: the run's)")
    p.add_argument(
        "--no-reparse",
        action="store_true",
        help="keep the verdicts stored in comparisons.jsonl instead of parsing the answers again",
    )
    stats_args(p)
    p.set_defaults(func=cmd_report)

    c = sub.add_parser(
        "compare",
        help="judges or templates side by side, with paired bootstrap differences and McNemar",
    )
    c.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="two or more run directories")
    c.add_argument(
        "--out", type=Path, help="also write compare.json, compare.md and compare.html here"
    )
    stats_args(c, ties=False)
    c.set_defaults(func=cmd_compare)

    r = sub.add_parser(
        "score-rewards",
        help="score a classifier reward model from a per-item rewards file (RMB's result format)",
        description="Pairwise lines: pair_uid, chosen_reward, reject_reward (RMB's eval output). "
        "Best-of-N lines: bon_uid, bon_best_reward and loser_rewards (one per loser, in the "
        "dataset's loser_list order). A JSON list or JSONL.",
    )
    r.add_argument("file", type=Path, metavar="FILE", help="rewards file (.json list or .jsonl)")
    r.add_argument("--data", type=Path, help="the dataset (default: $RMB_DATA or the fetched copy)")
    r.add_argument("--name", help="the model's name in the table (default: the file's stem)")
    r.add_argument("--out", type=Path, help="write report.json/.md/.html into this directory")
    stats_args(r)
    r.set_defaults(func=cmd_score_rewards)


def cmd_report(args: argparse.Namespace) -> int:
    r = rebuild(
        args.run,
        data=args.data,
        cache_dir=args.cache_dir,
        ties=args.ties,
        bootstrap=args.bootstrap,
        seed=args.seed,
        reparse_answers=not args.no_reparse,
    )
    print(for_terminal(paper_table(run_label(read_manifest(args.run)), r.scores)))
    print(
        f"\n{r.reparsed:,} answers re-read from the cache ({r.changed:,} verdicts changed); "
        f"{r.not_in_cache:,} comparisons not in the cache kept their stored verdict",
        file=sys.stderr,
    )
    for path in r.paths:
        print(path)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    if len(args.runs) > 1:
        ensure_reports(args.runs)
    result = compare_runs(args.runs, bootstrap=args.bootstrap, seed=args.seed)
    for warning in result.warnings:
        print(f"rmb: warning: {for_terminal(warning)}", file=sys.stderr)
    print(for_terminal(compare_markdown(result)), end="")
    if args.out:
        for path in write_comparison(args.out, result):
            print(path, file=sys.stderr)
    return 0


def cmd_score_rewards(args: argparse.Namespace) -> int:
    out = score_rewards_file(
        args.file,
        data=args.data,
        name=args.name,
        ties=args.ties or "strict",
        bootstrap=args.bootstrap,
        seed=args.seed,
    )
    for warning in out.warnings:
        print(f"rmb: warning: {for_terminal(warning)}", file=sys.stderr)
    print(for_terminal(paper_table(out.label, out.scores)))
    if args.out is not None:
        paths = write_reports(
            args.out, out.scores, manifest=out.manifest, items=out.items, judged=[]
        )
        for path in paths:
            print(path, file=sys.stderr)
    return 0
