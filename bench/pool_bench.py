"""Throughput of the multi-server judge (judges/pool.py) against 1, 2 and 4 servers that each
serve at most 32 requests at a time in 200 ms (tests/support/server_fleet.py, its own process), through
the OpenAI judge's lean transport as `rmb run --base-url A --base-url B ...` builds it.

    .venv/bin/python bench/pool_bench.py [--servers 1 2 4] [--seconds 8]

The requests are real RMB pairwise comparisons under the `pairwise` template. Callers are as
many as the pool's ceiling can use (the runner's workers); the pool adapts each server's limit
to its queueing, so a warm-up round runs first and the measured window is the steady state."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests"), str(HERE)]

from support.server_fleet import MODEL, running_fleet  # noqa: E402
from throughput import drive, process_cpu_s, rmb_requests  # noqa: E402

from judges.base import ChatRequest, JudgeOptions  # noqa: E402
from judges.pool import PoolJudge  # noqa: E402
from judges.registry import build_judge  # noqa: E402

CAPACITY = 32
LATENCY_S = 0.2
# each server's ceiling: room above its capacity for the pool's limit to find the queue
CEILING = 64


async def _measure(urls: list[str], requests: list[ChatRequest], warm: int) -> dict[str, Any]:
    # named, so that one server is a pool too: the same code measured at every size
    options = JudgeOptions(base_urls=tuple(urls), judge_id=MODEL, concurrency=CEILING, timeout_s=60)
    judge = build_judge(f"openai:{MODEL}", options)
    assert isinstance(judge, PoolJudge)
    callers = judge.max_in_flight
    try:
        await drive(judge, requests[:warm], callers)
        w = await drive(judge, requests[warm:], callers)
    finally:
        await judge.aclose()
    return {
        "servers": len(urls),
        "requests": w.sent,
        "answered": w.ok,
        "rps": round(w.sent / (w.end - w.start), 1),
        "client_cpu_us": round(1e6 * w.cpu_s / w.sent),
        "limits": [s.limit.slots for s in judge.servers],
    }


def measure(n_servers: int, seconds: float) -> dict[str, Any]:
    """Requests/s through the pool over `n_servers` fresh servers for about `seconds`."""
    ideal = n_servers * CAPACITY / LATENCY_S
    warm = int(ideal * 2)
    requests = [replace(r, model=MODEL) for r in rmb_requests(warm + int(ideal * seconds))]
    with running_fleet(n_servers, capacity=CAPACITY, latency=LATENCY_S) as fleet:
        cpu = process_cpu_s(fleet.proc.pid)
        r = asyncio.run(_measure(fleet.urls, requests, warm))
        r["server_cpu_us"] = round(1e6 * (process_cpu_s(fleet.proc.pid) - cpu) / len(requests))
        r["max_in_flight_per_server"] = [s["max_in_flight"] for s in fleet.stats()]
        r["answered_twice"] = sum(n > 1 for n in fleet.answers_per_request().values())
    r["ideal_rps"] = ideal
    r["ratio_to_ideal"] = round(r["rps"] / ideal, 3)
    return r


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--servers", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--seconds", type=float, default=8.0)
    a = p.parse_args()
    for n in a.servers:
        print(json.dumps(measure(n, a.seconds)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
