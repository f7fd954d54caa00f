"""In-process `vllm:` judge throughput against vLLM's own `LLM.chat` on the same prompts, in the
same process and engine (target ratio >= 0.9), and against the `vllm-server` path through the
OpenAI backend at concurrency 8. Run in the vLLM venv (`make bench-vllm`):

    .venv-vllm/bin/python bench/vllm_bench.py --model .venv-vllm/models/SmolLM2-135M-Instruct

Prompts are real RMB pairwise items rendered with the `pairwise` template. Prefix caching is off
so a later round does not reuse an earlier round's prompts; the raw and judge rounds alternate
and the best of each is kept, which damps (not removes) noise from other work on the machine."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmark.data import PairwiseItem, load_file  # noqa: E402
from judges.base import ChatRequest, Completion, JudgeOptions  # noqa: E402
from judges.providers import openai_api  # noqa: E402
from judges.providers.vllm_inproc import (  # noqa: E402
    VLLMJudge,
    conversation,
    model_identity,
    sampling_params_for,
)
from judges.vllm_server import VLLMServer, server_flags  # noqa: E402
from prompts import load_template  # noqa: E402

DEFAULT_DATA = Path(os.environ.get("RMB_DATA") or REPO.parent / "shared" / "rmb" / "RMB_dataset")


def requests_for(
    data: Path, n: int, model: str, max_tokens: int, max_chars: int, seed: int
) -> list[ChatRequest]:
    """n seeded-random RMB pairwise items (rendered under max_chars) as judge requests."""
    template = load_template("pairwise")
    options = JudgeOptions(max_tokens=max_tokens, seed=0)
    pairs = [
        it
        for f in sorted((data / "Pairwise_set").rglob("*.json"))
        for it in load_file(f)
        if isinstance(it, PairwiseItem)
    ]
    random.Random(seed).shuffle(pairs)
    out: list[ChatRequest] = []
    for it in pairs:
        msgs = template.render(
            conversation=it.conversation,
            responses=[it.chosen.text, it.rejected.text],
            goal=it.category.goal,
            category=it.category,
        )
        if sum(len(m.content) for m in msgs) <= max_chars:
            out.append(options.request(msgs, model, max_tokens=max_tokens))
        if len(out) == n:
            break
    return out


def rate(n: int, out_tokens: int, seconds: float) -> dict[str, float]:
    return {
        "seconds": round(seconds, 2),
        "requests_per_s": round(n / seconds, 3),
        "output_tokens_per_s": round(out_tokens / seconds, 1),
        "output_tokens": out_tokens,
    }


def raw_chat(llm: Any, requests: list[ChatRequest]) -> tuple[float, int]:
    """vLLM's own API, nothing of ours in the loop: one LLM.chat with the same parameters."""
    from vllm import SamplingParams

    convs = [conversation(r) for r in requests]
    params = [SamplingParams(**sampling_params_for(r)) for r in requests]
    t = time.perf_counter()
    outs = llm.chat(convs, params, use_tqdm=False)
    seconds = time.perf_counter() - t
    return seconds, sum(len(o.outputs[0].token_ids) for o in outs)


def judge_batch(judge: VLLMJudge, requests: list[ChatRequest]) -> tuple[float, int]:
    t = time.perf_counter()
    done = asyncio.run(judge.complete_many(requests))
    seconds = time.perf_counter() - t
    return seconds, sum(c.usage.output_tokens for c in done)


async def server_run(
    base_url: str, model: str, requests: list[ChatRequest], concurrency: int
) -> tuple[float, int, list[Completion]]:
    """All requests at once through the OpenAI backend; its limiter keeps `concurrency` in flight."""
    judge = openai_api.build(
        model, JudgeOptions(base_url=base_url, concurrency=concurrency, timeout_s=1800)
    )
    try:
        t = time.perf_counter()
        done = await asyncio.gather(*(judge.complete(r) for r in requests))
        seconds = time.perf_counter() - t
    finally:
        await judge.aclose()
    return seconds, sum(c.usage.output_tokens for c in done), list(done)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="HF model folder (make vllm-env makes one)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--max-chars", type=int, default=4000, help="longest rendered prompt")
    ap.add_argument("--rounds", type=int, default=2, help="alternating raw/judge rounds")
    ap.add_argument("--concurrency", type=int, default=8, help="server path")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-server", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args(argv)

    judge = VLLMJudge(args.model, JudgeOptions(), enable_prefix_caching=False)
    served = model_identity(args.model)
    requests = requests_for(
        args.data, args.requests, served, args.max_tokens, args.max_chars, args.seed
    )
    prompt_chars = sum(len(m.content) for r in requests for m in r.messages)
    engine = judge.llm_kwargs
    report: dict[str, Any] = {
        "requests": len(requests),
        "prompt_chars": prompt_chars,
        "max_tokens": args.max_tokens,
        "engine": engine,
        "cpus": os.cpu_count(),
        "load_avg_start": os.getloadavg(),
    }
    print(f"{len(requests)} RMB prompts ({prompt_chars} chars), max_tokens {args.max_tokens}")

    t = time.perf_counter()
    llm = judge.load()
    report["load_s"] = round(time.perf_counter() - t, 1)
    llm.chat([conversation(requests[0])], use_tqdm=False)  # warm-up
    raw_best: tuple[float, int] | None = None
    ours_best: tuple[float, int] | None = None
    for i in range(args.rounds):
        raw = raw_chat(llm, requests)
        ours = judge_batch(judge, requests)
        print(f"round {i + 1}: LLM.chat {raw[0]:.1f} s, vllm judge {ours[0]:.1f} s")
        raw_best = raw if raw_best is None or raw[0] < raw_best[0] else raw_best
        ours_best = ours if ours_best is None or ours[0] < ours_best[0] else ours_best
    assert raw_best and ours_best
    report["llm_chat"] = rate(len(requests), raw_best[1], raw_best[0])
    report["vllm_judge"] = rate(len(requests), ours_best[1], ours_best[0])
    report["judge_vs_llm_chat"] = round(raw_best[0] / ours_best[0], 3)
    asyncio.run(judge.aclose())
    del llm

    if not args.no_server:
        server = VLLMServer(args.model, served, args=server_flags(engine))
        t = time.perf_counter()
        base_url = server.start()
        report["server_start_s"] = round(time.perf_counter() - t, 1)
        try:
            asyncio.run(server_run(base_url, served, requests[:1], 1))  # warm-up
            seconds, out_tokens, done = asyncio.run(
                server_run(base_url, served, requests, args.concurrency)
            )
        finally:
            server.stop()
        errors = [c.error for c in done if c.error]
        report["server"] = {**rate(len(requests), out_tokens, seconds), "errors": len(errors)}
        report["server_concurrency"] = args.concurrency
        report["judge_vs_server"] = round(seconds / ours_best[0], 3)

    report["load_avg_end"] = os.getloadavg()
    print(json.dumps(report, indent=2))
    print(
        f"in-process judge / LLM.chat throughput: {report['judge_vs_llm_chat']:.3f} (target >= 0.9)"
    )
    if "judge_vs_server" in report:
        print(
            f"in-process judge / server at concurrency {args.concurrency}: "
            f"{report['judge_vs_server']:.3f}"
        )
    print(f"(2 shared CPUs, load average {report['load_avg_end'][0]:.1f}: timings are noisy)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
