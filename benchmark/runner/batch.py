"""`rmb run --batch`: answer every distinct request through the provider's batch API.

The runner's contract is kept (an `Outcome` of answers, cache hits, counters and a status), so
verdicts, reports and `rmb report` are the same as online. What differs: requests go out as
batch jobs (`judges.batch`), answers arrive when a batch ends, and a run may end with batches
still open (status `pending`: `--no-wait`, or Ctrl-C while waiting), which a rerun or `rmb
batches collect` picks up. `--max-cost` reserves each batch's ceiling (every request at its
token limit, at the batch price) before it is submitted."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from dataclasses import dataclass
from typing import Any

from judges.base import ChatRequest, Judge, Usage
from judges.batch import BatchRunner, JobStore, JobView, batch_api, progress_line
from judges.cache import CacheStore
from judges.errors import UserError

from .costs import cost_of, estimate_input_tokens, price_known
from .execute import Outcome
from .prepare import Prepared
from .progress import Counters


@dataclass
class BatchBudget:
    """--max-cost for batches: what is spent plus the ceilings of batches not yet collected."""

    limit_usd: float | None
    spent_usd: float = 0.0
    reserved_usd: float = 0.0

    def reserve(self, usd: float) -> bool:
        if self.limit_usd is not None and self.spent_usd + self.reserved_usd + usd > self.limit_usd:
            return False
        self.reserved_usd += usd
        return True

    def settle(self, reserved: float, spent: float) -> None:
        self.reserved_usd -= reserved
        self.spent_usd += spent


class BatchProgress:
    """One line per batch job (rich when on a terminal, plain lines when its status changes)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.shown: dict[str, str] = {}
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(bar_width=12),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                console=Console(stderr=True),
            )
            self._progress.start()

    def update(self, views: list[JobView]) -> None:
        for v in views:
            if self._progress is None:
                line = progress_line(v)
                if self.shown.get(v.job.id) != line.split("  ")[2]:
                    self.shown[v.job.id] = line.split("  ")[2]
                    print(f"rmb: batch {line}", file=sys.stderr)
                continue
            r = v.remote
            done = 0 if r is None else r.done
            status = v.job.state if r is None else r.status
            task = self._tasks.get(v.job.id)
            if task is None:
                label = v.job.batch_id or v.job.id
                task = self._tasks[v.job.id] = self._progress.add_task(
                    label, total=v.job.n, status=status
                )
            self._progress.update(task, completed=done, status=status)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def make_runner(judge: Judge, store: CacheStore, *, cut_ok: bool, **kw: Any) -> BatchRunner:
    """The batch runner for an openai:/anthropic: judge, its key resolved as the judge's."""
    if not hasattr(judge, "body") or not hasattr(judge, "parse"):
        raise UserError(
            f"--batch: {judge.identity.label()} has no batch API (openai: and anthropic: do)"
        )
    from judges.http.judge import resolve_key

    key, _ = resolve_key(judge.identity.provider, judge.key_env, judge.options, hosted=judge.hosted)  # type: ignore[attr-defined]
    base_url = judge.identity.base_url or judge.hosted_url  # type: ignore[attr-defined]
    api = batch_api(judge, key, base_url)
    identity = judge.identity
    return BatchRunner(
        api,
        JobStore(store.directory),
        store,
        cut_ok=cut_ok,
        cost=lambda u: cost_of(identity, u),
        **kw,
    )


async def execute_batch(
    prepared: Prepared,
    judge: Judge,
    store: CacheStore,
    *,
    wait: bool = True,
    max_cost: float | None = None,
    progress: bool = False,
    handle_signals: bool = True,
    poll_s: tuple[float, float] = (5.0, 60.0),
) -> Outcome:
    identity = judge.identity
    keys = list(prepared.first)
    from_cache = await asyncio.to_thread(store.present, keys)
    counters = Counters(total=len(keys), cache_hits=len(from_cache), priced=price_known(identity))
    todo = [k for k in keys if k not in from_cache]
    view = BatchProgress(progress)
    runner = make_runner(
        judge, store, cut_ok=prepared.cut_ok, poll_s=poll_s, on_progress=view.update
    )
    budget = BatchBudget(max_cost)

    def ceiling(req: ChatRequest) -> float:
        return cost_of(identity, Usage(estimate_input_tokens(req), req.max_tokens, batch=True))

    task = asyncio.ensure_future(
        runner.run(todo, prepared.request, wait=wait, budget=budget, ceiling=ceiling)
    )
    interrupted = False
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        # the batches keep running at the provider: stop waiting, nothing is lost
        nonlocal interrupted
        interrupted = True
        task.cancel()

    installed: list[signal.Signals] = []
    if handle_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, on_signal)
                installed.append(sig)
    try:
        out = await task
    except asyncio.CancelledError:
        if not interrupted:
            raise
        out = None
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        view.close()
        await runner.api.aclose()
        runner.jobs.close()
    if out is None:
        # what ended before the interruption is in the cache: read it back as this run's
        present = await asyncio.to_thread(store.present, todo)
        answers = dict(store.stream(present))
        counters.answered = len(answers)
        return Outcome(answers, from_cache, counters, "pending")
    answers = {**out.answers, **out.failed}
    counters.sent = out.submitted
    counters.answered = len(out.answers)
    counters.failed = len(out.failed)
    counters.input_tokens = out.input_tokens
    counters.cached_input_tokens = out.cached_input_tokens
    counters.output_tokens = out.output_tokens
    counters.reasoning_tokens = out.reasoning_tokens
    counters.spent_usd = out.spent_usd
    if out.pending:
        status = "pending"
    elif out.budget_stopped:
        status = "budget"
    elif out.unanswered:
        status = "interrupted"
    else:
        status = "complete"
    return Outcome(answers, from_cache, counters, status)
