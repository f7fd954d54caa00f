"""Answer every distinct request: cache first, then the judge.

Requests are deduplicated by cache key, so two comparisons that render the same request cost
one call. Each worker slot holds at most one answer that is not yet committed (group commit: a
worker waits for its answer's commit before it sends the next request), so a killed run loses
at most `concurrency` answers and rerunning resumes from the cache."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from judges.base import BatchJudge, ChatRequest, Completion, Judge, JudgeIdentity, Usage
from judges.cache import CacheStore
from judges.claims import ClaimQueue
from judges.errors import JudgeServerDied

from .costs import cost_of, estimate_input_tokens, price_known
from .prepare import Prepared
from .progress import Counters, ProgressView, judge_retries


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
    """--max-cost: a request is sent only if spent + in-flight estimates + its own fit. One
    that does not fit waits for the requests in flight to settle (their estimates are at the
    worst case until answers are seen); the budget is spent only when nothing is in flight and
    it still does not fit. (Stopping at the first misfit abandoned a small budget after 4
    requests with 0.6% of it spent.)"""

    limit_usd: float | None
    identity: JudgeIdentity
    in_flight_usd: float = 0.0
    exhausted: bool = False
    _in_flight: int = 0
    _out_tokens: int = 0
    _answers: int = 0
    _settled: asyncio.Event | None = None

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
            self.exhausted = self._in_flight == 0  # else: wait for those to settle
            return None
        self.in_flight_usd += est
        self._in_flight += 1
        return est

    def settle(self, est: float, completion: Completion | None) -> None:
        if self.limit_usd is None:
            return
        self.in_flight_usd -= est
        self._in_flight -= 1
        if completion is not None and completion.is_answer:
            self._answers += 1
            self._out_tokens += completion.usage.output_tokens
        if self._settled is not None:
            self._settled.set()

    async def wait_settled(self) -> None:
        """Until a request in flight settles."""
        if self._settled is None:
            self._settled = asyncio.Event()
        self._settled.clear()
        await self._settled.wait()


@dataclass
class Outcome:
    # key -> completion received this run (failed ones too); answers the cache already held
    # are in `from_cache` and read back by judge_comparisons, a chunk at a time
    answers: dict[str, Completion]
    from_cache: set[str]
    counters: Counters
    status: str  # complete | interrupted | budget | stopped (the judge's server died)
    # why a run `stopped`: the caller records the run, then raises it
    error: JudgeServerDied | None = None


class _Execution:
    """One `execute`: its workers, the budget, signals, and what was answered. Each phase is a
    method: `take` a request, `record` its answer, the `worker`s, `run` them all."""

    def __init__(
        self,
        prepared: Prepared,
        judge: Judge,
        store: CacheStore,
        from_cache: set[str],
        max_cost: float | None,
        batch_size: int,
    ) -> None:
        self.prepared, self.judge, self.store = prepared, judge, store
        self.identity = judge.identity
        keys = list(prepared.first)
        self.from_cache = from_cache
        self.answers: dict[str, Completion] = {}
        self.counters = Counters(
            total=len(keys), cache_hits=len(from_cache), priced=price_known(self.identity)
        )
        # keys are claimed in the cache before they are bought: a second process on the same
        # cache waits for them instead of paying again (judges/claims.py)
        self.todo = ClaimQueue(
            store, (k for k in keys if k not in from_cache), self.bought_elsewhere
        )
        self.budget = Budget(max_cost, self.identity)
        self.held: str | None = None  # a key taken but not yet within the budget (batches)
        self.complete = functools.partial(Completion.is_complete, cut_ok=prepared.cut_ok)
        self.committer = _GroupCommit(store, self.identity, prepared.cut_ok)
        self.batch_size = batch_size
        self.fatal: list[BaseException] = []
        self.stop = asyncio.Event()
        self.interrupted = False
        self.server_died: JudgeServerDied | None = None
        self.workers: list[asyncio.Task[None]] = []
        self.grace_s = 3.0  # how long answers in flight may take to land once stopped

    # ------------------------------------------------------------------ one request
    def bought_elsewhere(self, key: str) -> None:
        """Another process on this cache answered the key meanwhile: a cache hit here."""
        self.from_cache.add(key)
        self.counters.cache_hits += 1

    async def take(self, wait: bool = True) -> tuple[str, ChatRequest, float] | None:
        """The next request the budget allows, or None (all sent, or the budget is spent).
        A request the budget cannot take yet waits for those in flight, or (`wait` False: a
        batch being filled) is kept for the next call."""
        key, self.held = self.held or await self.todo.next(), None
        if key is None:
            return None
        req = self.prepared.request(key)
        while (est := self.budget.reserve(req, self.counters.spent_usd)) is None:
            if self.budget.exhausted:
                self.stop.set()
                return None
            if not wait:
                self.held = key
                return None
            await self.budget.wait_settled()
        return key, req, est

    def record(self, key: str, c: Completion) -> None:
        self.answers[key] = c
        counters = self.counters
        counters.input_tokens += c.usage.input_tokens
        counters.cached_input_tokens += c.usage.cached_input_tokens
        counters.output_tokens += c.usage.output_tokens
        counters.reasoning_tokens += c.usage.reasoning_tokens
        counters.spent_usd += cost_of(self.identity, c.usage)
        if self.complete(c):
            counters.answered += 1
        else:
            counters.failed += 1

    # ------------------------------------------------------------------ workers
    async def worker(self) -> None:
        while not self.stop.is_set():
            job = await self.take()
            if job is None:
                return
            key, req, est = job
            self.counters.sent += 1
            c: Completion | None = None
            try:
                c = await self.judge.complete(req)
            finally:
                self.budget.settle(est, c)
            self.record(key, c)
            await self.committer.add(key, c)  # stores an answer; frees the key's claim either way

    async def batch_worker(self) -> None:
        assert isinstance(self.judge, BatchJudge)
        complete_many = self.judge.complete_many
        while not self.stop.is_set():
            chunk: list[tuple[str, ChatRequest, float]] = []
            while len(chunk) < self.batch_size:
                job = await self.take(wait=False)
                if job is None:
                    break
                chunk.append(job)
            if not chunk:
                return
            self.counters.sent += len(chunk)
            done = await complete_many([r for _, r, _ in chunk])
            for (key, _, est), c in zip(chunk, done, strict=True):
                self.budget.settle(est, c)
                self.record(key, c)
            # commit the chunk before asking for the next one
            await asyncio.to_thread(
                self.store.put_many,
                [(k, self.identity, self.answers[k]) for k, _, _ in chunk],
                cut_ok=self.prepared.cut_ok,
            )

    async def guarded(self, work: Callable[[], Awaitable[None]]) -> None:
        # any failure in a worker (bad key, a template that fails on one item, a bug) stops the
        # run and is raised after the cache is flushed; never a silently missing answer
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except BaseException as e:
            # a bad key, a rejected request shape or a bug: send nothing more; answers in
            # flight (already paid for) get the grace period to land and be committed, then
            # the rest is cancelled (a second failure does not extend it)
            self.fatal.append(e)
            if not self.stop.is_set():
                self.stop.set()
                asyncio.get_running_loop().call_later(self.grace_s, self.cancel_all)

    def cancel_all(self) -> None:
        for w in self.workers:
            w.cancel()

    # ------------------------------------------------------------------ signals
    def on_signal(self, grace_s: float) -> None:
        # first signal: send nothing more and give answers in flight (already paid for) a
        # moment to arrive and be committed; a second signal, or the grace running out, cancels
        if self.interrupted:
            self.cancel_all()
            return
        self.interrupted = True
        self.stop.set()
        asyncio.get_running_loop().call_later(grace_s, self.cancel_all)

    def install_signals(self, grace_s: float) -> list[signal.Signals]:
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.on_signal, grace_s)
                installed.append(sig)
        return installed

    # ------------------------------------------------------------------ the whole
    async def run(
        self, concurrency: int, progress: bool, handle_signals: bool, grace_s: float
    ) -> str:
        """Run the workers to the end; the status: complete | interrupted | budget | stopped."""
        self.grace_s = grace_s
        is_batch = isinstance(self.judge, BatchJudge)
        # a judge over many engines (several servers, Ray replicas) says how many requests
        # keep them all fed; the workers are what hands it requests
        wanted = getattr(self.judge, "max_in_flight", 0)
        n_workers = 1 if is_batch else max(1, concurrency, wanted)
        work = self.batch_worker if is_batch else self.worker
        self.workers = [asyncio.create_task(self.guarded(work)) for _ in range(n_workers)]
        commit_task = asyncio.create_task(self.committer.run())
        installed = self.install_signals(grace_s) if handle_signals else []
        view = ProgressView(self.counters, self.judge, progress)
        try:
            with view:
                ticker = asyncio.create_task(view.tick()) if progress else None
                try:
                    await asyncio.gather(*self.workers, return_exceptions=True)
                finally:
                    if ticker is not None:
                        ticker.cancel()
        finally:
            loop = asyncio.get_running_loop()
            for sig in installed:
                loop.remove_signal_handler(sig)
            commit_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await commit_task
            # answers whose commit had not run yet (their workers were cancelled or are done)
            await asyncio.to_thread(self.committer.flush_now)
            await asyncio.to_thread(self.todo.close)  # keys claimed, not bought: free again
        if self.fatal:
            if not isinstance(self.fatal[0], JudgeServerDied):
                raise self.fatal[0]
            self.server_died = self.fatal[0]  # the answers so far make a resumable run
        self.counters.retries = judge_retries(self.judge) - view.retries_at_start
        if self.server_died is not None:
            return "stopped"
        return (
            "interrupted" if self.interrupted else "budget" if self.budget.exhausted else "complete"
        )


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
    from_cache = await asyncio.to_thread(store.present, list(prepared.first))
    ex = _Execution(prepared, judge, store, from_cache, max_cost, batch_size)
    status = await ex.run(concurrency, progress, handle_signals, grace_s)
    return Outcome(ex.answers, from_cache, ex.counters, status, ex.server_died)
