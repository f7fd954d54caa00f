"""The public way to run the benchmark from Python; `rmb run` is a thin layer over it.

    import benchmark
    from benchmark.options import RunOptions
    result = benchmark.run(RunOptions(judge="openai:gpt-4o", data="RMB_dataset", per_scenario=5))
    result.scores, result.run_dir

A run goes through named phases: `_inputs` (items, template, plan), `_identify` (the judge, the
run's digest, directory and saved keys), then `_estimate` for a dry run, or `_start` (the
manifest), `_judge` (cache and judge, verdicts) and `_finish` (comparisons.jsonl, scores, the
final manifest, reports)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ParamSpec

from benchmark import rundir
from benchmark.analysis.facts import ItemFacts, item_facts
from benchmark.analysis.run import analyse_run
from benchmark.data import Item, load, outline, return_freed_memory
from benchmark.data.fetch import default_data_source
from benchmark.options import RunOptions
from benchmark.plan import Comparison, plan
from benchmark.reporting.report import write_reports
from benchmark.results import JudgedComparison
from benchmark.rundir import COMPARISONS_FILE, MANIFEST_FILE, write_jsonl
from benchmark.runner.costs import cost_of, estimate_input_tokens, price_known
from benchmark.runner.execute import Outcome, execute
from benchmark.runner.judged import judge_comparisons
from benchmark.runner.prepare import Prepared, prepare, read_saved_keys, save_keys
from benchmark.runner.progress import Counters
from benchmark.scoring import score
from judges.base import Judge, JudgeIdentity, Usage
from judges.cache import CacheStore
from judges.errors import UserError
from judges.registry import build_judge, default_judge_spec
from prompts import Template, load_template

__all__ = ["COMPARISONS_FILE", "MANIFEST_FILE", "Estimate", "RunResult", "arun", "run"]
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
    # complete | interrupted | budget | pending (batches still open) | dry-run
    status: str
    judged: list[JudgedComparison] = field(default_factory=list)
    scores: Any = None
    comparisons: int = 0
    # the runner's counts: requests, cache hits, sent, failed, retries, tokens, USD
    counters: Counters = field(default_factory=Counters)
    wall_s: float = 0.0
    estimate: Estimate | None = None
    reports: list[Path] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return self.counters.total

    @property
    def cache_hits(self) -> int:
        return self.counters.cache_hits

    @property
    def sent(self) -> int:
        return self.counters.sent

    @property
    def failed(self) -> int:
        return self.counters.failed

    @property
    def retries(self) -> int:
        return self.counters.retries

    @property
    def spent_usd(self) -> float | None:
        """USD spent; None when no price is known for the judge (cost unknown)."""
        return self.counters.spent


@dataclass
class _Run:
    """What the phases of one run share."""

    options: RunOptions
    template: Template
    items: list[Item]
    source: str
    # items read from disk can be read again: the run lets their texts go once it has its answers
    from_disk: bool
    comparisons: list[Comparison]
    t0: float = field(default_factory=time.monotonic)
    started: str = field(default_factory=rundir.now_iso)
    identity: JudgeIdentity = field(default_factory=lambda: JudgeIdentity("", ""))
    digest: str = ""
    run_id: str = ""
    run_dir: Path = Path()
    plan: dict[str, Any] = field(default_factory=dict)
    data_hash: str = ""
    manifest: dict[str, Any] = field(default_factory=dict)
    # the answers' lengths and writers, taken before the texts go (the analyses read them)
    facts: dict[str, ItemFacts] = field(default_factory=dict)


def _inputs(options: RunOptions, items: Sequence[Item] | None) -> _Run:
    """The template, the selected items and the plan's comparisons (no judge yet)."""
    template = load_template(str(options.template))
    selection = options.selection()
    if items is None:
        data = Path(options.data) if options.data is not None else default_data_source()
        # files the selection cannot keep are not parsed (the same items, ~5x faster for
        # `--set pairwise --limit 500`)
        loaded, source = load(data, only=selection), str(data.resolve())
    else:
        loaded, source = list(items), "<items given in Python>"
    kept = selection.apply(loaded)
    if not kept:
        raise UserError(
            f"{source}: the selection matched no items; widen --set/--goal/--task/--scenario"
        )
    comparisons = plan(
        kept,
        template.mode,
        orders=options.orders,  # type: ignore[arg-type]
        bon_strategy=options.bon_strategy,  # type: ignore[arg-type]
        permutations=options.permutations,
        samples=options.samples,
        seed=options.seed,
    )
    return _Run(options, template, kept, source, items is None, comparisons)


def _identify(run: _Run, identity: JudgeIdentity) -> None:
    """The run's digest (everything that decides its requests), id and directory."""
    o = run.options
    if o.max_cost is not None and not price_known(identity):
        raise UserError(
            f"--max-cost: no price is known for {identity.label()}, so the budget cannot be "
            "kept; give its prices with --prices FILE, or drop --max-cost"
        )
    run.identity = identity
    run.data_hash = rundir.items_hash(run.items)
    run.plan = {
        "orders": o.orders,
        "bon_strategy": o.bon_strategy or run.template.mode,
        "permutations": o.permutations,
        "samples": o.samples,
        "seed": o.seed,
    }
    run.digest = rundir.fingerprint(
        identity,
        run.template.name,
        {
            "template_hash": run.template.text_hash(),
            "items": run.data_hash,
            "plan": run.plan,
            "answer": rundir.answer_options(o.judge_options(), identity),
        },
    )
    if o.run_id is not None:
        rundir.check_run_id(o.run_id)
    run.run_id = o.run_id or rundir.run_id(identity, run.template.name, run.digest)
    run.run_dir = Path(o.runs_dir) / run.run_id


def _check_reuse(run: _Run) -> None:
    """A run directory holds one run: the same inputs resume it, other inputs are refused (they
    silently replaced the earlier run's record)."""
    try:
        earlier = json.loads((run.run_dir / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return
    if isinstance(earlier, dict) and earlier.get("inputs") not in (None, run.digest):
        what = f"{earlier.get('judge')}, template {(earlier.get('template') or {}).get('name')}"
        raise UserError(
            f"{run.run_dir} holds another run ({str(what)[:120]}) made from other inputs; pass "
            "another --run-id (or none: a run id derived from the inputs)"
        )


def _prepare(run: _Run) -> Prepared:
    known = read_saved_keys(run.run_dir, run.digest, run.comparisons)
    return prepare(
        run.items,
        run.comparisons,
        run.template,
        run.identity,
        run.options.judge_options(),
        known_keys=known,
    )


async def _estimate(run: _Run, prepared: Prepared, store: CacheStore) -> RunResult:
    """A dry run: what would be sent and what it would cost."""
    hits = await asyncio.to_thread(store.present, prepared.first)
    est = estimate(prepared, hits, run.identity, batch=run.options.batch)
    return RunResult(
        run.run_id,
        run.run_dir,
        "dry-run",
        comparisons=len(run.comparisons),
        counters=Counters(total=est.requests, cache_hits=est.cached),
        wall_s=time.monotonic() - run.t0,
        estimate=est,
    )


def estimate(
    prepared: Prepared, hits: set[str], identity: JudgeIdentity, *, batch: bool = False
) -> Estimate:
    """Requests to send, tokens, and cost (at the batch price with `batch`)."""
    priced = price_known(identity)
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
        cost_input_usd=cost_of(identity, Usage(tokens_in, 0, batch=batch)) if priced else None,
        cost_max_usd=cost_of(identity, Usage(tokens_in, tokens_out, batch=batch))
        if priced
        else None,
    )


def _start(run: _Run, prepared: Prepared, store: CacheStore) -> None:
    """The run directory, its saved keys and the manifest of a run in progress."""
    run.run_dir.mkdir(parents=True, exist_ok=True)
    if not prepared.keys_reused:
        save_keys(run.run_dir, run.digest, run.comparisons, prepared.keys)
    o, t = run.options, run.template
    run.manifest = {
        "run_id": run.run_id,
        "inputs": run.digest,
        "status": "running",
        "judge": run.identity.label(),
        "judge_identity": asdict(run.identity),
        "judge_options": rundir.sending_options(o.judge_options()),
        "template": {
            "name": t.name,
            "text_hash": t.text_hash(),
            "parser": t.parser,
            "mode": t.mode,
        },
        "data": {"source": run.source, "items": len(run.items), "items_hash": run.data_hash},
        "selection": asdict(o.selection()),
        "plan": run.plan,
        "ties": o.ties,
        "max_cost_usd": o.max_cost,
        "options": o.manifest(),
        "cache": str(store.path.resolve()),
        "versions": rundir.versions(),
        "git_commit": rundir.git_commit(),
        "started_at": run.started,
    }
    rundir.write_json(run.run_dir / MANIFEST_FILE, run.manifest)


async def _judge(
    run: _Run,
    prepared: Prepared,
    judge: Judge,
    store: CacheStore,
    *,
    progress: bool,
    handle_signals: bool,
) -> tuple[Outcome, list[JudgedComparison]]:
    """Every comparison answered (cache first, then the judge, online or in batches) and read."""
    o = run.options
    if o.batch:
        from .runner.batch import execute_batch

        outcome = await execute_batch(
            prepared,
            judge,
            store,
            wait=not o.no_wait,
            max_cost=o.max_cost,
            progress=progress,
            handle_signals=handle_signals,
            poll_s=(o.poll, min(60.0, 20 * o.poll)),
        )
    else:
        outcome = await execute(
            prepared,
            judge,
            store,
            concurrency=o.in_flight,
            max_cost=o.max_cost,
            progress=progress,
            handle_signals=handle_signals,
        )
    # past here nothing is rendered: scoring needs no text, and the report's few examples read
    # theirs again from the dataset (a full RMB run's texts are 43 MB)
    prepared.release()
    run.facts = item_facts(run.items)
    if run.from_disk:
        run.items = outline(run.items)
        return_freed_memory()
    judged = judge_comparisons(prepared, outcome, store, run.template.parser, run.identity)
    return outcome, judged


def _finish(
    run: _Run, outcome: Outcome, judged: list[JudgedComparison], resume_hint: str | None
) -> RunResult:
    """comparisons.jsonl, the scores of a complete run, the final manifest and the reports."""
    o = run.options
    write_jsonl(run.run_dir / COMPARISONS_FILE, (j.to_json() for j in judged))
    c = outcome.counters
    result = RunResult(
        run.run_id,
        run.run_dir,
        outcome.status,
        judged,
        comparisons=len(run.comparisons),
        counters=c,
    )
    if outcome.status == "complete":
        result.scores = score(run.items, judged, ties=o.ties, bootstrap=o.bootstrap, seed=o.seed)  # type: ignore[arg-type]
    manifest = run.manifest
    manifest.update(
        status=outcome.status,
        finished_at=rundir.now_iso(),
        counts={"comparisons": len(run.comparisons), "judged": len(judged), **c.counts()},
        wall_s=time.monotonic() - run.t0,
    )
    if outcome.error is not None:
        manifest["stopped_because"] = str(outcome.error)
    if outcome.status != "complete" and resume_hint:
        manifest["resume"] = resume_hint
    rundir.write_json(run.run_dir / MANIFEST_FILE, manifest)
    if result.scores is not None:
        analysis = analyse_run(
            run.items,
            run.facts,
            judged,
            result.scores,
            judge=run.identity.model,
            bootstrap=o.bootstrap,
            seed=o.seed,
        )
        result.reports = write_reports(
            run.run_dir,
            result.scores,
            manifest=manifest,
            items=None if run.from_disk else run.items,
            judged=judged,
            completions=outcome.answers,
            analysis=analysis,
        )
    result.wall_s = time.monotonic() - run.t0
    return result


async def arun(
    options: RunOptions | None = None,
    *,
    judge: Judge | None = None,
    items: Sequence[Item] | None = None,
    progress: bool = False,
    resume_hint: str | None = None,
    handle_signals: bool = True,
) -> RunResult:
    """`run` inside a running event loop. `judge` (a Judge object, not closed here) stands for
    the options' judge spec; `items` for their data."""
    options = (options or RunOptions()).check()
    run = _inputs(options, items)
    the_judge = judge or build_judge(options.judge or default_judge_spec(), options.judge_options())
    try:
        _identify(run, the_judge.identity)
        prepared = _prepare(run)
        lock = None if options.dry_run else rundir.RunLock(run.run_dir)
        try:
            if lock is not None:
                _check_reuse(run)
            store = CacheStore(options.cache_dir)
            try:
                if options.dry_run:
                    return await _estimate(run, prepared, store)
                _start(run, prepared, store)
                outcome, judged = await _judge(
                    run,
                    prepared,
                    the_judge,
                    store,
                    progress=progress,
                    handle_signals=handle_signals,
                )
            finally:
                store.close()
            del prepared  # its index of keys (MBs on the full RMB) is not needed past judging
            result = _finish(run, outcome, judged, resume_hint)
            if (e := outcome.error) is not None:  # the judge's server died: recorded, now say so
                if resume_hint and not getattr(e, "__notes__", None):
                    e.add_note(f"Answers so far are cached; to resume run:\n  {resume_hint}")
                raise e
            return result
        finally:
            if lock is not None:
                lock.release()
    finally:
        if judge is None:
            await the_judge.aclose()


def _blocking(f: Callable[P, Coroutine[Any, Any, RunResult]]) -> Callable[P, RunResult]:
    """The same call in a fresh event loop, with the same (typed) parameters."""

    def blocking(*args: P.args, **kwargs: P.kwargs) -> RunResult:
        return asyncio.run(f(*args, **kwargs))

    return blocking


run = _blocking(arun)
run.__doc__ = """Judge the selected RMB items and score them (the arguments are `arun`'s). Rerunning
with the same options lands in the same run directory and asks only what the cache does not
hold."""
