"""`anthropic:MODEL`: Anthropic's Messages API (or a server speaking it, with `base_url`; the
base URL has no `/v1`).

The body and the parse are here, the transports (the SDK's raw `post()`, or the lean aiohttp
session, the default for custom servers) are `http_judge.HttpJudge`'s. The typed
`messages.create()` of anthropic 2.x no longer takes `temperature`, which a judge must set.
System messages go to `system`; thinking blocks are kept apart from the answer. The API has no logprobs and no seed: asking for logprobs
is an error before any request; the seed is simply not sent."""

from __future__ import annotations

import functools
from typing import Any

from ..base import ChatRequest, Completion, JudgeOptions, Usage
from ..errors import JudgeSetupError
from ..http.judge import SDK_HTTP, HttpJudge, MemoURL

HOSTED_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"  # the lean transport's anthropic-version header (the SDK sends its own)
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
        "messages": [
            {"role": m.role, "content": m.content} for m in request.messages if m.role != "system"
        ],
        "temperature": request.temperature,
    }
    if system:
        body["system"] = system
    return body


def parse_message(data: Any) -> Completion:
    """A Messages API response body -> Completion (raises on a body that is not one)."""
    texts: list[str] = []
    thoughts: list[str] = []
    for block in data["content"]:
        if block["type"] == "text":
            texts.append(block["text"])
        elif block["type"] == "thinking":
            thoughts.append(block["thinking"])
    usage = data.get("usage") or {}
    stop = data.get("stop_reason")
    finish, error = "stop", None
    if stop == "max_tokens":
        finish = "length"
    elif stop == "refusal":
        finish, error = "refused", "content filter: the model declined (stop_reason refusal)"
    elif stop == "model_context_window_exceeded":
        finish, error = "refused", "context too long (stop_reason model_context_window_exceeded)"
    return Completion(
        text="".join(texts),
        finish_reason=finish,  # type: ignore[arg-type]
        usage=Usage(
            int(usage.get("input_tokens") or 0)
            + int(usage.get("cache_read_input_tokens") or 0)
            + int(usage.get("cache_creation_input_tokens") or 0),
            int(usage.get("output_tokens") or 0),
        ),
        reasoning="\n".join(thoughts) or None,
        error=error,
    )


@functools.cache
def _sdk() -> tuple[Any, type]:
    """`anthropic` and our client class over it, imported at the first request: the import
    alone costs ~3 s CPU here, and a cached rerun never sends anything (as in openai_api)."""
    import anthropic

    class LeanAsyncAnthropic(MemoURL, anthropic.AsyncAnthropic):
        pass

    return anthropic, LeanAsyncAnthropic


class AnthropicJudge(HttpJudge):
    provider = "anthropic"
    hosted_url = HOSTED_URL
    key_env = KEY_ENV
    example_model = "claude-haiku-4-5"
    path = "/v1/messages"
    sdk = staticmethod(_sdk)

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"x-api-key": api_key, "anthropic-version": API_VERSION}

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
    return AnthropicJudge.build(model, options, sdk_http=sdk_http)
