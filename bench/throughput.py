"""Requests/s through the real OpenAI judge (registry `openai:` backend, official SDK) against the
loopback server in its own process, at a given concurrency, as a ratio of the ideal
concurrency / latency.

    .venv/bin/python bench/throughput.py [--concurrency 64 256 512] [--latency 0.2] [--procs 1]
        [--transport sdk lean]
    .venv/bin/python bench/throughput.py --concurrency 512 --transport lean --profile prof.out

The requests are real: RMB pairwise comparisons rendered by the `pairwise` template (a few KB
each), all distinct. `--procs P` splits the concurrency over P client processes that start
together (each its own event loop and judge); their requests are summed over the common window."""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from data_load import DEFAULT as RMB_DIR  # noqa: E402

from benchmark.data import Item  # noqa: E402
from judges.base import ChatRequest, Judge, JudgeIdentity, JudgeOptions  # noqa: E402

MODEL = "bench-judge"
KEY_ENV = "RMB_BENCH_KEY"


def make_judge(base_url: str, options: JudgeOptions) -> Judge:
    """The team's OpenAI backend exactly as `rmb run --judge openai:... --base-url` builds it."""
    os.environ.setdefault(KEY_ENV, "sk-bench-loopback")
    options = replace(options, base_url=base_url, api_key_env=KEY_ENV)
    try:
        from judges.registry import build_judge
    except ImportError:  # the registry module not landed yet: the same backend, built directly
        from judges.providers.openai_api import build

        return build(MODEL, options)
    return build_judge(f"openai:{MODEL}", options)


@functools.cache
def pairwise_items() -> list[Item]:
    from benchmark.data import Selection, load

    return Selection(sets=("pairwise",)).apply(load(RMB_DIR))


def rmb_requests(n: int, offset: int = 0) -> list[ChatRequest]:
    """n distinct real requests: RMB pairwise items, both orders, the pairwise template."""
    from benchmark.plan import plan
    from benchmark.runner.prepare import prepare
    from prompts import load_template

    # a few RMB pairs repeat the same texts: take some spare items
    items = pairwise_items()[offset // 2 : (offset + n) // 2 + 1 + n // 20]
    tpl = load_template("pairwise")
    # as the runner renders them: one request per distinct cache key
    prepared = prepare(
        items, plan(items, tpl.mode), tpl, JudgeIdentity("openai", MODEL), JudgeOptions()
    )
    reqs = [prepared.request(key) for key in list(prepared.first)[:n]]
    if len(reqs) < n:
        raise SystemExit(f"only {len(reqs)} distinct RMB requests available, {n} asked")
    return reqs


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of another process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Window:
    sent: int
    ok: int
    start: float  # time.time()
    end: float
    cpu_s: float  # this process's CPU time over the window


async def drive(judge: Judge, requests: list[ChatRequest], concurrency: int) -> Window:
    """`concurrency` workers call judge.complete() back to back over the requests."""
    it = iter(requests)
    ok = 0

    async def worker() -> None:
        nonlocal ok
        for req in it:
            c = await judge.complete(req)
            ok += c.is_answer

    start, cpu = time.time(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Window(len(requests), ok, start, time.time(), time.process_time() - cpu)


async def _run_one(
    base_url: str,
    requests: list[ChatRequest],
    concurrency: int,
    start_at: float | None,
    transport: str | None,
) -> Window:
    options = JudgeOptions(
        concurrency=concurrency, timeout_s=60, max_retries=0, transport=transport
    )
    judge = make_judge(base_url, options)
    try:
        # open the connections first: a pool warmed by one round, as in a long run
        await drive(judge, requests[:concurrency], concurrency)
        if start_at is not None:
            await asyncio.sleep(max(0.0, start_at - time.time()))
        return await drive(judge, requests[concurrency:], concurrency)
    finally:
        await judge.aclose()


def measure(
    base_url: str,
    concurrency: int,
    latency: float,
    *,
    procs: int = 1,
    rounds: int = 8,
    transport: str | None = None,
) -> dict[str, Any]:
    """Requests/s at `concurrency` (split over `procs` processes) and the ratio to the ideal,
    through the judge's `transport` ("sdk", "lean", None = the backend's default)."""
    n = concurrency * rounds
    if procs == 1:
        requests = rmb_requests(n + concurrency)
        w = asyncio.run(_run_one(base_url, requests, concurrency, None, transport))
        windows = [w]
    else:
        start_at = time.time() + 15.0  # children load RMB and warm up before this
        per = concurrency // procs
        children = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    base_url,
                    str(per),
                    str(per * rounds),
                    str(i * (per * rounds + per)),
                    repr(start_at),
                    str(transport or ""),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(procs)
        ]
        windows = []
        for c in children:
            out, _ = c.communicate()
            if c.returncode != 0:
                raise RuntimeError(f"throughput child failed ({c.returncode})")
            windows.append(Window(**json.loads(out)))
    sent = sum(w.sent for w in windows)
    ok = sum(w.ok for w in windows)
    wall = max(w.end for w in windows) - min(w.start for w in windows)
    rps = sent / wall
    cpu_us = 1e6 * sum(w.cpu_s for w in windows) / sent
    ideal = concurrency / latency
    return {
        "transport": transport or "default",
        "concurrency": concurrency,
        "procs": procs,
        "requests": sent,
        "answered": ok,
        "wall_s": round(wall, 3),
        "rps": round(rps, 1),
        "ideal_rps": round(ideal, 1),
        "ratio": round(rps / ideal, 3),
        # client CPU per request: what caps the rate on a busy machine (1e6 / cpu_us per core)
        "client_cpu_us": round(cpu_us),
    }


def _child(
    base_url: str, conc: int, n: int, offset: int, start_at: float, transport: str | None
) -> None:
    requests = rmb_requests(n + conc, offset)
    w = asyncio.run(_run_one(base_url, requests, conc, start_at, transport))
    print(json.dumps(w.__dict__))


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        b, c, n, off, at, tr = sys.argv[2:8]
        _child(b, int(c), int(n), int(off), float(at), tr or None)
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--concurrency", type=int, nargs="+", default=[64, 256, 512])
    p.add_argument("--latency", type=float, default=0.2)
    p.add_argument("--procs", type=int, default=1)
    p.add_argument(
        "--transport",
        nargs="+",
        choices=("sdk", "lean"),
        default=["sdk", "lean"],
        help="the OpenAI judge's transports, measured side by side",
    )
    p.add_argument("--rounds", type=int, default=8, help="requests per worker")
    p.add_argument("--profile", metavar="FILE", help="cProfile the client (procs 1) into FILE")
    a = p.parse_args()
    from support.loopback_server import running_server

    with running_server(latency=a.latency) as srv:
        for conc in a.concurrency:
            for tr in a.transport:
                kw: dict[str, Any] = {"rounds": a.rounds, "transport": tr}
                if a.profile:
                    import cProfile
                    import pstats

                    prof = cProfile.Profile()
                    r = prof.runcall(measure, srv.openai_base_url, conc, a.latency, **kw)
                    prof.dump_stats(a.profile)
                    pstats.Stats(prof).sort_stats("tottime").print_stats(25)
                else:
                    r = measure(srv.openai_base_url, conc, a.latency, procs=a.procs, **kw)
                print(json.dumps(r), f"load {os.getloadavg()[0]:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
