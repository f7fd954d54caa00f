"""`anthropic:MODEL`: Anthropic's Messages API (or a server speaking it, with `base_url`; the
base URL has no `/v1`).

The body and the parse are here, the transports (the SDK's raw `post()`, or the lean aiohttp
session, the default for custom servers) are `http.judge.HttpJudge`'s. Both send the same
`anthropic-version` (`judges.models.ANTHROPIC_VERSION`, the SDK's own, unless the judge's
`api_version` says otherwise), so a judge never passes on one transport and fails on the
other. Sampling, thinking and effort fields are resolved by `judges.models` (2026-10-21 takes
no temperature at all). System messages go to `system`; thinking blocks are kept apart from
the answer. The API has no logprobs and no seed: asking for logprobs is an error before any
request; the seed is simply not sent."""

from __future__ import annotations

import functools
from typing import Any

from ..base import ChatRequest, Completion, JudgeOptions, Usage
from ..errors import JudgeSetupError
from ..http.judge import SDK_HTTP, HttpJudge
from ..models import ANTHROPIC_VERSION, ANTHROPIC_VERSIONS
from ..prompt_cache import anthropic_content

HOSTED_URL = "https://api.anthropic.com"
KEY_ENV = "ANTHROPIC_API_KEY"
NO_LOGPROBS = (
    "anthropic: the Messages API returns no logprobs; use a template that does not need "
    "top_logprobs, or an OpenAI-compatible judge"
)


def messages_body(request: ChatRequest) -> dict[str, Any]:
    system = "\n\n".join(m.content for m in request.messages if m.role == "system")
    body: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens,
        # the conversation every comparison of an item shares is marked for the prompt cache
        "messages": [
            {
                "role": m.role,
                "content": anthropic_content(m.content) if m.role == "user" else m.content,
            }
            for m in request.messages
            if m.role != "system"
        ],
    }
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if system:
        body["system"] = system
    if request.thinking is not None:
        t = request.thinking
        body["thinking"] = (
            {"type": "enabled", "budget_tokens": int(t)} if t.isdigit() else {"type": t}
        )
    if request.reasoning_effort is not None:
        body["output_config"] = {"effort": request.reasoning_effort}
    if request.extra_body:
        body.update(request.extra_body)
    return body


def parse_message(data: Any) -> Completion:
    """A Messages API response body -> Completion (raises on a body that is not one)."""
    texts: list[str] = []
    thoughts: list[str] = []
    thinking_blocks = 0
    for block in data["content"]:
        if block["type"] == "text":
            texts.append(block["text"])
        elif block["type"] in ("thinking", "redacted_thinking"):
            thinking_blocks += 1
            thoughts.append(block.get("thinking") or "")
    u = data.get("usage") or {}
    cached = int(u.get("cache_read_input_tokens") or 0)
    written = int(u.get("cache_creation_input_tokens") or 0)
    usage = Usage(
        int(u.get("input_tokens") or 0) + cached + written,
        int(u.get("output_tokens") or 0),
        cached_input_tokens=cached,
        cache_write_tokens=written,
    )
    text = "".join(texts)
    stop = data.get("stop_reason")
    finish, error = "stop", None
    if stop == "max_tokens":
        finish = "length"
        if not text.strip() and thinking_blocks:
            error = (
                f"thinking used the whole token limit ({usage.output_tokens:,} output tokens, "
                "billed), no answer left: raise --max-tokens or lower --reasoning-effort"
            )
    elif stop == "refusal":
        finish, error = "refused", "content filter: the model declined (stop_reason refusal)"
    elif stop == "model_context_window_exceeded":
        finish, error = "refused", "context too long (stop_reason model_context_window_exceeded)"
    return Completion(
        text=text,
        finish_reason=finish,  # type: ignore[arg-type]
        usage=usage,
        reasoning="\n".join(t for t in thoughts if t) or None,
        error=error,
    )


@functools.cache
def _sdk() -> tuple[Any, type]:
    """`anthropic` and its async client, imported at the first request: the import alone
    costs ~3 s CPU here, and a cached rerun never sends anything (as in openai_api)."""
    import anthropic

    return anthropic, anthropic.AsyncAnthropic


class AnthropicJudge(HttpJudge):
    provider = "anthropic"
    hosted_url = HOSTED_URL
    key_env = KEY_ENV
    example_model = "claude-haiku-4-5"
    path = "/v1/messages"
    sdk = staticmethod(_sdk)

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"x-api-key": api_key}

    def api_headers(self) -> dict[str, str]:
        return {"anthropic-version": self.options.api_version or ANTHROPIC_VERSION}

    def check(self, request: ChatRequest) -> None:
        if request.top_logprobs is not None:
            raise JudgeSetupError(NO_LOGPROBS)

    def body(self, request: ChatRequest) -> dict[str, Any]:
        return messages_body(request)

    def parse(self, data: Any) -> Completion:
        return parse_message(data)


def build(model: str, options: JudgeOptions, *, sdk_http: str = SDK_HTTP) -> AnthropicJudge:
    if options.top_logprobs is not None:
        raise JudgeSetupError(NO_LOGPROBS)
    if options.api_version is not None and options.api_version not in ANTHROPIC_VERSIONS:
        raise JudgeSetupError(
            f"anthropic: unknown API version {options.api_version!r}; "
            f"use one of {', '.join(ANTHROPIC_VERSIONS)}"
        )
    return AnthropicJudge.build(model, options, sdk_http=sdk_http)
