"""`make bench`: speed and memory of the whole harness, measured side by side in one run, each
line with its target, the measured value, the ratio and pass/fail, and the machine's load
average next to it (the machine may be shared: read the numbers against the load).

    .venv/bin/python bench/run.py [--quick] [--skip-full] [--out bench/results.json]

Lines: data load of the full shared RMB (time, peak RSS); per-comparison harness cost (render,
key, cache lookup, parse) and cache writes/reads per second; parser throughput on 1 MB hostile
answers (the slowest parser on the worst pattern); scoring the full RMB; throughput through the real OpenAI
judge against the loopback server (its own process, 200 ms latency) at concurrency 64, 256, 512,
on its two transports side by side (the official SDK and the lean aiohttp session, the default
for a `--base-url` server, which carries the targets), and lean in two client processes; the
multi-server judge over 1, 2 and 4 servers of 32 requests at a time (bench/pool_bench.py); a cached rerun of 1,000 comparisons and of the full RMB
through `rmb run` (subprocess, process start included; the cache is warmed once against the
loopback server with zero latency in a temporary directory)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests"), str(HERE)]

import harness  # noqa: E402
import parsers  # noqa: E402
import pool_bench  # noqa: E402
import rerun  # noqa: E402
import scoring  # noqa: E402
import throughput  # noqa: E402
from data_load import DEFAULT as RMB_DIR  # noqa: E402
from data_load import measure_load  # noqa: E402
from support.loopback_server import running_server  # noqa: E402

LATENCY_S = 0.2


@dataclass
class Line:
    name: str
    target: str
    measured: float
    unit: str
    ok: bool | None  # None: informational, no target
    ratio: float | None = None  # measured / target (or / ideal), when that reads naturally
    load1: float = 0.0
    detail: str = ""


def at_most(name: str, limit: float, value: float, unit: str, detail: str = "") -> Line:
    return Line(
        name, f"< {limit:g} {unit}", value, unit, value < limit, value / limit, load(), detail
    )


def at_least(name: str, floor: float, value: float, unit: str, detail: str = "") -> Line:
    return Line(
        name, f">= {floor:g} {unit}", value, unit, value >= floor, value / floor, load(), detail
    )


def info(name: str, value: float, unit: str, detail: str = "") -> Line:
    return Line(name, "-", value, unit, None, None, load(), detail)


def load() -> float:
    return round(os.getloadavg()[0], 2)


def section(title: str, fn: Callable[[], list[Line]], lines: list[Line]) -> None:
    print(f"… {title}", file=sys.stderr, flush=True)
    t = time.perf_counter()
    got = fn()
    lines += got
    for ln in got:
        print(render(ln), flush=True)
    print(f"  ({time.perf_counter() - t:.0f} s)", file=sys.stderr, flush=True)


def render(ln: Line) -> str:
    verdict = {True: "PASS", False: "MISS", None: "    "}[ln.ok]
    ratio = f"{ln.ratio:6.2f}" if ln.ratio is not None else "     -"
    value = f"{ln.measured:,.{2 if abs(ln.measured) < 10 else 1}f} {ln.unit}"
    text = f"{ln.name:<44}{ln.target:>16}{value:>20}  {ratio}  {verdict}  load {ln.load1:5.2f}"
    return text + (f"  {ln.detail}" if ln.detail else "")


HEADER = f"{'measure':<44}{'target':>16}{'measured':>20}  {'ratio':>6}  {'':4}  load avg"


# ---------------------------------------------------------------------------- sections


def data_lines() -> list[Line]:
    r = measure_load(RMB_DIR)
    detail = f"{r['items']:,} items, {r['files']} files, {r['cpu_seconds']:.2f} s CPU"
    return [
        at_most("data load, full RMB: wall", 3.0, r["seconds"], "s", detail),
        at_most("data load, full RMB: peak RSS", 400.0, r["peak_rss_mb"], "MB"),
    ]


def harness_lines() -> list[Line]:
    r = harness.measure(2000)
    return [
        info("harness per comparison: render", r["render_us"], "µs"),
        info("harness per comparison: request + key", r["key_us"], "µs"),
        info("harness per comparison: cache lookup", r["cache_lookup_us"], "µs"),
        info("harness per comparison: parse", r["parse_us"], "µs"),
        info(
            "harness per comparison: total", r["total_us"], "µs", f"{r['comparisons']} comparisons"
        ),
        info("cache writes (256 per transaction)", r["cache_writes_per_s"], "/s"),
        info("cache reads (256 keys per lookup)", r["cache_reads_per_s"], "/s"),
    ]


def scoring_lines() -> list[Line]:
    r = scoring.measure()
    detail = f"{r['comparisons']:,} comparisons, {r['items']:,} items, 1,000 resamples"
    return [at_most("scoring, full RMB: wall", 20.0, r["seconds"], "s", detail)]


def throughput_lines(quick: bool) -> list[Line]:
    lines = []
    # requests per worker: enough rounds that the rate is the steady state, not the ramp
    # (at c=64, 8 rounds read ~0.90 of ideal where 32 read ~0.94 on the same quiet machine)
    rounds = {64: 32, 256: 8, 512: 4} if not quick else {64: 3, 256: 2, 512: 2}
    with running_server(latency=LATENCY_S) as srv:
        runs = [(c, 1, tr) for c in (64, 256, 512) for tr in ("sdk", "lean")] + [(512, 2, "lean")]
        for conc, procs, transport in runs:
            cpu0, req0 = throughput.process_cpu_s(srv.proc.pid), srv.stats()["requests"]
            r = throughput.measure(
                srv.openai_base_url,
                conc,
                LATENCY_S,
                procs=procs,
                rounds=rounds[conc],
                transport=transport,
            )
            served = max(1, srv.stats()["requests"] - req0)
            server_us = 1e6 * (throughput.process_cpu_s(srv.proc.pid) - cpu0) / served
            # what this machine could carry if client and server had it to themselves: each
            # client process is one event loop (one core at most)
            ceiling = min(
                procs * 1e6 / max(1, r["client_cpu_us"]),
                (os.cpu_count() or 1) * 1e6 / (r["client_cpu_us"] + server_us),
            )
            name = f"throughput {transport} c={conc}" + (f", {procs} procs" if procs > 1 else "")
            detail = (
                f"ideal {r['ideal_rps']:.0f}/s, ratio to ideal {r['ratio']:.2f}, "
                f"CPU per request: client {r['client_cpu_us']} µs, server {server_us:.0f} µs "
                f"(idle-machine ceiling ~{ceiling:.0f}/s); {r['requests']} requests"
            )
            if transport == "sdk":  # the hosted API's transport: for comparison, no target
                ln = info(f"{name}: requests/s", r["rps"], "/s", detail)
            elif conc == 64:
                # the target is a ratio to the ideal: report the ratio as the measured value
                ln = at_least(
                    f"{name}: ratio to ideal", 0.9, r["ratio"], "x", f"{r['rps']:.0f}/s; " + detail
                )
            elif conc == 512:
                ln = at_least(f"{name}: requests/s", 1000, r["rps"], "/s", detail)
            else:
                ln = info(f"{name}: requests/s", r["rps"], "/s", detail)
            if r["answered"] != r["requests"]:
                ln.ok, ln.detail = False, ln.detail + f"; only {r['answered']} answered"
            lines.append(ln)
    return lines


def pool_lines(quick: bool) -> list[Line]:
    """The multi-server judge over 1, 2 and 4 servers (32 at a time each, 200 ms): N servers
    should carry at least 0.9 N times what one carries."""
    seconds = 3.0 if quick else 8.0
    runs = {n: pool_bench.measure(n, seconds) for n in (1, 2, 4)}
    one = runs[1]["rps"]
    lines = []
    for n, r in runs.items():
        detail = (
            f"{r['rps']:.0f}/s, ideal {r['ideal_rps']:.0f}/s (ratio {r['ratio_to_ideal']:.2f}), "
            f"limits {r['limits']}, CPU per request: client {r['client_cpu_us']} µs, "
            f"servers {r['server_cpu_us']} µs; {r['requests']} requests"
        )
        if n == 1:
            ln = info("multi-server judge, 1 server: requests/s", r["rps"], "/s", detail)
        else:
            ln = at_least(
                f"multi-server judge, {n} servers: x one server",
                0.9 * n,
                r["rps"] / one,
                "x",
                detail,
            )
        if r["answered"] != r["requests"] or r["answered_twice"]:
            ln.ok = False
            ln.detail += f"; {r['answered']} answered, {r['answered_twice']} answered twice"
        lines.append(ln)
    # what one client process carries at all here, pool or not: 4 servers want 640/s
    with running_server(latency=LATENCY_S) as srv:
        c = throughput.measure(srv.openai_base_url, 256, LATENCY_S, rounds=4, transport="lean")
    lines.append(
        info(
            "  client ceiling: lean judge, c=256, 1 server",
            c["rps"],
            "/s",
            f"CPU per request {c['client_cpu_us']} µs; when 4 servers' line misses, compare",
        )
    )
    return lines


def parser_lines() -> list[Line]:
    r = parsers.measure()
    detail = f"{r['parsers']} parsers x {r['answers']} hostile patterns; slowest: {r['slowest']}"
    return [
        at_least(
            "parser throughput, 1 MB hostile answers", 10.0, r["slowest_mb_s"], "MB/s", detail
        ),
        info("parser throughput, 1 MB hostile: median", r["median_mb_s"], "MB/s"),
    ]


def rerun_lines(full: bool) -> list[Line]:
    lines = []
    with running_server(latency=0.0) as srv:
        r = rerun.measure(srv, full=full)
    for key, label, wall_target, rss_target in (
        ("cached_1000", "cached rerun, 1,000 comparisons", 2.0, None),
        ("full_rmb", "cached rerun, full RMB", 10.0, 150.0),
    ):
        if key not in r:
            continue
        x = r[key]
        detail = (
            f"{x['comparisons']:,} comparisons, {x['sent_by_rerun']} sent, {x['cpu_s']:.2f} s CPU "
            f"(warming run {x['warm_wall_s']:.0f} s)"
        )
        ln = at_most(f"{label}: wall", wall_target, x["wall_s"], "s", detail)
        if x["sent_by_rerun"]:
            ln.ok = False
        lines.append(ln)
        if rss_target is not None:
            lines.append(at_most(f"{label}: peak RSS", rss_target, x["peak_rss_mb"], "MB"))
        else:
            lines.append(info(f"{label}: peak RSS", x["peak_rss_mb"], "MB"))
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer requests per throughput level")
    p.add_argument("--skip-full", action="store_true", help="no full-RMB warm cache rerun")
    p.add_argument("--out", type=Path, default=HERE / "results.json")
    a = p.parse_args()
    started = time.time()
    lines: list[Line] = []
    print(f"rmb-judge bench on {platform.node()} ({os.cpu_count()} CPUs), load {load()}")
    print(HEADER)
    section("data load", data_lines, lines)
    section("harness cost", harness_lines, lines)
    section("parsers on hostile answers", parser_lines, lines)
    section("scoring", scoring_lines, lines)
    section("throughput", lambda: throughput_lines(a.quick), lines)
    section("multi-server judge", lambda: pool_lines(a.quick), lines)
    section("cached reruns (rmb run)", lambda: rerun_lines(not a.skip_full), lines)
    print()
    print(HEADER)
    for ln in lines:
        print(render(ln))
    missed = [ln.name for ln in lines if ln.ok is False]
    print(f"\n{sum(ln.ok is True for ln in lines)} targets met, {len(missed)} missed")
    result: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_s": round(time.time() - started, 1),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "lines": [asdict(ln) for ln in lines],
    }
    a.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(f"written: {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
