"""`rmb serve-local` (one llama.cpp server kept up for repeated runs) and `rmb demo` (a small
seeded RMB sample judged offline by the embedded SmolLM2 judge, with its report)."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from benchmark.data import DataError, Item, PairwiseItem, stable_rank
from judges.errors import UserError

# The demo sample: DEMO_PER_SUBSET items from each of the four subsets (helpfulness/harmlessness
# x pairwise/BoN), drawn seeded from the items short enough to keep a 135M model on 2 CPUs quick
# (prompt time grows with length: ~1,400 tokens take 6-9 s on a quiet machine). BoN items with
# two losers: 2 per subset, both orders -> 24 prompts.
DEMO_PER_SUBSET = 2
DEMO_MAX_CHARS = 1000
DEMO_MAX_LOSERS = 2
# One-token answers read from the top logprobs: every answer has a verdict, even from a model
# this small (asked for reasoning first, SmolLM2 never reaches a [[A]]/[[B]] verdict line).
DEMO_TEMPLATE = "pairwise-logprob"
TINY_MODEL_NOTE = (
    "Note: SmolLM2-135M is a tiny model, no real grader: it answers A whatever the order, so "
    "its accuracy is chance. The report shows it: Consistency (same winner in both orders) near "
    "0%, Picks A near 100%. The demo shows the pipeline working offline; for real numbers run "
    "the same with a real judge, e.g. `rmb run --judge openai:gpt-4o` (see README)."
)


def register(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser(
        "serve-local",
        help="keep the embedded llama.cpp judge server running for repeated runs",
        description="Serve a GGUF model (default: SmolLM2-135M-Instruct) with llama.cpp's "
        "OpenAI-compatible server on 127.0.0.1 until Ctrl-C.",
    )
    serve.add_argument("--model", type=Path, metavar="PATH", help="a GGUF file (default: SmolLM2)")
    serve.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default 8080)")
    serve.set_defaults(func=cmd_serve_local)

    demo = sub.add_parser(
        "demo",
        help="judge a small seeded RMB sample with the embedded local model and write the report",
    )
    demo.add_argument(
        "--data",
        type=Path,
        metavar="PATH",
        help="RMB_dataset directory (default: $RMB_DATA, else the fetched copy, else fetch it)",
    )
    demo.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    demo.add_argument(
        "--per-subset",
        type=int,
        default=DEMO_PER_SUBSET,
        metavar="N",
        help=f"items from each of the four subsets (default {DEMO_PER_SUBSET})",
    )
    demo.add_argument("--runs-dir", type=Path, default=Path("runs"), help="default: runs/")
    demo.add_argument("--cache-dir", type=Path, help="default: ./cache or $RMB_CACHE_DIR")
    demo.set_defaults(func=cmd_demo)


# ---------------------------------------------------------------- serve-local


def cmd_serve_local(args: argparse.Namespace) -> int:
    import asyncio

    from judges.child_server import describe_exit
    from judges.errors import JudgeServerDied
    from judges.local import TRY_HINT, LlamaServer, resolve_model

    model = resolve_model(str(args.model) if args.model else "")
    alias = model.stem
    server = LlamaServer(model, alias, port=args.port)
    try:
        asyncio.run(server.astart())
        assert server.child is not None and server.child.proc is not None
        print(f"serving {model} at {server.base_url} (context {server.n_ctx} tokens); Ctrl-C stops")
        print("judge with it, as often as you like:")
        print(f"  rmb run --judge openai:{alias} --base-url {server.base_url} --concurrency 1")
        sys.stdout.flush()
        code = server.child.proc.wait()
        why = f"{describe_exit(code)} while serving"
        raise JudgeServerDied(server.child.failure(server.who, why, TRY_HINT))
    except KeyboardInterrupt:
        print("stopped")
        return 0
    finally:
        server.stop()


# ---------------------------------------------------------------- demo


def _size(item: Item) -> int:
    return sum(len(m.content) for m in item.conversation) + sum(
        len(r.text) for r in item.candidates().values()
    )


def demo_items(
    items: Sequence[Item],
    per_subset: int = DEMO_PER_SUBSET,
    seed: int = 0,
    max_chars: int = DEMO_MAX_CHARS,
) -> list[Item]:
    """`per_subset` short items from each subset, in a seeded order that does not move when the
    dataset grows or shrinks elsewhere; dataset order in the result."""
    short = [
        it
        for it in items
        if _size(it) <= max_chars
        and (isinstance(it, PairwiseItem) or len(it.losers) <= DEMO_MAX_LOSERS)
    ]
    short.sort(key=lambda it: stable_rank(seed, it.uid))
    taken: Counter[str] = Counter()
    picked = []
    for it in short:
        if taken[it.category.subset] < per_subset:
            taken[it.category.subset] += 1
            picked.append(it)
    picked.sort(key=lambda it: (it.category.path, it.uid))
    return picked


def demo_data(data: Path | None) -> Path:
    """--data, else $RMB_DATA, else the fetched copy, else fetch it now."""
    from benchmark.commands.selection_args import data_source
    from benchmark.data.fetch import FetchError, fetch_dataset, fetch_home

    try:
        return data_source(argparse.Namespace(data=data))
    except DataError:
        pass
    print(f"RMB is not here yet: downloading it once into {fetch_home()} ...", file=sys.stderr)
    try:
        return fetch_dataset().dataset_dir
    except FetchError as e:
        raise UserError(
            f"{e}\nThe demo needs the RMB dataset. Connect to the internet and rerun `make demo` "
            "(or `rmb data fetch`), or point at a copy you have: `rmb demo --data "
            "PATH/RMB_dataset` or `RMB_DATA=PATH/RMB_dataset make demo`."
        ) from None


def cmd_demo(args: argparse.Namespace) -> int:
    from benchmark.api import run
    from benchmark.data import load
    from benchmark.options import RunOptions

    source = demo_data(args.data)
    items = demo_items(load(source), args.per_subset, args.seed)
    subsets = Counter(it.category.subset for it in items)
    print(
        f"demo: {len(items)} RMB items from {source} ("
        + ", ".join(f"{n} {s}" for s, n in sorted(subsets.items()))
        + f"), template '{DEMO_TEMPLATE}', both orders, judged by SmolLM2-135M-Instruct "
        "in a local llama.cpp server",
        file=sys.stderr,
    )
    options = RunOptions(
        judge="local",
        template=DEMO_TEMPLATE,
        concurrency=1,
        orders="both",
        bon_strategy="pairwise",
        seed=args.seed,
        runs_dir=args.runs_dir,
        cache_dir=args.cache_dir,
    )
    result = run(options, items=items, progress=sys.stderr.isatty(), resume_hint="rmb demo")
    if result.status != "complete":
        print(f"demo stopped ({result.status}); rerun `make demo` to finish it", file=sys.stderr)
        return 130
    chose = Counter(j.verdict.choice for j in result.judged if j.verdict.kind == "choice")
    invalid = sum(1 for j in result.judged if j.verdict.kind == "invalid")
    print(
        f"judged {len(result.judged)} comparisons in {result.wall_s:.0f} s ({result.requests} "
        f"distinct prompts: {result.sent} asked, {result.cache_hits} from the cache); "
        f"{invalid} invalid"
        + (f"; it picked A in {chose[0]} of {sum(chose.values())}" if chose else "")
    )
    print(f"run directory: {result.run_dir}")
    for path in result.reports:
        if path.suffix == ".html":
            print(f"open the report: {path.resolve().as_uri()}  (or: xdg-open {path})")
        elif path.suffix == ".md":
            print(f"read it in a terminal: less {path}")
    if not result.reports:
        print(f"per-comparison verdicts: {result.run_dir / 'comparisons.jsonl'}")
    print(TINY_MODEL_NOTE)
    return 0
