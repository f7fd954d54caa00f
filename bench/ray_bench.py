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
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from vllm_bench import DEFAULT_DATA, rate, requests_for  # noqa: E402

from judges.base import ChatRequest, Judge, JudgeOptions  # noqa: E402
from judges.registry import build_judge  # noqa: E402
from judges.vllm_inproc import model_identity  # noqa: E402


async def _timed(judge: Judge, warm: list[ChatRequest], requests: list[ChatRequest]) -> Any:
    await asyncio.gather(*(judge.complete(r) for r in warm))  # loads (and warms) the engines
    t = time.perf_counter()
    done = await asyncio.gather(*(judge.complete(r) for r in requests))
    seconds = time.perf_counter() - t
    await judge.aclose()
    errors = sum(c.finish_reason == "error" for c in done)
    return seconds, sum(c.usage.output_tokens for c in done), errors


def measure(model: str, requests: list[ChatRequest], replicas: int, threads: int) -> dict[str, Any]:
    """One judge: in-process (replicas 1, `threads` OMP threads) or `replicas` on Ray."""
    options = JudgeOptions(seed=0, replicas=replicas)
    # in-process: the same thread budget as the replicas together, unbound like theirs (only
    # for this engine: a Ray instance started later must give its workers Ray's own count)
    env = {"OMP_NUM_THREADS": str(threads), "VLLM_CPU_OMP_THREADS_BIND": "nobind"}
    saved = {k: os.environ.get(k) for k in env}
    if replicas == 1:
        os.environ.update(env)
    try:
        judge = build_judge(f"vllm:{model}", options)
        warm = [replace(r, max_tokens=1) for r in requests[: 2 * replicas]]
        seconds, out_tokens, errors = asyncio.run(_timed(judge, warm, requests))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return {**rate(len(requests), out_tokens, seconds), "errors": errors}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="HF model folder (make vllm-env makes one)")
    ap.add_argument("--requests", type=int, default=32, help="RMB prompts of <= 4,000 chars")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args(argv)
    threads = os.cpu_count() or 1
    served = model_identity(args.model)
    requests = requests_for(DEFAULT_DATA, args.requests, served, args.max_tokens, 4000, seed=0)
    report: dict[str, Any] = {
        "requests": len(requests),
        "max_tokens": args.max_tokens,
        "threads_total": threads,
        "load_avg_start": os.getloadavg(),
    }
    # in-process first: the Ray run then starts its engines on a machine already warmed alike
    report["in_process"] = measure(args.model, requests, 1, threads)
    report["ray"] = measure(args.model, requests, args.replicas, threads)
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
