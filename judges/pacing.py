"""Online pacing that rides a hosted API's rate limit instead of bouncing off it.

Two controls, both learned while the run goes:

- What the provider says is left. Every response carries the account's limits: OpenAI
  `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` (reset as "1s", "6m0s", "20ms"),
  Anthropic `anthropic-ratelimit-{requests,tokens,input-tokens}-{limit,remaining,reset}` (reset
  an RFC 3339 time). The limits are per minute, so a bucket refills at limit/60 a second; it is
  full `reset` from now, which gives its size (remaining + reset x rate: providers enforce the
  minute over shorter windows too). `Pacer` mirrors each bucket, charges a request's estimated
  tokens when it is sent, and trusts the provider's `remaining` when that is lower; a request is
  sent only when both buckets hold it.
- AIMD on what is in flight: a window of concurrent requests starts small, grows by one per
  answered request until the first 429/529 (slow start), then by 1/window per answer; a 429 or
  529 halves it (once per window's worth of requests: a burst of 429s from one moment halves
  once) and pauses sending for the server's Retry-After. The window never exceeds the ceiling,
  `--concurrency`.

Use: `ticket = await pacer.acquire(tokens)`, send, `pacer.release(ticket, status, headers)`."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
THROTTLED = frozenset({429, 529})


def parse_reset(value: str, now: float | None = None) -> float | None:
    """Seconds until a bucket is full: "6m0s", "1.5s", "20ms" (OpenAI), an RFC 3339 time
    (Anthropic), or plain seconds."""
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parts = _DURATION.findall(value)
    if parts and "".join(n + u for n, u in parts) == value:
        return sum(float(n) * _UNIT[u] for n, u in parts)
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
    return max(0.0, t - (now if now is not None else time.time()))


@dataclass(frozen=True, slots=True)
class Reading:
    """One bucket as a response described it."""

    limit: float  # per minute
    remaining: float
    reset_s: float | None


def read_limits(headers: Mapping[str, str]) -> dict[str, Reading]:
    """{"requests": Reading, "tokens": Reading} from either provider's headers (what is there)."""
    h = {k.lower(): v for k, v in headers.items()}
    out: dict[str, Reading] = {}
    for kind, names in (("requests", ("requests",)), ("tokens", ("tokens", "input-tokens"))):
        for name in names:
            for limit, remaining, reset in (
                (f"x-ratelimit-limit-{name}", f"x-ratelimit-remaining-{name}", f"x-ratelimit-reset-{name}"),
                (f"anthropic-ratelimit-{name}-limit", f"anthropic-ratelimit-{name}-remaining", f"anthropic-ratelimit-{name}-reset"),
            ):  # fmt: skip
                if limit in h and remaining in h and kind not in out:
                    try:
                        out[kind] = Reading(
                            float(h[limit]),
                            float(h[remaining]),
                            parse_reset(h[reset]) if reset in h else None,
                        )
                    except ValueError:
                        continue
    return out


class Mirror:
    """Our copy of one of the provider's buckets."""

    def __init__(self, reading: Reading, now: float) -> None:
        self.rate = reading.limit / 60.0
        self.capacity = reading.limit
        self.level = reading.remaining
        self.stamp = now
        self.learn(reading, now)

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def learn(self, r: Reading, now: float) -> None:
        self.refill(now)
        self.rate = r.limit / 60.0
        if r.reset_s is not None and r.reset_s > 0:
            # full at `reset`: its size is what is left plus what flows in until then
            self.capacity = min(r.limit, max(1.0, r.remaining + r.reset_s * self.rate))
        self.level = min(self.level, r.remaining)

    def wait_for(self, n: float, now: float) -> float:
        self.refill(now)
        need = min(n, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.rate


@dataclass(frozen=True, slots=True)
class Ticket:
    sent_at: float
    epoch: int  # the window's decrease count when sent (a 429 halves once per epoch)


class Pacer:
    def __init__(self, ceiling: int, *, initial: int = 4) -> None:
        if ceiling < 1:
            raise ValueError(f"concurrency must be at least 1, got {ceiling}")
        self.ceiling = ceiling
        self.window = float(min(ceiling, max(1, initial)))
        self.slow_start = True
        self.in_flight = 0
        self.epoch = 0
        self.paused_until = 0.0
        self.buckets: dict[str, Mirror] = {}
        self.throttled = 0  # 429/529 seen
        self.sent = 0
        self._gate = asyncio.Lock()  # senders queue first come, first served
        self._freed = asyncio.Event()

    @staticmethod
    def now() -> float:
        return time.monotonic()

    def _wait(self, tokens: float) -> float:
        now = self.now()
        wait = self.paused_until - now
        for kind, b in self.buckets.items():
            wait = max(wait, b.wait_for(1 if kind == "requests" else tokens, now))
        return wait

    async def acquire(self, tokens: int = 0) -> Ticket:
        async with self._gate:
            while True:
                if self.in_flight >= int(self.window):
                    self._freed.clear()
                    await self._freed.wait()
                    continue
                wait = self._wait(tokens)
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            for kind, b in self.buckets.items():
                b.level -= 1 if kind == "requests" else min(tokens, b.capacity)
            self.in_flight += 1
            self.sent += 1
            return Ticket(self.now(), self.epoch)

    def release(
        self,
        ticket: Ticket,
        status: int | None,
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        """After the attempt: its HTTP status (None: no answer) and the response headers."""
        self.in_flight -= 1
        self._freed.set()
        now = self.now()
        for kind, reading in read_limits(headers or {}).items():
            b = self.buckets.get(kind)
            if b is None:
                self.buckets[kind] = Mirror(reading, now)
            else:
                b.learn(reading, now)
        if status in THROTTLED:
            self.throttled += 1
            if retry_after:
                self.paused_until = max(self.paused_until, now + retry_after)
            if ticket.epoch == self.epoch:  # the first 429 of this window's requests
                self.epoch += 1
                self.slow_start = False
                self.window = max(1.0, self.window / 2)
        elif status is not None and status < 400:
            grow = 1.0 if self.slow_start else 1.0 / self.window
            self.window = min(float(self.ceiling), self.window + grow)
