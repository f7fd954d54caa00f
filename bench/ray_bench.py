"""`vllm:MODEL --replicas 2` on a local Ray instance against the in-process `vllm:` judge with the
same total CPU threads, on the same real RMB prompts: the overhead ratio of Ray (actor calls,
serialising requests and answers, two engines of half the threads each). Run in the vLLM venv
with Ray (`make bench-vllm`):

    .venv-vllm/bin/python bench/ray_bench.py --model .venv-vllm/models/SmolLM2-135M-Instruct

Both judges get every request at once through `complete()` as the runner gives them (the
in-process one gathers them into `LLM.chat` batches, the Ray one hands batches to whichever
replica is free); the engines are loaded and warmed before the clock starts."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from vllm_bench import DEFAULT_DATA, rate, requests_for  # noqa: E402

from judges.base import ChatRequest, Judge, JudgeOptions  # noqa: E402
from judges.providers.vllm_inproc import model_identity  # noqa: E402
from judges.registry import build_judge  # noqa: E402


async def _timed(judge: Judge, warm: list[ChatRequest], requests: list[ChatRequest]) -> Any:
    await asyncio.gather(*(judge.complete(r) for r in warm))  # loads (and warms) the engines
    t = time.perf_counter()
    done = await asyncio.gather(*(judge.complete(r) for r in requests))
    seconds = time.perf_counter() - t
    await judge.aclose()
    errors = sum(c.finish_reason == "error" for c in done)
    return seconds, sum(c.usage.output_tokens for c in done), errors


# the line of a child's output that holds its numbers (vLLM logs to stdout too)
RESULT = "ray_bench result: "


def measure(model: str, requests: list[ChatRequest], replicas: int) -> dict[str, Any]:
    """One judge, in this (fresh) process: in-process (replicas 1) or `replicas` on Ray."""
    judge = build_judge(f"vllm:{model}", JudgeOptions(seed=0, replicas=replicas))
    warm = [replace(r, max_tokens=1) for r in requests[: 2 * replicas]]
    seconds, out_tokens, errors = asyncio.run(_timed(judge, warm, requests))
    return {**rate(len(requests), out_tokens, seconds), "errors": errors}


def in_child(argv: list[str], replicas: int, env: dict[str, str]) -> dict[str, Any]:
    """`measure` in a fresh interpreter: what one judge leaves behind (engine threads, a Ray
    instance) must not slow the other; the first tries here measured whichever ran second
    2-3x slower, either way round."""
    out = subprocess.run(
        [sys.executable, __file__, *argv, "--one", str(replicas)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith(RESULT))
    return dict(json.loads(line[len(RESULT) :]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="HF model folder (make vllm-env makes one)")
    ap.add_argument("--requests", type=int, default=32, help="RMB prompts of <= 4,000 chars")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child measures one judge
    args = ap.parse_args(argv)
    threads = os.cpu_count() or 1
    served = model_identity(args.model)
    requests = requests_for(DEFAULT_DATA, args.requests, served, args.max_tokens, 4000, seed=0)
    if args.one is not None:
        print(RESULT + json.dumps(measure(args.model, requests, args.one)), flush=True)
        return 0
    keep = ["--model", args.model, "--requests", str(args.requests)]
    keep += ["--max-tokens", str(args.max_tokens)]
    report: dict[str, Any] = {
        "requests": len(requests),
        "max_tokens": args.max_tokens,
        "threads_total": threads,
        "load_avg_start": os.getloadavg(),
    }
    # in-process: the replicas' thread budget together, unbound like theirs (Ray gives each
    # replica OMP_NUM_THREADS = its CPUs)
    same_threads = {"OMP_NUM_THREADS": str(threads), "VLLM_CPU_OMP_THREADS_BIND": "nobind"}
    report["in_process"] = in_child(keep, 1, same_threads)
    report["ray"] = in_child(keep, args.replicas, {})
    report["ray_vs_in_process"] = round(
        report["ray"]["requests_per_s"] / report["in_process"]["requests_per_s"], 3
    )
    report["load_avg_end"] = os.getloadavg()
    print(json.dumps(report, indent=2))
    print(
        f"Ray, {args.replicas} replicas / in-process, {threads} threads: "
        f"{report['ray_vs_in_process']:.3f} of the throughput "
        f"(load average {report['load_avg_end'][0]:.1f}: timings are noisy)"
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
