"""`vllm:MODEL_OR_PATH`: a model loaded in this process with vLLM.

Throughput comes from batching, so `complete_many` hands every pending request to one
`LLM.chat` call (vLLM applies the model's chat template and schedules the batch itself), and
`complete` gathers the requests that arrive together into such a batch. `LLM.chat` blocks, so it
runs in a worker thread, one batch at a time. `import vllm` happens only when a judge is built:
it is heavy and lives in its own venv (`make vllm-env`).

Signatures read from vllm 0.32 (`vllm/entrypoints/llm.py`, `sampling_params.py`,
`outputs.py`): `LLM.chat(messages: list[conversation], sampling_params: list[SamplingParams],
use_tqdm=...) -> list[RequestOutput]` in input order; `CompletionOutput.text/token_ids/
finish_reason/logprobs`, where logprobs is one `{token_id: Logprob(logprob, rank,
decoded_token)}` per generated position, holding the top-k and the sampled token."""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from .base import (
    ChatRequest,
    Completion,
    FinishReason,
    JudgeIdentity,
    JudgeOptions,
    JudgeStats,
    TokenLogprob,
    Usage,
)
from .errors import JudgeSetupError

# how long `complete` waits for company before sending a batch (requests that arrive while a
# batch runs join the next one anyway)
GATHER_S = 0.01


def sampling_params_for(request: ChatRequest) -> dict[str, Any]:
    """The `vllm.SamplingParams` keyword arguments for a request (pure; no vllm needed).
    JSON mode becomes `structured_outputs={"json_object": True}` (a StructuredOutputsParams)."""
    params: dict[str, Any] = {
        "n": 1,
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
    }
    if request.seed is not None:
        params["seed"] = request.seed
    if request.top_logprobs is not None:
        # vLLM returns the top-k plus the sampled token at each position
        params["logprobs"] = request.top_logprobs
    if request.response_format == "json":
        params["structured_outputs"] = {"json_object": True}
    elif request.response_format is not None:
        raise JudgeSetupError(
            f"response_format {request.response_format!r} is not supported; use 'json' or none"
        )
    return params


def conversation(request: ChatRequest) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in request.messages]


def _token_logprobs(output: Any) -> tuple[TokenLogprob, ...] | None:
    if output.logprobs is None:
        return None
    positions = []
    for token_id, alternatives in zip(output.token_ids, output.logprobs, strict=False):
        alternatives = alternatives or {}
        ranked = sorted(alternatives.values(), key=lambda lp: -lp.logprob)
        chosen = alternatives.get(token_id)
        positions.append(
            TokenLogprob(
                token=(chosen.decoded_token if chosen else None) or "",
                logprob=chosen.logprob if chosen else float("-inf"),
                top=tuple((lp.decoded_token or "", lp.logprob) for lp in ranked),
            )
        )
    return tuple(positions)


def completion_from_output(result: Any) -> Completion:
    """A vllm RequestOutput (first sample) -> Completion."""
    out = result.outputs[0]
    ends: dict[str | None, FinishReason] = {"length": "length", "abort": "error"}
    finish = ends.get(out.finish_reason, "stop")
    return Completion(
        text=out.text,
        finish_reason=finish,
        usage=Usage(len(result.prompt_token_ids or ()), len(out.token_ids)),
        logprobs=_token_logprobs(out),
        error="aborted by vLLM" if finish == "error" else None,
    )


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise JudgeSetupError(
            f"vllm is not installed in this environment ({exc}); run `make vllm-env` and use "
            "its venv, or serve the model with `vllm serve` and use --judge openai:MODEL "
            "--base-url http://127.0.0.1:8000/v1"
        ) from None
    return vllm


class VLLMJudge:
    """One `vllm.LLM` per judge, built at the first request (loading takes a while)."""

    def __init__(self, model: str, options: JudgeOptions, **llm_kwargs: Any) -> None:
        self.vllm = _import_vllm()
        self.model = model
        self.options = options
        self.identity = JudgeIdentity("vllm", model)
        self.stats = JudgeStats()
        self.llm_kwargs = {"seed": options.seed or 0, **llm_kwargs}
        self._llm: Any = None
        self._lock = asyncio.Lock()
        self._pending: list[tuple[ChatRequest, asyncio.Future[Completion]]] = []
        self._flusher: asyncio.Task[None] | None = None

    def _sampling_params(self, request: ChatRequest) -> Any:
        params = sampling_params_for(request)
        if "structured_outputs" in params:
            structured = importlib.import_module("vllm.sampling_params").StructuredOutputsParams
            params["structured_outputs"] = structured(**params["structured_outputs"])
        return self.vllm.SamplingParams(**params)

    def _run_batch(self, requests: Sequence[ChatRequest]) -> list[Completion]:
        """Blocking: build the LLM if needed, then one LLM.chat over the whole batch."""
        if self._llm is None:
            self._llm = self.vllm.LLM(model=self.model, **self.llm_kwargs)
        start = time.perf_counter()
        results = self._llm.chat(
            [conversation(r) for r in requests],
            sampling_params=[self._sampling_params(r) for r in requests],
            use_tqdm=False,
        )
        latency = time.perf_counter() - start
        now = time.time()
        return [
            replace(completion_from_output(res), latency_s=latency, created_at=now)
            for res in results
        ]

    async def complete_many(self, requests: Sequence[ChatRequest]) -> list[Completion]:
        if not requests:
            return []
        async with self._lock:  # one batch on the engine at a time
            done = await asyncio.to_thread(self._run_batch, list(requests))
        for c in done:
            self._account(c)
        return done

    async def complete(self, request: ChatRequest) -> Completion:
        future: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        await asyncio.sleep(GATHER_S)
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                done = await self.complete_many([r for r, _ in batch])
            except BaseException as exc:  # a setup failure reaches every waiter
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, fut), c in zip(batch, done, strict=True):
                if not fut.done():
                    fut.set_result(c)

    def _account(self, c: Completion) -> None:
        self.stats.requests += 1
        self.stats.input_tokens += c.usage.input_tokens
        self.stats.output_tokens += c.usage.output_tokens
        if c.finish_reason == "error":
            self.stats.errors += 1

    async def aclose(self) -> None:
        self._llm = None  # vLLM frees the engine when the LLM is collected


def build(model: str, options: JudgeOptions) -> VLLMJudge:
    if not model:
        raise JudgeSetupError(
            "vllm: name a model id or path, e.g. --judge vllm:/models/qwen2.5-0.5b"
        )
    return VLLMJudge(model, options)
