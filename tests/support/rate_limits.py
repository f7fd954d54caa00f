"""The providers' rate limits as a test server enforces them: two token buckets (requests and
tokens per minute, refilled continuously from full) and the headers that describe them.

OpenAI (platform.openai.com/docs/guides/rate-limits): `x-ratelimit-limit-requests|tokens`,
`x-ratelimit-remaining-requests|tokens`, `x-ratelimit-reset-requests|tokens` as a duration
("1s", "6m0s", "120ms": the time until the bucket is full again); a request is charged its prompt
tokens plus its `max_tokens` when admitted. Anthropic (docs.anthropic.com/en/api/rate-limits):
`anthropic-ratelimit-requests|tokens-limit|remaining|reset`, the reset an RFC 3339 time. Both
answer a request over the limit with 429 and `retry-after` (seconds until it would fit).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime


class Bucket:
    """`per_minute` units, refilled continuously at per_minute/60 a second, starting full.
    `burst_s`: the bucket holds that many seconds of refill (60: a whole minute's budget at
    once; providers also enforce a per-minute limit over shorter windows, e.g. 1 s)."""

    def __init__(
        self, per_minute: float, clock: Callable[[], float] = time.monotonic, burst_s: float = 60.0
    ) -> None:
        self.limit = per_minute
        self.rate = per_minute / 60.0
        self.capacity = self.rate * burst_s
        self.clock = clock
        self.level = self.capacity
        self.stamp = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_for(self, n: float) -> float:
        """Seconds until `n` units are there (0: now)."""
        self._refill()
        return max(0.0, (min(n, self.capacity) - self.level) / self.rate)

    def take(self, n: float) -> None:
        self._refill()
        self.level -= min(n, self.capacity)

    def until_full(self) -> float:
        self._refill()
        return (self.capacity - self.level) / self.rate


def go_duration(seconds: float) -> str:
    """OpenAI's reset format: "6m0s", "1s", "120ms"."""
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    m, s = divmod(seconds, 60)
    return f"{int(m)}m{s:.0f}s" if m else f"{s:.3g}s"


class RateLimit:
    """Requests and tokens per minute; `admit` charges both or neither."""

    def __init__(
        self,
        requests_per_min: float,
        tokens_per_min: float,
        clock: Callable[[], float] = time.monotonic,
        burst_s: float = 60.0,
    ) -> None:
        self.requests = Bucket(requests_per_min, clock, burst_s)
        self.tokens = Bucket(tokens_per_min, clock, burst_s)

    def admit(self, tokens: int) -> float:
        """0.0 when the request is admitted (and charged); else the seconds until it would fit."""
        wait = max(self.requests.wait_for(1), self.tokens.wait_for(tokens))
        if wait > 0:
            return wait
        self.requests.take(1)
        self.tokens.take(tokens)
        return 0.0

    def headers(self, api: str, retry_after: float | None = None) -> dict[str, str]:
        r, t = self.requests, self.tokens
        out: dict[str, str] = {}
        if api == "anthropic":
            for name, b in (("requests", r), ("tokens", t)):
                reset = datetime.fromtimestamp(time.time() + b.until_full(), UTC)
                out[f"anthropic-ratelimit-{name}-limit"] = str(int(b.limit))
                out[f"anthropic-ratelimit-{name}-remaining"] = str(max(0, int(b.level)))
                out[f"anthropic-ratelimit-{name}-reset"] = reset.isoformat().replace("+00:00", "Z")
        else:
            for name, b in (("requests", r), ("tokens", t)):
                out[f"x-ratelimit-limit-{name}"] = str(int(b.limit))
                out[f"x-ratelimit-remaining-{name}"] = str(max(0, int(b.level)))
                out[f"x-ratelimit-reset-{name}"] = go_duration(b.until_full())
        if retry_after is not None:
            out["retry-after"] = str(max(1, math.ceil(retry_after)))
            if api != "anthropic":  # OpenAI's finer hint, which its SDK reads first
                out["retry-after-ms"] = str(math.ceil(retry_after * 1000))
        return out
