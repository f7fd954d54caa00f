"""The run's counters and the one progress bar that shows them."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from judges.base import Judge


@dataclass
class Counters:
    total: int = 0  # distinct requests
    cache_hits: int = 0
    sent: int = 0
    answered: int = 0
    failed: int = 0  # error/refused/empty/cut-off answers (not cached, asked again next run)
    input_tokens: int = 0
    cached_input_tokens: int = 0  # of input_tokens, read from the provider's prompt cache
    output_tokens: int = 0
    spent_usd: float = 0.0
    # False when no price is known for the judge: spent_usd is then not a bill ("cost unknown")
    priced: bool = True
    reasoning_tokens: int = 0  # of output_tokens: spent thinking (billed as output)
    retries: int = 0  # the judge's retries during this run (429/5xx/timeouts/resets)
    started: float = field(default_factory=time.monotonic)

    @property
    def done(self) -> int:
        return self.cache_hits + self.answered + self.failed

    @property
    def spent(self) -> float | None:
        """USD spent, or None when the judge's price is unknown."""
        return self.spent_usd if self.priced else None

    def counts(self) -> dict[str, int | float | None]:
        """The manifest's record of them (spent_usd None: cost unknown)."""
        return {
            "requests": self.total,
            "cache_hits": self.cache_hits,
            "sent": self.sent,
            "failed": self.failed,
            "retries": self.retries,
            "input_tokens": self.input_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "spent_usd": self.spent,
        }


def judge_retries(judge: Judge) -> int:
    return int(getattr(getattr(judge, "stats", None), "retries", 0))


def _short(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e4 else str(n)


class ProgressView:
    """One rich bar on stderr: done/total, cache hits, requests/s, retries, tokens, cost."""

    def __init__(self, counters: Counters, judge: Judge, enabled: bool) -> None:
        self.counters = counters
        self.judge = judge
        self.retries_at_start = judge_retries(judge)  # a judge object may serve several runs
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
        c.retries = judge_retries(self.judge) - self.retries_at_start
        info = (
            f"hits {c.cache_hits}  {c.sent / elapsed:.0f} req/s  retries {c.retries}  "
            f"failed {c.failed}  {_short(c.input_tokens + c.output_tokens)} tok  "
            + (f"${c.spent_usd:.2f}" if c.priced else "cost unknown")
        )
        self._progress.update(self._task, completed=c.done, info=info)

    async def tick(self) -> None:
        while True:
            self.refresh()
            await asyncio.sleep(0.25)
