"""The public way to run the benchmark from Python; `rmb run` is a thin layer over it.

import benchmark
result = benchmark.run(judge="openai:gpt-4o", template="pairwise", data="RMB_dataset",
                       selection=Selection(per_scenario=5), cache_dir="cache")
result.scores, result.run_dir
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import json
import os
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ParamSpec

from judges.base import Judge, JudgeOptions, Usage
from judges.cache import CacheStore
from judges.errors import UserError

from . import manifest as mf
from .data import Item, Selection, load, outline, return_freed_memory
from .plan import BonStrategy, Orders, plan
from .results import JudgedComparison
from .runner import (
    Prepared,
    TemplateLike,
    cost_of,
    estimate_input_tokens,
    execute,
    judge_comparisons,
    prepare,
    price_known,
)

COMPARISONS_FILE = "comparisons.jsonl"
MANIFEST_FILE = "manifest.json"
# the cache key of every comparison, so a rerun with the same inputs renders nothing
KEYS_FILE = "keys.json"
P = ParamSpec("P")


@dataclass(frozen=True, slots=True)
class Estimate:
    """What `dry_run` reports: nothing is sent."""

    comparisons: int
    requests: int  # distinct requests after dedupe
    cached: int  # of those, already answered by the cache
    input_tokens: int  # chars/4 over the requests still to send
    # None when the price table does not know the model (see judges.pricing, --prices)
    cost_input_usd: float | None  # the input side alone (a floor)
    cost_max_usd: float | None  # if every answer used max_tokens (a ceiling)


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    # complete | interrupted | budget | dry-run
    status: str
    judged: list[JudgedComparison] = field(default_factory=list)
    scores: Any = None
    comparisons: int = 0
    requests: int = 0
    cache_hits: int = 0
    sent: int = 0
    failed: int = 0
    retries: int = 0
    spent_usd: float = 0.0
    wall_s: float = 0.0
    estimate: Estimate | None = None
    reports: list[Path] = field(default_factory=list)


def _load_items(
    data: str | Path | Sequence[Item] | None, selection: Selection
) -> tuple[list[Item], str]:
    if data is None:
        from .selection_args import data_source

        data = data_source(argparse.Namespace(data=None))
    if isinstance(data, str | Path):
        # files the selection cannot keep are not parsed (the same items, ~5x faster for
        # `--set pairwise --limit 500`)
        return load(data, only=selection), str(Path(data).resolve())
    return list(data), "<items given in Python>"


def _build_judge(spec: str | None, options: JudgeOptions) -> Judge:
    from judges.registry import build_judge, default_judge_spec

    return build_judge(spec or default_judge_spec(), options)


def estimate(prepared: Prepared, hits: set[str], judge: Judge, *, batch: bool = False) -> Estimate:
    """Requests to send, tokens and cost (at the batch price with `batch`)."""
    priced = price_known(judge.identity)
    tokens_in = tokens_out = 0
    for key in prepared.first:
        if key not in hits:
            r = prepared.request(key)
            tokens_in += estimate_input_tokens(r)
            tokens_out += r.max_tokens
    return Estimate(
        comparisons=len(prepared.comparisons),
        requests=len(prepared.first),
        cached=len(hits),
        input_tokens=tokens_in,
        cost_input_usd=cost_of(judge.identity, Usage(tokens_in, 0, batch=batch))
        if priced
        else None,
        cost_max_usd=cost_of(judge.identity, Usage(tokens_in, tokens_out, batch=batch))
        if priced
        else None,
    )


@functools.cache
def _code_stamp() -> str:
    """Hash of the code that turns a comparison into request bytes (rendering, request
    building, key): saved keys from before a change to it are not trusted."""
    import judges.base
    import prompts.templates

    from . import runner

    h = hashlib.sha256()
    for module in (judges.base, prompts.templates, runner):
        h.update(Path(str(module.__file__)).read_bytes())
    return h.hexdigest()


def _saved_keys(path: Path, digest: str, n: int) -> list[str] | None:
    """Keys an earlier run with the very same inputs and code computed (a rerun renders nothing)."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("inputs") != digest:
        return None
    keys = saved.get("keys") if saved.get("code") == _code_stamp() else None
    if not isinstance(keys, list) or len(keys) != n:
        return None
    # one string per distinct key (a full run's 46k lines name 31k keys)
    distinct: dict[str, str] = {}
    return [distinct.setdefault(k, k) for k in keys]


async def arun(
    judge: str | Judge | None = None,
    template: str | Path | TemplateLike = "pairwise",
    *,
    data: str | Path | Sequence[Item] | None = None,
    selection: Selection | None = None,
    options: JudgeOptions | None = None,
    orders: Orders = "both",
    bon_strategy: BonStrategy | None = None,
    permutations: int = 1,
    samples: int = 1,
    seed: int = 0,
    ties: str = "strict",
    bootstrap: int = 1000,
    cache_dir: str | Path | None = None,
    runs_dir: str | Path = "runs",
    run_id: str | None = None,
    max_cost: float | None = None,
    dry_run: bool = False,
    progress: bool = False,
    resume_hint: str | None = None,
    handle_signals: bool = True,
    batch: bool = False,
    wait: bool = True,
    poll_s: float = 5.0,
) -> RunResult:
    """`run` inside a running event loop. A `Judge` object may be passed instead of a spec (it is
    not closed here); a spec builds one with `options` and closes it at the end."""
    t0 = time.monotonic()
    started = mf.now_iso()
    options = options or JudgeOptions()
    selection = selection or Selection()
    if isinstance(template, str | Path):
        from prompts import load_template

        tpl: TemplateLike = load_template(str(template))
    else:
        tpl = template
    items, source = _load_items(data, selection)
    items = selection.apply(items)
    # items read from disk can be read again: the run lets their texts go once it has its answers
    from_disk = data is None or isinstance(data, str | Path)
    if not items:
        raise UserError(
            f"{source}: the selection matched no items; widen --set/--goal/--task/--scenario"
        )
    comparisons = plan(
        items,
        tpl.mode,
        orders=orders,
        bon_strategy=bon_strategy,
        permutations=permutations,
        samples=samples,
        seed=seed,
    )
    owned = judge is None or isinstance(judge, str)
    the_judge = _build_judge(judge, options) if judge is None or isinstance(judge, str) else judge
    try:
        identity = the_judge.identity
        if max_cost is not None and not price_known(identity):
            raise UserError(
                f"--max-cost: no price is known for {identity.label()}, so the budget cannot be "
                "kept; give its prices with --prices FILE, or drop --max-cost"
            )
        data_hash = mf.items_hash(items)
        plan_opts = {
            "orders": orders,
            "bon_strategy": bon_strategy or tpl.mode,
            "permutations": permutations,
            "samples": samples,
            "seed": seed,
        }
        digest = mf.fingerprint(
            identity,
            tpl.name,
            {
                "template_hash": tpl.text_hash(),
                "items": data_hash,
                "plan": plan_opts,
                "answer": mf.answer_options(options),
            },
        )
        rid = run_id or mf.run_id(identity, tpl.name, digest)
        run_dir = Path(runs_dir) / rid
        known = _saved_keys(run_dir / KEYS_FILE, digest, len(comparisons))
        prepared = prepare(items, comparisons, tpl, identity, options, known_keys=known)
        store = CacheStore(cache_dir)
        try:
            if dry_run:
                hits = await asyncio.to_thread(store.present, prepared.first)
                est = estimate(prepared, hits, the_judge, batch=batch)
                return RunResult(
                    rid,
                    run_dir,
                    "dry-run",
                    comparisons=len(comparisons),
                    requests=est.requests,
                    cache_hits=est.cached,
                    wall_s=time.monotonic() - t0,
                    estimate=est,
                )
            run_dir.mkdir(parents=True, exist_ok=True)
            if known is None:
                saved = {"inputs": digest, "code": _code_stamp(), "keys": prepared.keys}
                mf.write_json(run_dir / KEYS_FILE, saved)
            manifest: dict[str, Any] = {
                "run_id": rid,
                "inputs": digest,
                "status": "running",
                "judge": identity.label(),
                "judge_identity": asdict(identity),
                "judge_options": mf.sending_options(options),
                "template": {
                    "name": tpl.name,
                    "text_hash": tpl.text_hash(),
                    "parser": tpl.parser,
                    "mode": tpl.mode,
                },
                "data": {"source": source, "items": len(items), "items_hash": data_hash},
                "selection": asdict(selection),
                "plan": plan_opts,
                "ties": ties,
                "max_cost_usd": max_cost,
                "batch": batch,
                "cache": str(store.path.resolve()),
                "versions": mf.versions(),
                "git_commit": mf.git_commit(),
                "started_at": started,
            }
            mf.write_json(run_dir / MANIFEST_FILE, manifest)
            if batch:
                from .batch_execute import execute_batch

                outcome = await execute_batch(
                    prepared,
                    the_judge,
                    store,
                    wait=wait,
                    max_cost=max_cost,
                    progress=progress,
                    handle_signals=handle_signals,
                    poll_s=(poll_s, min(60.0, 20 * poll_s)),
                )
            else:
                outcome = await execute(
                    prepared,
                    the_judge,
                    store,
                    concurrency=options.concurrency,
                    max_cost=max_cost,
                    progress=progress,
                    handle_signals=handle_signals,
                )
            # past here nothing is rendered: scoring needs no text, and the report's few
            # examples read theirs again from the dataset (a full RMB run's texts are 43 MB)
            prepared.release()
            if from_disk:
                items = outline(items)
                return_freed_memory()
            judged = judge_comparisons(prepared, outcome, store, tpl.parser, identity)
        finally:
            store.close()
    finally:
        if owned:
            await the_judge.aclose()

    del prepared  # its index of keys (MBs on the full RMB) is not needed past judging
    _write_jsonl(run_dir / COMPARISONS_FILE, judged)
    c = outcome.counters
    result = RunResult(
        rid,
        run_dir,
        outcome.status,
        judged,
        comparisons=len(comparisons),
        requests=c.total,
        cache_hits=c.cache_hits,
        sent=c.sent,
        failed=c.failed,
        retries=c.retries,
        spent_usd=c.spent_usd,
    )
    if outcome.status == "complete":
        from .scoring import score

        result.scores = score(items, judged, ties=ties, bootstrap=bootstrap, seed=seed)  # type: ignore[arg-type]
    manifest.update(
        status=outcome.status,
        finished_at=mf.now_iso(),
        counts={
            "comparisons": len(comparisons),
            "judged": len(judged),
            "requests": c.total,
            "cache_hits": c.cache_hits,
            "sent": c.sent,
            "failed": c.failed,
            "retries": c.retries,
            "input_tokens": c.input_tokens,
            "output_tokens": c.output_tokens,
            "spent_usd": c.spent_usd,
        },
        wall_s=time.monotonic() - t0,
    )
    if outcome.status != "complete" and resume_hint:
        manifest["resume"] = resume_hint
    mf.write_json(run_dir / MANIFEST_FILE, manifest)
    if result.scores is not None:
        from .report import write_reports

        result.reports = write_reports(
            run_dir,
            result.scores,
            manifest=manifest,
            items=None if from_disk else items,
            judged=judged,
            completions=outcome.answers,
        )
    result.wall_s = time.monotonic() - t0
    return result


def _write_jsonl(path: Path, judged: Sequence[JudgedComparison]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w") as fh:
        fh.writelines(j.to_json() + "\n" for j in judged)
    os.replace(tmp, path)


def _blocking(f: Callable[P, Coroutine[Any, Any, RunResult]]) -> Callable[P, RunResult]:
    """The same call in a fresh event loop, with the same (typed) parameters."""

    def blocking(*args: P.args, **kwargs: P.kwargs) -> RunResult:
        return asyncio.run(f(*args, **kwargs))

    return blocking


run = _blocking(arun)
run.__doc__ = """Judge the selected RMB items and score them (the arguments are `arun`'s). Rerunning
with the same arguments lands in the same run directory and asks only what the cache does not
hold."""
