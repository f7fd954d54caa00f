"""judges/pacing.py: the providers' rate-limit headers read, and a pacer that keeps a run under
a rate-limited test server's limit (tests/support/batch_server.py + tests/support/rate_limits.py) where sending
at the ceiling meets 429s. Throughput against the limit is measured in `make bench`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from support.batch_server import BatchServer, running_batch_server
from support.loopback_server import LoopbackServer
from support.rate_limits import RateLimit, go_duration

from judges.pacing import Pacer, Ticket, parse_reset, read_limits


def test_reset_formats() -> None:
    assert parse_reset("6m0s") == 360.0
    assert parse_reset("1.5s") == 1.5
    assert parse_reset("20ms") == pytest.approx(0.02)
    assert parse_reset("1h2m3s") == 3723.0
    assert parse_reset("2") == 2.0
    assert parse_reset("2030-01-01T00:00:10Z", now=1893456000.0) == pytest.approx(10.0)
    assert parse_reset("soon") is None
    for s in (0.05, 1.0, 59.0, 61.0, 359.5):
        assert parse_reset(go_duration(s)) == pytest.approx(s, abs=0.51)


def test_headers_of_both_providers() -> None:
    now = [0.0]
    limit = RateLimit(600, 60_000, clock=lambda: now[0], burst_s=1.0)
    assert limit.admit(500) == 0.0
    for api in ("openai", "anthropic"):
        got = read_limits(limit.headers(api))
        assert got["requests"].limit == 600 and got["tokens"].limit == 60_000
        assert got["requests"].remaining == 9 and got["tokens"].remaining == 500
        assert got["tokens"].reset_s == pytest.approx(0.5, abs=0.01)
    assert read_limits({"content-type": "application/json"}) == {}


async def test_aimd_window() -> None:
    p = Pacer(ceiling=8, initial=2)
    t = await p.acquire()
    p.release(t, 200)
    assert p.window == 3  # slow start: +1 per answer
    tickets = [await p.acquire() for _ in range(3)]
    for tk in tickets:
        p.release(tk, 429)
    assert p.window == 1.5 and p.throttled == 3  # one halving for one window's 429s
    for _ in range(40):
        tk = await p.acquire()
        p.release(tk, 200)
    assert 1.5 < p.window <= 8  # additive increase, capped at the ceiling
    p.release(Ticket(0.0, p.epoch), 529)
    assert p.window < 8


async def test_waits_for_the_bucket_the_headers_describe() -> None:
    p = Pacer(ceiling=64)
    headers = {
        "x-ratelimit-limit-requests": "600",  # 10/s
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "1s",
    }
    p.release(await p.acquire(), 200, headers)
    start = time.monotonic()
    for _ in range(3):
        p.release(await p.acquire(), 200)
    assert 0.25 <= time.monotonic() - start < 2.0  # 3 requests at 10/s (the floor is the point)


@pytest.fixture(scope="module")
def limited(loopback_server: LoopbackServer) -> Iterator[BatchServer]:
    with running_batch_server(loopback_server.base_url) as srv:
        yield srv


async def _drive(srv: BatchServer, pacer: Pacer | None, n: int, workers: int) -> tuple[int, float]:
    """n requests from `workers` concurrent senders, each retried until answered: (429s, s)."""
    url = srv.openai_base_url + "/chat/completions"
    todo = list(range(n))
    throttled = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal throttled
        while todo:
            i = todo.pop()
            body = {
                "model": "m",
                "max_tokens": 20,
                "messages": [{"role": "user", "content": f"[[A]] or [[B]]? {i}"}],
            }
            while True:
                ticket = await pacer.acquire(30) if pacer else None
                async with session.post(url, json=body) as resp:
                    await resp.read()
                    status, headers = resp.status, resp.headers
                if pacer and ticket:
                    retry = float(headers.get("retry-after-ms", 0)) / 1000 or None
                    pacer.release(ticket, status, headers, retry)
                if status != 429:
                    break
                throttled += 1
                if pacer is None:
                    await asyncio.sleep(float(headers.get("retry-after-ms", 100)) / 1000)

    start = time.monotonic()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(workers)))
    return throttled, time.monotonic() - start


async def test_pacer_rides_the_limit_where_the_ceiling_bounces_off_it(limited: BatchServer) -> None:
    # 1,200 requests/min (20/s) in 0.5 s bursts; 80 requests want 4 s
    limited.reset()
    limited.configure(
        rate_limit={"requests_per_min": 1200, "tokens_per_min": 10**7, "burst_s": 0.5}
    )
    blind, _ = await _drive(limited, None, 80, workers=32)
    limited.reset()
    limited.configure(
        rate_limit={"requests_per_min": 1200, "tokens_per_min": 10**7, "burst_s": 0.5}
    )
    paced, took = await _drive(limited, Pacer(ceiling=32), 80, workers=32)
    assert blind > 40  # sending at the ceiling meets a 429 for most requests
    assert paced <= 8  # the pacer meets a few while it learns the bucket
    assert took < 15.0  # ~4 s at the limit; a loaded machine is slower, never faster


@pytest.mark.parametrize("transport", ["sdk", "lean"])
async def test_http_judge_paces_itself_from_the_headers(
    limited: BatchServer, transport: str
) -> None:
    from judges.base import JudgeOptions, Message
    from judges.registry import build_judge

    limited.reset()
    limited.configure(
        rate_limit={"requests_per_min": 1200, "tokens_per_min": 10**7, "burst_s": 0.5}
    )
    opts = JudgeOptions(
        base_url=limited.openai_base_url, concurrency=32, transport=transport, backoff_s=0.05
    )
    judge: Any = build_judge("openai:judge-1", opts)
    try:
        reqs = [
            opts.request([Message("user", f"[[A]] or [[B]]? {i}")], "judge-1", max_tokens=64)
            for i in range(60)
        ]
        done = await asyncio.gather(*(judge.complete(r) for r in reqs))
    finally:
        await judge.aclose()
    assert all(c.is_answer for c in done)
    assert set(judge.pacer.buckets) == {"requests", "tokens"}  # read from either transport
    assert limited.stats()["limited"] <= 6 and judge.stats.retries <= 6
