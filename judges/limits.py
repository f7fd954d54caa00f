"""How hard a judge may be pushed: a concurrency cap, a request-rate throttle, an optional
token-rate budget, and the one retry policy every HTTP backend uses.

`Limiter.slot()` is held for one HTTP attempt (retries queue again), so the cap counts what the
server sees in flight. The retry policy retries only `TransientError`; everything else (a bad
key, a refusal) is decided by the backend and never retried."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from asyncio_throttle import Throttler
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
)

# A server asking us to wait longer than this is not a transient hiccup: give the request up
# (it is not cached, so the next run asks again) instead of stalling the whole run.
MAX_RETRY_AFTER_S = 120.0
MAX_BACKOFF_S = 60.0


class TransientError(Exception):
    """A failure worth another attempt (429, 5xx, timeout, dropped connection, garbled body).
    `retry_after` is the server's own wait in seconds, when it gave one."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def estimate_tokens(chars: int) -> int:
    """Prompt tokens from characters (≈4 per token): provider-neutral, good enough for budgets."""
    return max(1, chars // 4)


class TokenBucket:
    """Tokens per minute, refilled continuously; a caller may drive it below zero (output
    tokens are only known afterwards), which delays the next callers."""

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = self.capacity
        self.stamp = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    async def acquire(self, tokens: int) -> None:
        need = min(float(tokens), self.capacity)
        async with self._lock:  # first come, first served
            self._refill()
            while self.level < need:
                await asyncio.sleep((need - self.level) / self.rate)
                self._refill()
            self.level -= need

    def charge(self, tokens: int) -> None:
        self._refill()
        self.level -= tokens


class Limiter:
    """The per-judge limits. Near-zero cost when only the cap is set (the common case)."""

    def __init__(
        self,
        concurrency: int,
        requests_per_s: float | None = None,
        tokens_per_min: int | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.concurrency = concurrency
        self._sem = asyncio.Semaphore(concurrency)
        self._throttle: Throttler | None = None
        if requests_per_s is not None:
            if requests_per_s <= 0:
                raise ValueError(f"requests_per_s must be positive, got {requests_per_s}")
            # smooth pacing in 50 ms windows (one request per window at low rates): a server
            # never sees a burst of a whole second's budget; waiters poll a few times a window
            burst = max(1, round(requests_per_s * 0.05))
            period = burst / requests_per_s
            self._throttle = Throttler(
                rate_limit=burst,
                period=period,
                retry_interval=min(0.05, max(0.002, period / 4)),
            )
        self.tokens = TokenBucket(tokens_per_min) if tokens_per_min else None

    def slot(self, prompt_tokens: int = 0) -> AbstractAsyncContextManager[Any]:
        """Hold for one attempt. With only the cap set (the common case) the slot is the bare
        semaphore: a generator-based context manager per request is measurable CPU."""
        if self._throttle is None and self.tokens is None:
            return self._sem
        return self._limited_slot(prompt_tokens)

    @asynccontextmanager
    async def _limited_slot(self, prompt_tokens: int) -> AsyncIterator[None]:
        async with self._sem:
            if self._throttle is not None:
                await self._throttle.acquire()
            if self.tokens is not None:
                await self.tokens.acquire(prompt_tokens)
            yield

    def charge_output(self, tokens: int) -> None:
        if self.tokens is not None and tokens:
            self.tokens.charge(tokens)


def _wait(backoff_s: float) -> Callable[[RetryCallState], float]:
    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            # the server knows best; a little jitter keeps a crowd of waiters from re-colliding
            return exc.retry_after + random.uniform(0, 0.05 * backoff_s)
        # exponential with jitter: backoff, 2x, 4x ... capped, plus up to one backoff of noise
        step = min(MAX_BACKOFF_S, backoff_s * 2 ** (state.attempt_number - 1))
        return step + random.uniform(0, backoff_s)

    return wait


def retry_policy(
    max_retries: int,
    backoff_s: float = 1.0,
    on_retry: Callable[[RetryCallState], None] | None = None,
) -> AsyncRetrying:
    """Up to `max_retries` more attempts on `TransientError`, exponential backoff with jitter
    from `backoff_s` (capped at a minute), or exactly the server's Retry-After. The last
    TransientError is re-raised when attempts run out."""
    return AsyncRetrying(
        stop=stop_after_attempt(max_retries + 1),
        wait=_wait(backoff_s),
        retry=retry_if_exception_type(TransientError),
        before_sleep=on_retry,
        reraise=True,
    )
