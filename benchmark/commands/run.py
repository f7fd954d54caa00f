"""`rmb run`: judge a selection of RMB with one judge and one template, resumably."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from judges.base import JudgeOptions
from judges.errors import UserError

from ..config import KEYS, load_run_config
from ..plan import BON_STRATEGIES, ORDERS
from ..selection_args import add_selection_args, data_source, selection_from_args

EXIT_INTERRUPTED, EXIT_BUDGET = 130, 3
_J = JudgeOptions()
# built-in defaults, applied after the config file (every flag below defaults to None so that
# "not given" can be told apart from "given the default value")
DEFAULTS: dict[str, Any] = {
    "template": "pairwise",
    "seed": 0,
    "orders": "both",
    "permutations": 1,
    "samples": 1,
    "ties": "strict",
    "concurrency": _J.concurrency,
    "temperature": _J.temperature,
    "max_tokens": _J.max_tokens,
    "timeout": _J.timeout_s,
    "max_retries": _J.max_retries,
    "runs_dir": "runs",
    "bootstrap": 1000,
    "quiet": False,
    "batch": False,
    "no_wait": False,
    "poll": 5.0,
}


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
    p.add_argument(
        "--judge",
        metavar="SPEC",
        help="openai:MODEL, anthropic:MODEL, vllm:MODEL, local (default: openai if OPENAI_API_KEY is set, else anthropic if ANTHROPIC_API_KEY is, else local)",
    )
    p.add_argument(
        "--template",
        metavar="NAME|PATH",
        help="prompt template (default: pairwise); see `rmb templates list`",
    )
    add_selection_args(p)
    p.set_defaults(seed=None)
    g = p.add_argument_group("plan")
    g.add_argument("--orders", choices=ORDERS, help="pairwise display orders (default: both)")
    g.add_argument(
        "--bon-strategy",
        choices=BON_STRATEGIES,
        help="Best-of-N strategy (default: the template's mode)",
    )
    g.add_argument(
        "--permutations",
        type=int,
        metavar="K",
        help="listwise: K seeded shuffles per item (default 1)",
    )
    g.add_argument(
        "--samples",
        type=int,
        metavar="K",
        help="K answers per comparison, majority vote (default 1)",
    )
    g.add_argument(
        "--ties",
        choices=("strict", "half"),
        help="a tie scores 0 (strict, RMB's rule) or 0.5 (default: strict)",
    )
    g.add_argument(
        "--bootstrap",
        type=int,
        metavar="N",
        help="bootstrap resamples for intervals (default 1000)",
    )
    j = p.add_argument_group("judge")
    j.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help=f"requests in flight (default {_J.concurrency})",
    )
    j.add_argument("--rps", type=float, metavar="R", help="at most R requests per second")
    j.add_argument("--tpm", type=int, metavar="T", help="at most T tokens per minute")
    j.add_argument(
        "--temperature", type=float, help=f"sampling temperature (default {_J.temperature})"
    )
    j.add_argument(
        "--max-tokens",
        type=int,
        metavar="N",
        help=f"answer token limit (default {_J.max_tokens}; a template may set its own)",
    )
    j.add_argument(
        "--system-prompt", metavar="TEXT", help="a system message put before the template's"
    )
    j.add_argument(
        "--base-url", metavar="URL", help="OpenAI-compatible server (vLLM, llama.cpp, SGLang)"
    )
    j.add_argument(
        "--api-key-env", metavar="VAR", help="the environment variable holding the API key"
    )
    j.add_argument(
        "--transport",
        choices=("sdk", "lean"),
        help="HTTP client of openai: and anthropic: judges: the official SDK or a lean aiohttp "
        "session (default: lean for --base-url servers, sdk for the hosted APIs)",
    )
    j.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help=f"per-request timeout in seconds (default {_J.timeout_s:g})",
    )
    j.add_argument(
        "--max-retries",
        type=int,
        metavar="N",
        help=f"retries on 429/5xx/timeouts (default {_J.max_retries})",
    )
    o = p.add_argument_group("run")
    o.add_argument(
        "--cache-dir", metavar="DIR", help="answer cache (default: $RMB_CACHE_DIR or ./cache)"
    )
    o.add_argument("--runs-dir", metavar="DIR", help="where run directories go (default: ./runs)")
    o.add_argument(
        "--run-id",
        metavar="ID",
        help="run directory name (default: derived from judge, template, data, options)",
    )
    o.add_argument(
        "--max-cost", type=float, metavar="USD", help="stop before spending more than this"
    )
    o.add_argument(
        "--prices",
        metavar="FILE",
        help='USD per million tokens for models the built-in table lacks (TOML/JSON: {"model": {"input": 2.5, "output": 10}})',
    )
    o.add_argument(
        "--batch",
        action="store_true",
        default=None,
        help="openai:/anthropic: send through the provider's batch API (half price, within 24 h); "
        "waits and polls unless --no-wait; Ctrl-C leaves the batches running",
    )
    o.add_argument(
        "--no-wait",
        action="store_true",
        default=None,
        help="--batch: submit and exit; rerun the command (or `rmb batches collect`) to collect",
    )
    o.add_argument(
        "--poll",
        type=float,
        metavar="S",
        help="--batch: first wait between polls in seconds, growing to a minute (default 5)",
    )
    o.add_argument(
        "--dry-run",
        action="store_true",
        help="count requests, cache hits, tokens and cost; send nothing",
    )
    o.add_argument("--quiet", action="store_true", default=None, help="no progress bar, no table")
    p.set_defaults(func=cmd_run)


def merged_options(args: argparse.Namespace) -> argparse.Namespace:
    """Command line > config file > built-in defaults."""
    cfg = load_run_config(args.config) if args.config else {}
    out = argparse.Namespace(**vars(args))
    for dest in {d for d, _ in KEYS.values()}:
        if getattr(out, dest, None) is None:
            setattr(out, dest, cfg.get(dest, DEFAULTS.get(dest)))
    return out


def judge_options(a: argparse.Namespace) -> JudgeOptions:
    return JudgeOptions(
        temperature=a.temperature,
        max_tokens=a.max_tokens,
        system_prompt=a.system_prompt,
        base_url=a.base_url,
        api_key_env=a.api_key_env,
        concurrency=a.concurrency,
        requests_per_s=a.rps,
        tokens_per_min=a.tpm,
        timeout_s=a.timeout,
        max_retries=a.max_retries,
        transport=getattr(a, "transport", None),
    )


def cmd_run(args: argparse.Namespace) -> int:
    from ..api import run

    a = merged_options(args)
    for flag, v in (
        ("--concurrency", a.concurrency),
        ("--samples", a.samples),
        ("--permutations", a.permutations),
    ):
        if v < 1:
            raise UserError(f"{flag} must be at least 1, got {v}")
    if a.max_cost is not None and a.max_cost <= 0:
        raise UserError(f"--max-cost must be a positive amount in USD, got {a.max_cost}")
    if a.data is not None:
        a.data = Path(a.data)
    if a.prices is not None:
        from judges.pricing import load_prices

        load_prices(a.prices)
    quiet = bool(a.quiet)
    result = run(
        judge=a.judge,
        template=a.template,
        data=data_source(a),
        selection=selection_from_args(a),
        options=judge_options(a),
        orders=a.orders,
        bon_strategy=a.bon_strategy,
        permutations=a.permutations,
        samples=a.samples,
        seed=a.seed,
        ties=a.ties,
        bootstrap=a.bootstrap,
        cache_dir=a.cache_dir,
        runs_dir=a.runs_dir,
        run_id=a.run_id,
        max_cost=a.max_cost,
        dry_run=a.dry_run,
        progress=not quiet and sys.stderr.isatty(),
        resume_hint="rmb " + shlex.join(sys.argv[1:]),
        batch=bool(a.batch),
        wait=not a.no_wait,
        poll_s=a.poll,
    )
    if result.estimate is not None:
        e = result.estimate
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
                + (" at batch prices (50%)" if a.batch else "")
            )
        print(f"run directory     {result.run_dir}  (nothing was sent)")
        return 0
    summary = (
        f"{result.comparisons:,} comparisons, {result.requests:,} distinct requests: "
        f"{result.cache_hits:,} from the cache, {result.sent:,} sent, {result.retries:,} retries, {result.failed:,} failed; "
        f"${result.spent_usd:.4f} spent; {result.wall_s:.1f} s"
    )
    resume = "rmb " + shlex.join(sys.argv[1:])
    if result.status == "pending":
        print(
            f"rmb: batches are running at the provider. {summary}\nTo collect their answers "
            f"and submit what is missing, rerun:\n  {resume}\n(or `rmb batches collect`; "
            "`rmb batches list` shows them)",
            file=sys.stderr,
        )
        return 0 if a.no_wait else EXIT_INTERRUPTED
    if result.status == "interrupted":
        print(
            f"rmb: stopped. {summary}\nAnswers so far are cached; to resume run:\n  {resume}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    if result.status == "budget":
        print(
            f"rmb: stopped before exceeding --max-cost ${a.max_cost:g}. {summary}\n"
            f"To go on, raise --max-cost and rerun:\n  {resume}",
            file=sys.stderr,
        )
        return EXIT_BUDGET
    if not quiet:
        if result.scores is not None:
            print_paper_table(result.run_dir, result.scores)
        print(summary)
        print(f"run: {result.run_dir}" + "".join(f"\n  {p}" for p in result.reports))
    return 0


def print_paper_table(run_dir: Path, scores: Any) -> None:
    """The RMB paper's row for this run: the four subsets and Overall, with 95% intervals."""
    from ..report import md_table, paper_row, read_manifest, run_label
    from ..scoring import SUBSET_NAMES

    label = run_label(read_manifest(run_dir))
    print(md_table(["Judge × template", *SUBSET_NAMES, "Overall"], [[label, *paper_row(scores)]]))
