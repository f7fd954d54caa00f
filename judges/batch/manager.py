"""One judge's requests through its provider's batch API: recover, collect, submit, wait.

`BatchRunner.run(keys, request)` answers what the cache lacks: it first resolves crashed
submissions (`recovery`), refreshes every open job of this judge (whoever submitted it) and puts
the results of ended ones in the cache; then it submits, in chunks within the provider's limits,
the keys that are neither cached nor held by an open job; with `wait` it polls (backing off)
until none of its keys is held any more, resubmitting transiently failed lines. Answers go to
the cache as ordinary answers (`Usage.batch` marks their price); lines that failed for good come
back as completions with their reason, which the run counts invalid (and asks again next run, as
online). Collecting is idempotent: a crash after the answers are cached and before the job is
marked done collects again, and the cache keeps the first copy."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..base import ChatRequest, Completion, Usage
from ..cache import CacheStore
from ..errors import UserError
from .jobs import Job, JobStore
from .lines import MAX_ROUNDS, LineOutcome, Remote, chunks
from .recovery import resolve, stale

_PUT_CHUNK = 1000


class Budget(Protocol):
    """--max-cost: a batch is submitted only when its ceiling fits; settled when collected."""

    def reserve(self, usd: float) -> bool: ...
    def settle(self, reserved: float, spent: float) -> None: ...


@dataclass
class BatchOutcome:
    answers: dict[str, Completion] = field(default_factory=dict)  # wanted keys, now cached
    failed: dict[str, Completion] = field(default_factory=dict)  # answered, but not an answer
    collected: int = 0  # answers put in the cache (any key of the judge)
    submitted: int = 0  # lines sent in new batches
    spent_usd: float = 0.0  # of what was collected
    pending: set[str] = field(default_factory=set)  # keys still held by live jobs
    unanswered: dict[str, str] = field(default_factory=dict)  # expired/cancelled: next run
    budget_stopped: bool = False
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(frozen=True, slots=True)
class JobView:
    """One job for a progress line or `rmb batches status`."""

    job: Job
    remote: Remote | None


class BatchRunner:
    def __init__(
        self,
        api: Any,
        jobs: JobStore,
        cache: CacheStore,
        *,
        cut_ok: bool = False,
        cost: Callable[[Usage], float] = lambda u: 0.0,
        poll_s: tuple[float, float] = (2.0, 60.0),
        on_progress: Callable[[list[JobView]], None] | None = None,
    ) -> None:
        self.api = api
        self.identity = api.judge.identity
        self.jobs = jobs
        self.cache = cache
        self.cut_ok = cut_ok
        self.cost = cost
        self.poll_s = poll_s
        self.on_progress = on_progress
        self.rounds: Counter[str] = Counter()
        self.mine: set[str] = set()  # job ids this runner submitted
        self.last_reason: dict[str, str] = {}  # key -> why its last batch line failed transiently

    # ------------------------------------------------------------------ the whole cycle

    async def run(
        self,
        keys: Sequence[str],
        request: Callable[[str], ChatRequest],
        *,
        wait: bool = True,
        budget: Budget | None = None,
        ceiling: Callable[[ChatRequest], float] = lambda r: 0.0,
    ) -> BatchOutcome:
        out = BatchOutcome()
        wanted = set(keys)
        await self.recover()
        delay = self.poll_s[0]
        while True:
            await self.refresh(out, wanted, budget)
            if not out.budget_stopped:
                await self.submit(keys, request, out, budget, ceiling)
            held = self.jobs.held(keys)
            out.pending = held
            if not held or not wait:
                return out
            await asyncio.sleep(delay)
            delay = min(self.poll_s[1], delay * 1.5)

    async def recover(self) -> None:
        for job in self.jobs.jobs(identity=self.identity, states=("submitting",)):
            if stale(job):
                await resolve(self.api, self.jobs, job)

    # ------------------------------------------------------------------ submitting

    async def submit(
        self,
        keys: Sequence[str],
        request: Callable[[str], ChatRequest],
        out: BatchOutcome,
        budget: Budget | None,
        ceiling: Callable[[ChatRequest], float],
    ) -> None:
        have = self.cache.present(keys)
        held = self.jobs.held(keys)
        todo: list[str] = []
        for k in dict.fromkeys(keys):
            if k in have or k in held or k in out.failed or k in out.unanswered:
                continue
            if self.rounds[k] >= MAX_ROUNDS:
                reason = f"gave up after {MAX_ROUNDS} batches: {self.last_reason.get(k, '')}"
                out.failed[k] = Completion(text="", finish_reason="error", error=reason)
                continue
            todo.append(k)
        if not todo:
            return
        cost_of: dict[str, float] = {}

        def lines() -> Any:
            for k in todo:
                req = request(k)
                cost_of[k] = ceiling(req)
                yield k, self.api.line(k, req)

        for chunk in chunks(lines(), self.api.limits):
            usd = sum(cost_of[k] for k, _ in chunk)
            if budget is not None and not budget.reserve(usd):
                out.budget_stopped = True
                return
            if not await self._submit_chunk(chunk, usd, out) and budget is not None:
                budget.settle(usd, 0.0)

    async def _submit_chunk(
        self, chunk: list[tuple[str, bytes]], usd: float, out: BatchOutcome
    ) -> bool:
        claim = self.jobs.claim(
            self.identity, [k for k, _ in chunk], ceiling_usd=usd, cut_ok=self.cut_ok
        )
        if claim is None:
            return False
        job, mine = claim
        got = set(mine)
        lines = [(k, raw) for k, raw in chunk if k in got]
        self.mine.add(job.id)
        try:
            remote = await self.api.submit(job.id, lines, lambda **f: self.jobs.update(job.id, **f))
        except self.api.sdk.APIStatusError as exc:
            if exc.status_code >= 500 or exc.status_code == 429:
                return await self._unknown(job, out)
            # Anthropic validates at create and names the request: "requests.3.custom_id: ..."
            message = re.sub(
                r"requests\.(\d+)",
                lambda m: (
                    f"{m[0]} (key {lines[int(m[1])][0][:16]}…)" if int(m[1]) < len(lines) else m[0]
                ),
                str(exc.message),
            )
            self.jobs.finish(job.id, "rejected", note=message[:500])
            raise UserError(
                f"{self.identity.label()}: the provider rejected a batch of {len(lines)} "
                f"requests ({exc.status_code}): {message}"
            ) from None
        except self.api.sdk.APIConnectionError:
            return await self._unknown(job, out)
        for k in got:
            self.rounds[k] += 1
        out.submitted += len(lines)
        self.jobs.update(job.id, batch_id=remote.batch_id, state="open", status=remote.status)
        return True

    async def _unknown(self, job: Job, out: BatchOutcome) -> bool:
        """The create's answer was lost: it may or may not exist. Find out now."""
        fresh = self.jobs.get(job.id)
        found = await resolve(self.api, self.jobs, fresh) if fresh else None
        return found is not None

    # ------------------------------------------------------------------ polling and collecting

    async def refresh(
        self, out: BatchOutcome, wanted: set[str], budget: Budget | None, *, collect: bool = True
    ) -> list[JobView]:
        """Poll every open job of this judge; collect the ended ones (unless `collect` is off)."""
        views: list[JobView] = []
        for job in self.jobs.jobs(identity=self.identity):
            if job.state != "open" or not job.batch_id:
                views.append(JobView(job, None))
                continue
            try:
                remote = await self.api.retrieve(job.batch_id)
            except self.api.sdk.NotFoundError:
                # deleted at the provider (or another account): its keys are free again
                self.jobs.finish(job.id, "gone", note="the provider no longer knows this batch")
                continue
            except self.api.sdk.APIStatusError as exc:
                raise UserError(
                    f"{self.identity.label()}: cannot poll batch {job.batch_id} "
                    f"({exc.status_code}: {exc.message})"
                ) from None
            self.jobs.update(job.id, status=remote.status, counts=remote.counts)
            views.append(JobView(job, remote))
            if remote.terminal and collect:
                spent = await self.collect(job, remote, out, wanted)
                if budget is not None and job.id in self.mine:
                    budget.settle(job.ceiling_usd, spent)
        if self.on_progress is not None:
            self.on_progress(views)
        return views

    async def collect(self, job: Job, remote: Remote, out: BatchOutcome, wanted: set[str]) -> float:
        """Put an ended batch's answers in the cache, sort its other lines, free its keys."""
        if remote.failure is not None:
            named = self._name_lines(job, remote.failure)
            self.jobs.finish(job.id, remote.status, note=named)
            raise UserError(
                f"{self.identity.label()}: batch {remote.batch_id} failed validation: {named}"
            )
        spent = 0.0
        answers: list[tuple[str, Any, Completion]] = []
        kinds: Counter[str] = Counter()

        def flush() -> None:
            if answers:
                self.cache.put_many(answers, cut_ok=self.cut_ok)
                answers.clear()

        async for o in self.api.results(remote, cut_ok=job.cut_ok):
            kinds[o.kind] += 1
            if o.completion is not None:
                spent += self.cost(o.completion.usage)
                self._count(out, o)
            if o.kind == "answer" and o.completion is not None:
                answers.append((o.key, self.identity, o.completion))
                out.collected += 1
                if o.key in wanted:
                    out.answers[o.key] = o.completion
                if len(answers) >= _PUT_CHUNK:
                    flush()
            elif o.key in wanted:
                self._sort(out, job, o)
        flush()
        out.spent_usd += spent
        summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        self.jobs.finish(job.id, remote.status, note=summary)
        return spent

    def _count(self, out: BatchOutcome, o: LineOutcome) -> None:
        assert o.completion is not None
        u = o.completion.usage
        out.input_tokens += u.input_tokens
        out.cached_input_tokens += u.cached_input_tokens
        out.output_tokens += u.output_tokens
        out.reasoning_tokens += u.reasoning_tokens

    def _sort(self, out: BatchOutcome, job: Job, o: LineOutcome) -> None:
        if o.kind == "failed" and o.completion is not None:
            out.failed[o.key] = o.completion
        elif o.kind == "transient":
            self.last_reason[o.key] = o.reason  # eligible again: the next submit resends it
        elif job.id in self.mine:  # expired or cancelled in a batch of this run: next run
            out.unanswered[o.key] = o.reason

    def _name_lines(self, job: Job, failure: str) -> str:
        """'line 3: ...' -> 'line 3 (key 1f2e...): ...'"""
        keys = self.jobs.keys(job.id)

        def named(part: str) -> str:
            head, sep, rest = part.partition(":")
            num = head.removeprefix("line ").strip()
            if sep and num.isdigit() and 0 < int(num) <= len(keys):
                return f"{head} (key {keys[int(num) - 1][:16]}…):{rest}"
            return part

        return "; ".join(named(p.strip()) for p in failure.split(";"))

    async def cancel(self, job: Job) -> Remote | None:
        if not job.batch_id:
            return None
        remote = await self.api.cancel(job.batch_id)
        self.jobs.update(job.id, status=remote.status, counts=remote.counts)
        return remote


def progress_line(view: JobView, now: float | None = None) -> str:
    """`rmb_1a2b… batch_9f… in_progress 1,200/5,000 done` for a progress bar or a listing."""
    job, remote = view.job, view.remote
    ref = job.batch_id or "(submitting)"
    if remote is None:
        return f"{job.id}  {ref}  {job.state}  {job.n:,} requests"
    age = (now or time.time()) - job.created_at
    return f"{job.id}  {ref}  {remote.status}  {remote.done:,}/{job.n:,} done  {age / 60:.0f} min"
