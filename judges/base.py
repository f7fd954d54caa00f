"""What a judge is asked (`ChatRequest`) and what it answers (`Completion`), and the `Judge` protocol.

A request holds everything that changes the answer and nothing that does not (no key, no
timeout), so its canonical JSON is a sound cache key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, Protocol, runtime_checkable

from . import models

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """Exactly what is sent (resolved by the model family's rules, `judges.models`): a field
    that is None is not sent."""

    messages: tuple[Message, ...]
    model: str
    temperature: float | None = 0.0
    max_tokens: int = 1024
    seed: int | None = None
    top_logprobs: int | None = None
    # "json" asks a provider's JSON mode; None is plain text
    response_format: str | None = None
    # the k-th independent sample of the same prompt (majority voting); part of the key
    sample_index: int = 0
    # reasoning controls: OpenAI `reasoning_effort` (Anthropic `output_config.effort`),
    # OpenAI `verbosity`, Anthropic thinking ("adaptive" | "disabled" | budget tokens)
    reasoning_effort: str | None = None
    verbosity: str | None = None
    thinking: str | None = None
    # vLLM / SGLang chat-template arguments (e.g. {"enable_thinking": false}) and anything else
    # a server accepts, merged into the body last
    chat_template_kwargs: dict[str, Any] | None = None
    extra_body: dict[str, Any] | None = None

    # the verdict labels ("A", "B") whose logprobs a backend that scores given tokens (in-process
    # vLLM) returns exactly at each position, not only when they are in the top_logprobs
    logprob_labels: tuple[str, ...] | None = None

    def canonical_json(self) -> str:
        d = asdict(self)
        for name in (*REASONING_OPTIONS, "logprob_labels"):
            if d[name] is None:  # unset: left out, so keys made before the field existed hold
                del d[name]
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
    """Tokens billed. `input_tokens` is the whole prompt; `cached_input_tokens` the part read
    from the provider's prompt cache (billed at its discount); `output_tokens` includes
    `reasoning_tokens` (billed as output, never shown)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    # of input_tokens: written to the provider's prompt cache (Anthropic)
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
    # some usage had no known price: cost_usd is a floor, reported as "cost unknown"
    cost_unknown: bool = False

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


DEFAULT: Literal["default"] = "default"
# the reasoning controls a user or a template may set (JudgeOptions and ChatRequest fields)
REASONING_OPTIONS = (
    "reasoning_effort",
    "verbosity",
    "thinking",
    "chat_template_kwargs",
    "extra_body",
)


@dataclass(frozen=True, slots=True)
class JudgeOptions:
    """Per-judge settings. Sampling and reasoning fields go into every ChatRequest (resolved
    by the model family's rules); the rest shape how it is sent (never part of a cache key)."""

    # "default": 0 where the model family takes a temperature, not sent where it does not;
    # None: never sent
    temperature: float | Literal["default"] | None = DEFAULT
    # None: 1024, or 16384 when the model reasons (thinking tokens count against the limit)
    max_tokens: int | None = None
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
    # reasoning controls (None: the API's own default); see ChatRequest
    reasoning_effort: str | None = None
    verbosity: str | None = None
    thinking: str | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    extra_body: dict[str, Any] | None = None
    # Anthropic API version both transports send (None: judges.models.ANTHROPIC_VERSION)
    api_version: str | None = None

    def with_defaults(self, asks: Mapping[str, Any]) -> JudgeOptions:
        """These options, with a template's reasoning settings (its front matter) where the
        user set none: the user's flag wins, the template's default fills the gap."""
        unset = {
            k: v for k, v in asks.items() if k in REASONING_OPTIONS and getattr(self, k) is None
        }
        return replace(self, **unset) if unset else self

    def shaped(
        self,
        judge: JudgeIdentity | str,
        *,
        max_tokens: int | None = None,
        top_logprobs: int | None = None,
    ) -> models.Shaped:
        """The sampling and reasoning fields for this judge's model family (a template may
        ask for its own max_tokens and top_logprobs); a UserError when the family refuses
        what was asked."""
        who = judge if isinstance(judge, JudgeIdentity) else JudgeIdentity("", judge)
        asked = models.Asked(
            temperature=None if self.temperature == DEFAULT else self.temperature,
            temperature_set=self.temperature != DEFAULT,
            max_tokens=self.max_tokens,
            template_max_tokens=max_tokens,
            top_logprobs=top_logprobs if top_logprobs is not None else self.top_logprobs,
            reasoning_effort=self.reasoning_effort,
            thinking=self.thinking,
            verbosity=self.verbosity,
            api_version=self.api_version,
        )
        hosted = who.provider in ("openai", "anthropic") and not who.base_url
        return models.shape(who.provider, who.model, asked, hosted=hosted)

    def request(
        self,
        messages: Sequence[Message],
        judge: JudgeIdentity | str,
        *,
        sample_index: int = 0,
        max_tokens: int | None = None,
        top_logprobs: int | None = None,
        response_format: str | None = None,
        logprob_labels: tuple[str, ...] | None = None,
    ) -> ChatRequest:
        """Build the request for rendered messages to `judge` (its identity, or a bare model
        name: an unknown family, sent as given); the judge's system prompt goes first."""
        msgs = tuple(messages)
        if self.system_prompt and not (msgs and msgs[0].role == "system"):
            msgs = (Message("system", self.system_prompt), *msgs)
        s = self.shaped(judge, max_tokens=max_tokens, top_logprobs=top_logprobs)
        return ChatRequest(
            messages=msgs,
            model=judge.model if isinstance(judge, JudgeIdentity) else judge,
            temperature=s.temperature,
            max_tokens=s.max_tokens,
            # sampling k>0 with temperature 0 would repeat sample 0: vary the seed per sample
            seed=None if self.seed is None else self.seed + sample_index,
            top_logprobs=s.top_logprobs,
            response_format=response_format,
            sample_index=sample_index,
            reasoning_effort=s.reasoning_effort,
            verbosity=s.verbosity,
            thinking=s.thinking,
            chat_template_kwargs=self.chat_template_kwargs,
            extra_body=self.extra_body,
            logprob_labels=logprob_labels,
        )
