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
decoded_token)}` per generated position, holding the top-k and the sampled token.

Run for real on CPU (issue 9): on vLLM's CPU platform the engine defaults to eager mode (graph
compilation takes minutes there) and a 2 GiB KV cache; a local model folder is loaded offline.
A prompt longer than the context would make vLLM reject the whole batch, so such a request is
answered "refused" before the batch is sent; should vLLM still reject a batch, its requests are
sent one by one and only the one it rejects is refused. A request's `chat_template_kwargs`
(e.g. `{"enable_thinking": false}` for Qwen3) go to `LLM.chat` with its batch. `$RMB_VLLM_ENGINE_ARGS` (a JSON object of `LLM()`
arguments) adds or overrides engine arguments."""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..base import (
    ChatRequest,
    Completion,
    FinishReason,
    JudgeIdentity,
    JudgeOptions,
    JudgeStats,
    TokenLogprob,
    Usage,
)
from ..errors import JudgeSetupError

# how long `complete` waits for company before sending a batch (requests that arrive while a
# batch runs join the next one anyway)
GATHER_S = 0.01

# vLLM on CPU (measured for issue 9): eager start-up ~30 s instead of minutes of compilation
CPU_ENGINE_DEFAULTS: dict[str, Any] = {"enforce_eager": True}
CPU_ENV_DEFAULTS = {"VLLM_CPU_KVCACHE_SPACE": "2"}
ENGINE_ARGS_ENV = "RMB_VLLM_ENGINE_ARGS"


def model_identity(model: str) -> str:
    """A local HF folder -> its name plus a digest of config and weight file names and sizes
    (stable across runs and machines, different after re-converting); a hub id stays as is, with
    the revision $RMB_VLLM_ENGINE_ARGS names (`{"revision": "..."}`), if any."""
    folder = Path(model).expanduser()
    if not (folder / "config.json").is_file():
        revision = engine_args_from_env().get("revision")
        return f"{model}@{revision}" if revision else model
    h = hashlib.sha256((folder / "config.json").read_bytes())
    for f in sorted(folder.glob("*.safetensors")):
        h.update(f"{f.name}:{f.stat().st_size}".encode())
    return f"{folder.resolve().name}@{h.hexdigest()[:12]}"


def check_model(model: str) -> None:
    """Fail early on what vLLM would fail on late: a GGUF file, a missing folder."""
    path = Path(model).expanduser()
    if path.suffix == ".gguf":
        raise JudgeSetupError(
            f"vllm: {model} is a GGUF file, which core vLLM no longer loads; convert it to an HF "
            "folder first (python -m judges.gguf_to_hf --gguf FILE --out DIR)"
        )
    if (model.startswith((".", "/", "~")) or path.exists()) and not (
        path / "config.json"
    ).is_file():
        raise JudgeSetupError(f"vllm: {model} is not an HF model folder (no config.json)")


def cpu_dtype(cpuinfo: str | None = None) -> str:
    """bfloat16 where the CPU computes it natively (AVX512-BF16, AMX); float32 elsewhere: on an
    AVX2-only CPU vLLM's bf16 matmuls fall back to a slow path (SmolLM2-135M, 4 x 459-token
    prompts, 32 tokens out: 29 s in bf16, 8.8 s in fp32)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    flags = set(cpuinfo.split())
    return "bfloat16" if flags & {"avx512_bf16", "amx_bf16"} else "float32"


def engine_args_from_env() -> dict[str, Any]:
    """$RMB_VLLM_ENGINE_ARGS: a JSON object of `LLM()` arguments (empty when unset)."""
    raw = os.environ.get(ENGINE_ARGS_ENV, "").strip()
    try:
        extra = json.loads(raw) if raw else {}
    except ValueError as exc:
        raise JudgeSetupError(f"${ENGINE_ARGS_ENV} is not JSON: {exc}") from None
    if not isinstance(extra, dict):
        raise JudgeSetupError(f"${ENGINE_ARGS_ENV} must be a JSON object of LLM() arguments")
    return extra


def engine_defaults(on_cpu: bool) -> dict[str, Any]:
    """`LLM()` arguments: the CPU defaults there, then $RMB_VLLM_ENGINE_ARGS."""
    cpu = {**CPU_ENGINE_DEFAULTS, "dtype": cpu_dtype()} if on_cpu else {}
    return {**cpu, **engine_args_from_env()}


def runtime_env(model: str) -> dict[str, str]:
    """Environment defaults for vLLM, set before it is imported: the CPU KV cache size (other
    platforms ignore it), offline for a local folder (huggingface_hub reads it at import)."""
    env = dict(CPU_ENV_DEFAULTS)
    if (Path(model).expanduser() / "config.json").is_file():
        env["HF_HUB_OFFLINE"] = "1"
    return env


def sampling_params_for(request: ChatRequest) -> dict[str, Any]:
    """The `vllm.SamplingParams` keyword arguments for a request (pure; no vllm needed).
    JSON mode becomes `structured_outputs={"json_object": True}` (a StructuredOutputsParams)."""
    params: dict[str, Any] = {"n": 1, "max_tokens": request.max_tokens}
    if request.temperature is not None:  # None: vLLM's (the model's) default
        params["temperature"] = request.temperature
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
        # the top-k hold ranks 1..k; the sampled token is added when ranked below them, and
        # then only it has a rank above the number of entries: leave it out of the top, as
        # OpenAI does
        ranked = sorted(
            (lp for lp in alternatives.values() if (lp.rank or 0) <= len(alternatives)),
            key=lambda lp: -lp.logprob,
        )
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
    # vLLM's "repetition" is a degenerate loop cut short: not an answer, like a cut-off one
    ends: dict[str | None, FinishReason] = {
        "length": "length",
        "repetition": "length",
        "abort": "error",
        "error": "error",
    }
    finish = ends.get(out.finish_reason, "stop")
    return Completion(
        text=out.text,
        finish_reason=finish,
        usage=Usage(len(result.prompt_token_ids or ()), len(out.token_ids)),
        logprobs=_token_logprobs(out),
        error=f"vLLM finished with {out.finish_reason}" if finish == "error" else None,
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


def _on_cpu() -> bool:
    try:
        platform = importlib.import_module("vllm.platforms").current_platform
        return bool(platform.is_cpu())
    except (ImportError, AttributeError):
        return False


def too_long(llm: Any, request: ChatRequest) -> str | None:
    """Why vLLM would reject this prompt (it rejects the whole batch with it), or None. UTF-8
    bytes bound a byte-level BPE token count, so most prompts need no tokenizing here."""
    limit = int(llm.model_config.max_model_len)
    if sum(len(m.content.encode()) + 32 for m in request.messages) + 64 < limit:
        return None
    ids = llm.get_tokenizer().apply_chat_template(
        conversation(request),
        add_generation_prompt=True,
        tokenize=True,
        **(request.chat_template_kwargs or {}),
    )
    # transformers 5 returns a BatchEncoding (a UserDict, not a dict: its len() is its keys)
    n = len(ids["input_ids"] if isinstance(ids, Mapping) else ids)
    if n < limit:
        return None
    return f"context too long: the prompt has {n} tokens and the model's context {limit}"


class VLLMJudge:
    """One `vllm.LLM` per judge, built at the first request (loading takes a while)."""

    def __init__(self, model: str, options: JudgeOptions, **llm_kwargs: Any) -> None:
        check_model(model)
        for key, value in runtime_env(model).items():
            os.environ.setdefault(key, value)
        self.vllm = _import_vllm()
        self.model = model
        self.options = options
        self.identity = JudgeIdentity("vllm", model_identity(model))
        self.stats = JudgeStats()
        self.llm_kwargs = {
            "seed": options.seed or 0,
            **engine_defaults(_on_cpu()),
            **llm_kwargs,
        }
        self._llm: Any = None
        self._label_ids: dict[tuple[str, ...], list[int]] = {}
        self._lock = asyncio.Lock()
        self._pending: list[tuple[ChatRequest, asyncio.Future[Completion]]] = []
        self._flusher: asyncio.Task[None] | None = None

    def _label_token_ids(self, labels: tuple[str, ...]) -> list[int] | None:
        """The first token of each label, bare and after a space ("A", " A"): what a one-token
        verdict starts with. None where this vLLM cannot score given tokens."""
        if "logprob_token_ids" not in self.vllm.SamplingParams.__struct_fields__:
            return None
        ids = self._label_ids.get(labels)
        if ids is None:
            tokenizer = self.load().get_tokenizer()
            found = {
                pieces[0]
                for label in labels
                for text in (label, " " + label)
                if (pieces := tokenizer.encode(text, add_special_tokens=False))
            }
            ids = self._label_ids[labels] = sorted(found)
        return ids

    def _sampling_params(self, request: ChatRequest) -> Any:
        params = sampling_params_for(request)
        if request.logprob_labels and request.top_logprobs is not None:
            ids = self._label_token_ids(request.logprob_labels)
            if ids:
                # exactly these tokens' logprobs (and the answered one's), at every position:
                # P(A) and P(B) even when one of them is outside the top-k
                params.pop("logprobs", None)
                params["logprob_token_ids"] = ids
        if "structured_outputs" in params:
            structured = importlib.import_module("vllm.sampling_params").StructuredOutputsParams
            params["structured_outputs"] = structured(**params["structured_outputs"])
        return self.vllm.SamplingParams(**params)

    def load(self) -> Any:
        """The `vllm.LLM`, built once (blocking: tens of seconds on CPU)."""
        if self._llm is None:
            self._llm = self.vllm.LLM(model=self.model, **self.llm_kwargs)
        return self._llm

    @property
    def loaded(self) -> bool:
        return self._llm is not None

    def run_batch(self, requests: Sequence[ChatRequest]) -> list[Completion]:
        """Blocking: build the LLM if needed, then one LLM.chat over every request that fits."""
        llm = self.load()
        out: list[Completion | None] = [None] * len(requests)
        send = []
        for i, r in enumerate(requests):
            why = too_long(llm, r)
            if why is None:
                send.append(i)
            else:
                out[i] = Completion(
                    text="", finish_reason="refused", error=why, created_at=time.time()
                )
        groups: dict[str, list[int]] = {}  # LLM.chat takes one chat_template_kwargs per call
        for i in send:
            groups.setdefault(
                json.dumps(requests[i].chat_template_kwargs, sort_keys=True), []
            ).append(i)
        for group in groups.values():
            for i, c in zip(group, self._chat(llm, [requests[i] for i in group]), strict=True):
                out[i] = c
        return [c for c in out if c is not None]

    def _chat(self, llm: Any, requests: Sequence[ChatRequest]) -> list[Completion]:
        """One LLM.chat; if vLLM rejects the batch (a prompt the guard missed), each request
        alone, so only the one it rejects is refused."""
        start = time.perf_counter()
        try:
            results = llm.chat(
                [conversation(r) for r in requests],
                sampling_params=[self._sampling_params(r) for r in requests],
                chat_template_kwargs=requests[0].chat_template_kwargs,
                use_tqdm=False,
            )
        except ValueError as exc:
            if len(requests) > 1:
                return [c for r in requests for c in self._chat(llm, [r])]
            why = str(exc)
            reason = "context too long" if "length" in why or "context" in why else "rejected"
            return [
                Completion(
                    text="",
                    finish_reason="refused",
                    error=f"{reason}: {why}",
                    created_at=time.time(),
                )
            ]
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
            done = await asyncio.to_thread(self.run_batch, list(requests))
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
        self.stats.count(c)

    async def aclose(self) -> None:
        llm, self._llm = self._llm, None
        # stop vLLM's engine-core process now, not whenever the LLM is collected
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            await asyncio.to_thread(core.shutdown)


def build(model: str, options: JudgeOptions) -> VLLMJudge:
    """One engine in this process (`options.replicas` engines on Ray are judges/ray_replicas.py:
    the registry chooses)."""
    if not model:
        raise JudgeSetupError(
            "vllm: name a model id or path, e.g. --judge vllm:/models/qwen2.5-0.5b"
        )
    parallel = {
        k: v
        for k, v in (
            ("tensor_parallel_size", options.tensor_parallel),
            ("pipeline_parallel_size", options.pipeline_parallel),
        )
        if v > 1
    }
    return VLLMJudge(model, options, **parallel)
