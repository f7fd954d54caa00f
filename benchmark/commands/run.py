"""`rmb run`: judge a selection of RMB with one judge and one template, resumably."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from benchmark.api import Estimate, RunResult, run
from benchmark.commands.flags import add_flags, from_values
from benchmark.config import load_run_config
from benchmark.options import RunOptions, fields_in
from benchmark.reporting.escape import for_terminal
from benchmark.reporting.facts import run_label
from benchmark.reporting.markdown import paper_table
from benchmark.rundir import read_manifest
from judges.models import load_rules
from judges.pricing import load_prices

# the flag groups of `rmb run --help`, in order
GROUPS = ("main", "selection", "plan", "judge", "run")

EXIT_INTERRUPTED, EXIT_BUDGET, EXIT_FAILED = 130, 3, 4
FAILED_SHARE = 0.9  # a run is failed when this share of the requests it sent failed


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="judge RMB items with a judge and a template (resumable)",
        description="Judge the selected RMB items and score them. Every answer is cached: "
        "rerunning the same command resumes where it stopped and asks nothing twice.",
    )
    p.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="run config (TOML) with the same options; flags override it",
    )
    add_flags(p, GROUPS)
    p.set_defaults(func=cmd_run)


def merged_options(args: argparse.Namespace) -> RunOptions:
    """Command line > config file > built-in defaults, checked."""
    cfg = load_run_config(args.config) if args.config else {}
    given = {name: getattr(args, name, None) for name, _ in fields_in()}
    return from_values({**cfg, **{k: v for k, v in given.items() if v is not None}})


def cmd_run(args: argparse.Namespace) -> int:
    options = merged_options(args)
    if options.prices is not None:
        load_prices(options.prices)
    if options.model_rules is not None:
        load_rules(options.model_rules)
    quiet = options.quiet
    result = run(
        options,
        progress=not quiet and sys.stderr.isatty(),
        resume_hint="rmb " + shlex.join(sys.argv[1:]),
    )
    if result.estimate is not None:
        _print_estimate(result.estimate, result.run_dir, batch=options.batch)
        return 0
    summary = _summary(result)
    resume = "rmb " + shlex.join(sys.argv[1:])
    if result.status == "pending":
        print(
            f"rmb: batches are running at the provider. {summary}\nTo collect their answers "
            f"and submit what is missing, rerun:\n  {resume}\n(or `rmb batches collect`; "
            "`rmb batches list` shows them)",
            file=sys.stderr,
        )
        return 0 if options.no_wait else EXIT_INTERRUPTED
    if result.status == "interrupted":
        print(
            f"rmb: stopped. {summary}\nAnswers so far are cached; to resume run:\n  {resume}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    if result.status == "budget":
        print(
            f"rmb: stopped before exceeding --max-cost ${options.max_cost or 0:g}. {summary}\n"
            f"To go on, raise --max-cost and rerun:\n  {resume}",
            file=sys.stderr,
        )
        return EXIT_BUDGET
    if result.sent and result.failed >= FAILED_SHARE * result.sent:
        print(
            f"rmb: error: {result.failed:,} of the {result.sent:,} requests sent failed "
            f"({failure_reasons(result.judged)}); the scores would mean nothing. {summary}. "
            "Fix that and rerun the same command: failed requests are asked again, answers "
            "are kept",
            file=sys.stderr,
        )
        return EXIT_FAILED
    if not quiet:
        if result.scores is not None:
            label = run_label(read_manifest(result.run_dir))
            print(for_terminal(paper_table(label, result.scores)))
        print(summary)
        print(f"run: {result.run_dir}" + "".join(f"\n  {p}" for p in result.reports))
    return 0


def _print_estimate(e: Estimate, run_dir: Path, *, batch: bool) -> None:
    """What a dry run found: the requests it would send and what they would cost."""
    print(f"comparisons       {e.comparisons:>10,}")
    print(f"distinct requests {e.requests:>10,}")
    print(f"cache answers     {e.cached:>10,}")
    print(f"to send           {e.requests - e.cached:>10,}")
    print(f"input tokens      {e.input_tokens:>10,}  (estimate: characters / 4)")
    if e.cost_input_usd is None or e.cost_max_usd is None:
        print("cost              unknown: no price for this model (--prices FILE)")
    else:
        print(
            f"cost              ${e.cost_input_usd:.4f} (input alone) to "
            f"${e.cost_max_usd:.4f} (every answer at max tokens)"
            + (" at batch prices (50%)" if batch else "")
        )
    print(f"run directory     {run_dir}  (nothing was sent)")


def _summary(result: RunResult) -> str:
    """One line: what the run asked, sent, spent and how long it took."""
    summary = (
        f"{result.comparisons:,} comparisons, {result.requests:,} distinct requests: "
        f"{result.cache_hits:,} from the cache, {result.sent:,} sent, {result.retries:,} retries, {result.failed:,} failed; "
        + (
            "cost unknown (no price for this model: --prices FILE)"
            if result.spent_usd is None
            else f"${result.spent_usd:.4f} spent"
        )
        + f"; {result.wall_s:.1f} s"
    )
    if result.counters.cached_input_tokens:
        share = result.counters.cached_input_tokens / max(1, result.counters.input_tokens)
        summary += f"; {share:.0%} of input tokens read from the provider's prompt cache"
    return summary


def failure_reasons(judged: Any, shown: int = 2) -> str:
    """The commonest reasons the requests of this run failed, with their counts."""
    reasons = Counter(
        j.verdict.reason[:160]
        for j in judged
        if not j.cached and j.verdict.kind == "invalid" and j.finish_reason != "stop"
    )
    top = "; ".join(f"{n:,}x {r}" for r, n in reasons.most_common(shown))
    return for_terminal(top, keep_newlines=False) or "no reason given"
