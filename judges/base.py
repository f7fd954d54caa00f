"""What a judge is asked (`ChatRequest`) and what it answers (`Completion`), and the `Judge` protocol.

A request holds everything that changes the answer and nothing that does not (no key, no
timeout), so its canonical JSON is a sound cache key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class ChatRequest:
    messages: tuple[Message, ...]
    model: str
    temperature: float = 0.0
    max_tokens: int = 1024
    seed: int | None = None
    top_logprobs: int | None = None
    # "json" asks a provider's JSON mode; None is plain text
    response_format: str | None = None
    # the k-th independent sample of the same prompt (majority voting); part of the key
    sample_index: int = 0
    # the verdict labels ("A", "B") whose logprobs a backend that scores given tokens (in-process
    # vLLM) returns exactly at each position, not only when they are in the top_logprobs
    logprob_labels: tuple[str, ...] | None = None

    def canonical_json(self) -> str:
        d = asdict(self)
        if d["logprob_labels"] is None:
            del d["logprob_labels"]  # absent when unset: keys made before it existed still hold
        return json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class JudgeIdentity:
    """Who answers: part of every cache key. Never holds a key or a timeout."""

    provider: str
    model: str
    base_url: str = ""

    def label(self) -> str:
        return f"{self.provider}:{self.model}" + (f"@{self.base_url}" if self.base_url else "")


def cache_key(identity: JudgeIdentity, request: ChatRequest) -> str:
    """SHA-256 over the judge identity and the request's canonical JSON."""
    ident = json.dumps(asdict(identity), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{ident}\n{request.canonical_json()}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0  # all prompt tokens, the cached ones included
    output_tokens: int = 0
    # of input_tokens: read from the provider's prompt cache / written to it (Anthropic)
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    # bought through a provider's batch API (at its batch price)
    batch: bool = False


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One generated position: the token, its logprob, and the top alternatives there."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


# Why a completion ended. Only "stop" with non-empty text is a usable answer worth caching.
FinishReason = Literal["stop", "length", "content_filter", "refused", "error"]


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    finish_reason: FinishReason = "stop"
    usage: Usage = field(default_factory=Usage)
    logprobs: tuple[TokenLogprob, ...] | None = None
    latency_s: float = 0.0
    attempts: int = 1
    # reasoning/thinking content, kept apart from the answer text
    reasoning: str | None = None
    # why the judge refused or the request failed (finish_reason "refused"/"error")
    error: str | None = None
    created_at: float = 0.0

    @property
    def is_answer(self) -> bool:
        """A complete answer: cacheable and parseable. Errors, refusals, empty and cut-off are not."""
        return self.is_complete()

    def is_complete(self, *, cut_ok: bool = False) -> bool:
        """`is_answer`; with `cut_ok` (a verdict read from the first token, e.g. a one-token
        logprob template) an answer that stopped at the token limit is complete too: the limit
        is its designed length, not a cut."""
        ended = self.finish_reason == "stop" or (cut_ok and self.finish_reason == "length")
        return ended and bool(self.text.strip()) and self.error is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Completion:
        lp = d.get("logprobs")
        return cls(
            text=d["text"],
            finish_reason=d.get("finish_reason", "stop"),
            usage=Usage(**d.get("usage", {})),
            logprobs=None
            if lp is None
            else tuple(
                TokenLogprob(t["token"], t["logprob"], tuple((a, b) for a, b in t.get("top", ())))
                for t in lp
            ),
            latency_s=d.get("latency_s", 0.0),
            attempts=d.get("attempts", 1),
            reasoning=d.get("reasoning"),
            error=d.get("error"),
            created_at=d.get("created_at", 0.0),
        )


@dataclass
class JudgeStats:
    """Live counters the progress bar and report read."""

    requests: int = 0
    retries: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    def count(self, c: Completion) -> None:
        """One completion's tokens, and whether it failed (requests are counted by the caller:
        a judge may count a request when it is sent, or when it is answered)."""
        self.input_tokens += c.usage.input_tokens
        self.output_tokens += c.usage.output_tokens
        if c.finish_reason in ("error", "refused"):
            self.errors += 1


@runtime_checkable
class Judge(Protocol):
    identity: JudgeIdentity
    stats: JudgeStats

    async def complete(self, request: ChatRequest) -> Completion:
        """One answer. Transient failures are retried inside; a refusal or an exhausted retry
        comes back as a Completion with finish_reason "refused"/"error"; a bad key or unknown
        model raises JudgeSetupError."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class BatchJudge(Judge, Protocol):
    """A backend whose throughput comes from one big batch (in-process vLLM)."""

    async def complete_many(self, requests: Sequence[ChatRequest]) -> list[Completion]: ...


@dataclass(frozen=True, slots=True)
class JudgeOptions:
    """Per-judge settings. Sampling fields go into every ChatRequest; the rest shape how it is
    sent (never part of a cache key)."""

    temperature: float = 0.0
    max_tokens: int = 1024
    seed: int | None = 0
    top_logprobs: int | None = None
    system_prompt: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    concurrency: int = 16
    requests_per_s: float | None = None
    tokens_per_min: int | None = None
    timeout_s: float = 120.0
    max_retries: int = 6
    # first retry wait in seconds (doubles per retry, with jitter); a Retry-After overrides it
    backoff_s: float = 1.0
    # HTTP transport of openai:/anthropic: judges: "sdk" (the official client), "lean" (one
    # aiohttp session, same body/parse/errors, ~4x less CPU per request), None = the backend's
    # default (lean for a custom --base-url server, the SDK for the hosted API)
    transport: str | None = None
    # several OpenAI-compatible servers of one judge (judges/pool.py); base_url is the one-server
    # case. judge_id names a custom server's judge in the cache instead of its address.
    base_urls: tuple[str, ...] = ()
    judge_id: str | None = None
    # in-process vLLM: engine replicas on Ray (judges/ray_replicas.py) and each one's layout;
    # how the work is spread, never part of the identity
    replicas: int = 1
    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    ray_address: str | None = None

    def request(
        self,
        messages: Sequence[Message],
        model: str,
        *,
        sample_index: int = 0,
        max_tokens: int | None = None,
        top_logprobs: int | None = None,
        response_format: str | None = None,
        logprob_labels: tuple[str, ...] | None = None,
    ) -> ChatRequest:
        """Build the request for rendered messages. A template may ask for its own max_tokens,
        top_logprobs or JSON mode; the judge's system prompt, if set, goes first."""
        msgs = tuple(messages)
        if self.system_prompt and not (msgs and msgs[0].role == "system"):
            msgs = (Message("system", self.system_prompt), *msgs)
        return ChatRequest(
            messages=msgs,
            model=model,
            temperature=self.temperature,
            max_tokens=max_tokens if max_tokens is not None else self.max_tokens,
            # sampling k>0 with temperature 0 would repeat sample 0: vary the seed per sample
            seed=None if self.seed is None else self.seed + sample_index,
            top_logprobs=top_logprobs if top_logprobs is not None else self.top_logprobs,
            response_format=response_format,
            sample_index=sample_index,
            logprob_labels=logprob_labels,
        )
