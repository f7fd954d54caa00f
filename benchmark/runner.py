"""Comparisons to judged comparisons: render, look up the cache, ask the judge for the rest.

The only place that wires the rooms together (data -> plan -> prompts -> judges.cache <-> judge
-> verdicts). Requests are deduplicated by cache key, so two comparisons that render the same
request cost one call. Each worker slot holds at most one answer that is not yet committed
(group commit: a worker waits for its answer's commit before it sends the next request), so a
killed run loses at most `concurrency` answers and rerunning resumes from the cache."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from judges.base import (
    ChatRequest,
    Completion,
    Judge,
    JudgeIdentity,
    JudgeOptions,
    Message,
    Usage,
    cache_key,
)
from judges.cache import CacheStore
from judges.errors import UserError

from .data import Category, Item
from .plan import Comparison
from .results import JudgedComparison
from .verdicts import FIRST_TOKEN_PARSERS, Verdict

log = logging.getLogger(__name__)


class TemplateLike(Protocol):
    """What the runner needs of a prompt template (prompts.Template)."""

    @property
    def name(self) -> str: ...
    @property
    def mode(self) -> Any: ...
    @property
    def parser(self) -> str: ...
    @property
    def max_tokens(self) -> int | None: ...
    @property
    def top_logprobs(self) -> int | None: ...
    @property
    def response_format(self) -> str | None: ...

    def text_hash(self) -> str: ...

    def render(
        self,
        *,
        conversation: Sequence[Message],
        responses: Sequence[str],
        goal: str,
        category: Category,
    ) -> tuple[Message, ...]: ...


class RunStopped(UserError):
    """The run stopped before every comparison was answered (signal or budget)."""

    exit_code = 130


# ---------------------------------------------------------------------------- rendering


@dataclass(slots=True)
class Prepared:
    """Every comparison with its cache key; each distinct key once, by its first comparison.

    Requests are rendered again when they are sent rather than kept: holding every rendered
    prompt of the full RMB would cost hundreds of MB, and a cached rerun renders nothing."""

    comparisons: list[Comparison]
    keys: list[str]
    first: dict[str, int]  # distinct key -> index of its first comparison (plan order)
    render: Callable[[int], ChatRequest]
    # the template's verdict is its first token: an answer stopped at the token limit is complete
    cut_ok: bool = False

    def request(self, key: str) -> ChatRequest:
        return self.render(self.first[key])

    def release(self) -> None:
        """Nothing renders past execution: let go of the items (and texts) the renderer holds."""
        self.render = _released


def _released(i: int) -> ChatRequest:
    raise RuntimeError("a comparison was rendered after Prepared.release()")


def prepare(
    items: Sequence[Item],
    comparisons: Sequence[Comparison],
    template: TemplateLike,
    identity: JudgeIdentity,
    options: JudgeOptions,
    *,
    known_keys: Sequence[str] | None = None,
) -> Prepared:
    """Keys for all comparisons. `known_keys` (saved by an earlier run with the same inputs)
    skips rendering; otherwise every comparison is rendered once here."""
    comparisons = list(comparisons)
    by_uid = {it.uid: it for it in items}
    memo: dict[tuple[str, tuple[str, ...]], tuple[Message, ...]] = {}

    def render(i: int) -> ChatRequest:
        c = comparisons[i]
        messages = memo.get((c.item_uid, c.shown))
        if messages is None:
            it = by_uid[c.item_uid]
            cands = it.candidates()
            messages = template.render(
                conversation=it.conversation,
                responses=[cands[cid].text for cid in c.shown],
                goal=it.category.goal,
                category=it.category,
            )
            if c.sample_index == 0 and i + 1 < len(comparisons) and comparisons[i + 1].sample_index:
                # further samples of this comparison follow: keep its messages for them only
                memo.clear()
                memo[c.item_uid, c.shown] = messages
        return options.request(
            messages,
            identity,
            sample_index=c.sample_index,
            max_tokens=template.max_tokens,
            top_logprobs=template.top_logprobs,
            response_format=template.response_format,
        )

    if known_keys is not None and len(known_keys) == len(comparisons):
        keys = list(known_keys)
    else:
        keys = [cache_key(identity, render(i)) for i in range(len(comparisons))]
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    cut_ok = template.parser in FIRST_TOKEN_PARSERS
    return Prepared(comparisons, keys, first, render, cut_ok)


def estimate_input_tokens(request: ChatRequest) -> int:
    """chars/4: a provider-neutral estimate, good enough for budgets."""
    return max(1, sum(len(m.content) for m in request.messages) // 4)


@functools.cache
def _pricing() -> Callable[[JudgeIdentity, Usage], float | None] | None:
    try:
        from judges.pricing import cost_usd
    except ImportError:  # no price table in this tree
        return None
    return cost_usd


def price_known(identity: JudgeIdentity) -> bool:
    """Whether the price table knows this judge (a local model is known: it costs 0)."""
    price = _pricing()
    return price is not None and price(identity, Usage(1, 1)) is not None


def cost_of(identity: JudgeIdentity, usage: Usage) -> float:
    """USD for that usage, 0 when the price of the model is unknown (a local model)."""
    price = _pricing()
    return float((price(identity, usage) if price else None) or 0.0)


# ---------------------------------------------------------------------------- progress


@dataclass
class Counters:
    total: int = 0  # distinct requests
    cache_hits: int = 0
    sent: int = 0
    answered: int = 0
    failed: int = 0  # error/refused/empty/cut-off answers (not cached, asked again next run)
    input_tokens: int = 0
    output_tokens: int = 0
    spent_usd: float = 0.0
    retries: int = 0  # the judge's retries during this run (429/5xx/timeouts/resets)
    started: float = field(default_factory=time.monotonic)

    @property
    def done(self) -> int:
        return self.cache_hits + self.answered + self.failed


def _retries(judge: Judge) -> int:
    return int(getattr(getattr(judge, "stats", None), "retries", 0))


def _short(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e4 else str(n)


class ProgressView:
    """One rich bar on stderr: done/total, cache hits, requests/s, retries, tokens, cost."""

    def __init__(self, counters: Counters, judge: Judge, enabled: bool) -> None:
        self.counters = counters
        self.judge = judge
        self._retries0 = _retries(judge)  # a judge object may serve several runs
        self._progress: Any = None
        self._task: Any = None
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
            )

            # sized for an 80-column terminal: rich truncates columns that do not fit
            self._progress = Progress(
                BarColumn(bar_width=8),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                transient=False,
                refresh_per_second=4,
                console=Console(stderr=True),
            )
            self._task = self._progress.add_task("judging", total=counters.total, info="")

    def __enter__(self) -> ProgressView:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self.refresh()
            self._progress.stop()

    def refresh(self) -> None:
        if self._progress is None:
            return
        c = self.counters
        elapsed = max(1e-9, time.monotonic() - c.started)
        c.retries = _retries(self.judge) - self._retries0
        info = (
            f"hits {c.cache_hits}  {c.sent / elapsed:.0f} req/s  retries {c.retries}  "
            f"failed {c.failed}  {_short(c.input_tokens + c.output_tokens)} tok  "
            f"${c.spent_usd:.2f}"
        )
        self._progress.update(self._task, completed=c.done, info=info)

    async def tick(self) -> None:
        while True:
            self.refresh()
            await asyncio.sleep(0.25)


# ---------------------------------------------------------------------------- execution


class _GroupCommit:
    """Answers waiting for their commit; one commit (in a thread) takes all that are waiting."""

    def __init__(self, store: CacheStore, identity: JudgeIdentity, cut_ok: bool) -> None:
        self.store = store
        self.identity = identity
        self.cut_ok = cut_ok
        self.pending: list[tuple[str, Completion, asyncio.Future[None]]] = []
        self.wake = asyncio.Event()

    async def add(self, key: str, completion: Completion) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append((key, completion, fut))
        self.wake.set()
        await fut

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            await self.flush()

    async def flush(self) -> None:
        batch, self.pending = self.pending, []
        if not batch:
            return
        try:
            await asyncio.to_thread(
                self.store.put_many,
                [(k, self.identity, c) for k, c, _ in batch],
                cut_ok=self.cut_ok,
            )
        except BaseException as e:
            for _, _, fut in batch:
                if not fut.done():
                    fut.set_exception(e)
            raise
        for _, _, fut in batch:
            if not fut.done():
                fut.set_result(None)

    def flush_now(self) -> None:
        """Synchronous last flush (after cancellation)."""
        batch, self.pending = self.pending, []
        if batch:
            self.store.put_many([(k, self.identity, c) for k, c, _ in batch], cut_ok=self.cut_ok)


@dataclass
class Budget:
    """--max-cost: a request is sent only if spent + in-flight estimates + its own fit."""

    limit_usd: float | None
    identity: JudgeIdentity
    in_flight_usd: float = 0.0
    exhausted: bool = False
    _out_tokens: int = 0
    _answers: int = 0

    def estimate(self, request: ChatRequest) -> float:
        # until 10 answers are seen, assume the worst (max_tokens); then twice the mean
        out = (
            request.max_tokens
            if self._answers < 10
            else min(request.max_tokens, 2 * self._out_tokens // self._answers + 1)
        )
        return cost_of(self.identity, Usage(estimate_input_tokens(request), out))

    def reserve(self, request: ChatRequest, spent: float) -> float | None:
        if self.limit_usd is None:
            return 0.0
        est = self.estimate(request)
        if spent + self.in_flight_usd + est > self.limit_usd:
            self.exhausted = True
            return None
        self.in_flight_usd += est
        return est

    def settle(self, est: float, completion: Completion | None) -> None:
        self.in_flight_usd -= est
        if completion is not None and completion.is_answer:
            self._answers += 1
            self._out_tokens += completion.usage.output_tokens


@dataclass
class Outcome:
    # key -> completion received this run (failed ones too); answers the cache already held
    # are in `from_cache` and read back by judge_comparisons, a chunk at a time
    answers: dict[str, Completion]
    from_cache: set[str]
    counters: Counters
    status: str  # complete | interrupted | budget


async def execute(
    prepared: Prepared,
    judge: Judge,
    store: CacheStore,
    *,
    concurrency: int,
    max_cost: float | None = None,
    progress: bool = False,
    batch_size: int = 256,
    handle_signals: bool = True,
    grace_s: float = 3.0,
) -> Outcome:
    """Answer every distinct request of `prepared`: cache first, then the judge."""
    identity = judge.identity
    keys = list(prepared.first)
    from_cache = await asyncio.to_thread(store.present, keys)
    answers: dict[str, Completion] = {}
    counters = Counters(total=len(keys), cache_hits=len(from_cache))
    todo: Iterator[str] = (k for k in keys if k not in from_cache)
    budget = Budget(max_cost, identity)
    complete = functools.partial(Completion.is_complete, cut_ok=prepared.cut_ok)
    committer = _GroupCommit(store, identity, prepared.cut_ok)
    fatal: list[BaseException] = []
    stop = asyncio.Event()

    def record(key: str, c: Completion) -> None:
        answers[key] = c
        counters.input_tokens += c.usage.input_tokens
        counters.output_tokens += c.usage.output_tokens
        counters.spent_usd += cost_of(identity, c.usage)
        if complete(c):
            counters.answered += 1
        else:
            counters.failed += 1

    def fail(e: BaseException) -> None:
        # a bad key, a rejected request shape or a bug: send nothing more; answers in flight
        # (already paid for) get the grace period to land and be committed, then the rest is
        # cancelled (a second failure does not extend it)
        fatal.append(e)
        if not stop.is_set():
            stop.set()
            loop.call_later(grace_s, cancel_all)

    def take() -> tuple[str, ChatRequest, float] | None:
        """The next request the budget allows, or None (all sent, or the budget is spent)."""
        key = next(todo, None)
        if key is None:
            return None
        req = prepared.request(key)
        est = budget.reserve(req, counters.spent_usd)
        if est is None:
            stop.set()
            return None
        return key, req, est

    async def worker() -> None:
        while not stop.is_set():
            job = take()
            if job is None:
                return
            key, req, est = job
            counters.sent += 1
            c: Completion | None = None
            try:
                c = await judge.complete(req)
            finally:
                budget.settle(est, c)
            record(key, c)
            if complete(c):
                await committer.add(key, c)

    async def batch_worker() -> None:
        complete_many = judge.complete_many  # type: ignore[attr-defined]
        while not stop.is_set():
            chunk: list[tuple[str, ChatRequest, float]] = []
            while len(chunk) < batch_size:
                job = take()
                if job is None:
                    break
                chunk.append(job)
            if not chunk:
                return
            counters.sent += len(chunk)
            done = await complete_many([r for _, r, _ in chunk])
            for (key, _, est), c in zip(chunk, done, strict=True):
                budget.settle(est, c)
                record(key, c)
            # commit the chunk before asking for the next one
            await asyncio.to_thread(
                store.put_many,
                [(k, identity, answers[k]) for k, _, _ in chunk],
                cut_ok=prepared.cut_ok,
            )

    interrupted = False
    loop = asyncio.get_running_loop()
    workers: list[asyncio.Task[None]] = []
    is_batch = callable(getattr(judge, "complete_many", None))
    n_workers = 1 if is_batch else max(1, concurrency)

    async def guarded(work: Callable[[], Awaitable[None]]) -> None:
        # any failure in a worker (bad key, a template that fails on one item, a bug) stops the
        # run and is raised after the cache is flushed; never a silently missing answer
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except BaseException as e:
            fail(e)

    workers += [
        asyncio.create_task(guarded(batch_worker if is_batch else worker)) for _ in range(n_workers)
    ]
    commit_task = asyncio.create_task(committer.run())

    def cancel_all() -> None:
        for w in workers:
            w.cancel()

    def on_signal() -> None:
        # first signal: send nothing more and give answers in flight (already paid for) a
        # moment to arrive and be committed; a second signal, or the grace running out, cancels
        nonlocal interrupted
        if interrupted:
            cancel_all()
            return
        interrupted = True
        stop.set()
        loop.call_later(grace_s, cancel_all)

    installed: list[signal.Signals] = []
    if handle_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, on_signal)
                installed.append(sig)
    view = ProgressView(counters, judge, progress)
    try:
        with view:
            ticker = asyncio.create_task(view.tick()) if progress else None
            try:
                await asyncio.gather(*workers, return_exceptions=True)
            finally:
                if ticker is not None:
                    ticker.cancel()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        commit_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await commit_task
        # answers whose commit had not run yet (their workers were cancelled or are done)
        await asyncio.to_thread(committer.flush_now)
    if fatal:
        raise fatal[0]
    status = "interrupted" if interrupted else "budget" if budget.exhausted else "complete"
    counters.retries = _retries(judge) - view._retries0
    return Outcome(answers, from_cache, counters, status)


# ---------------------------------------------------------------------------- verdicts


def judge_comparisons(
    prepared: Prepared,
    outcome: Outcome,
    store: CacheStore,
    parser: str,
    identity: JudgeIdentity,
    parse: Callable[[str, Completion, int], Verdict] | None = None,
) -> list[JudgedComparison]:
    """One JudgedComparison per answered comparison, in plan order. The first comparison of a
    key that was asked this run is the one that paid; the others read it as cached.

    Each distinct answer is parsed once and only what the lines need is kept: cached answers
    are streamed from the store, so a full-RMB rerun never holds 31k raw answers at once."""
    if parse is None:
        from .verdicts import parse as parse_verdict

        parse = parse_verdict
    # key -> (verdict, finish_reason, input tokens, output tokens, cost, latency, attempts)
    answered: dict[str, tuple[Verdict, str, int, int, float, float, int]] = {}
    # most answers read the same ("choice 1"): one shared object per distinct verdict and
    # finish reason instead of one per answer
    shared: dict[Any, Any] = {}

    def digest(key: str, c: Completion) -> None:
        n = len(prepared.comparisons[prepared.first[key]].shown)
        # parse() turns failed, refused, cut-off and empty answers into invalid verdicts
        verdict = parse(parser, c, n)
        u = c.usage
        answered[key] = (
            shared.setdefault(verdict, verdict),
            shared.setdefault(c.finish_reason, c.finish_reason),
            u.input_tokens,
            u.output_tokens,
            cost_of(identity, u),
            c.latency_s,
            c.attempts,
        )

    for key, c in outcome.answers.items():
        digest(key, c)
    for key, c in store.stream(outcome.from_cache):
        digest(key, c)
    if gone := outcome.from_cache - answered.keys():
        raise UserError(
            f"{store.path}: {len(gone)} answers left the cache during the run (another process "
            "pruned it?); rerun to ask them again"
        )
    paid: set[str] = set()
    out: list[JudgedComparison] = []
    for comp, key in zip(prepared.comparisons, prepared.keys, strict=True):
        a = answered.get(key)
        if a is None:
            continue
        cached = key in outcome.from_cache or key in paid
        paid.add(key)
        out.append(JudgedComparison(comp, key, *a, cached=cached))
    return out


def say(msg: str, quiet: bool = False) -> None:
    if not quiet:
        print(msg, file=sys.stderr)
