"""`anthropic:MODEL`: Anthropic's Messages API (or a server speaking it, with `base_url`; the
base URL has no `/v1`).

One `AsyncAnthropic` per judge, its own retries off, on the SDK's aiohttp transport; the body is
built and read here (as in `openai_api`) because the typed `messages.create()` of anthropic 2.x
no longer takes `temperature`, which a judge must set. System messages go to `system`; thinking
blocks are kept apart from the answer. The API has no logprobs and no seed: asking for logprobs
is an error before any request; the seed is simply not sent."""

from __future__ import annotations

import functools
import json
from typing import Any

from .base import ChatRequest, Completion, JudgeIdentity, JudgeOptions, Usage
from .errors import JudgeSetupError
from .http_judge import (
    TRANSPORT,
    HttpJudge,
    MemoURL,
    classify_status,
    connection_failure,
    error_message,
    parse_retry_after,
    resolve_key,
    sdk_http_client,
    without_telemetry,
)
from .limits import TransientError

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
    def __init__(
        self, model: str, options: JudgeOptions, api_key: str, key_hint: str, transport: str
    ) -> None:
        base_url = (options.base_url or HOSTED_URL).rstrip("/")
        hosted = base_url == HOSTED_URL
        super().__init__(
            JudgeIdentity("anthropic", model, "" if hosted else base_url), options, api_key
        )
        self.key_hint = key_hint
        self._base_url, self._transport = base_url, transport
        self.client = None  # made at the first request (see _sdk)

    def _connect(self) -> Any:
        anthropic, client_class = _sdk()
        self.client = client_class(
            base_url=self._base_url,
            api_key=self._secret,
            max_retries=0,
            timeout=self.options.timeout_s,
            default_headers=without_telemetry(anthropic),
            http_client=sdk_http_client(anthropic, self.options, self._transport),
        )
        return self.client

    async def aclose(self) -> None:
        if self.client is not None:
            await super().aclose()

    def check(self, request: ChatRequest) -> None:
        if request.top_logprobs is not None:
            raise JudgeSetupError(NO_LOGPROBS)

    async def _send(self, request: ChatRequest) -> Completion:
        client = self.client or self._connect()
        anthropic = _sdk()[0]
        import httpx2  # the SDK's HTTP library (loaded with it)

        try:
            resp = await client.post(
                "/v1/messages", body=messages_body(request), cast_to=httpx2.Response
            )
        except anthropic.APIStatusError as exc:
            message, code = error_message(exc.body, exc.message)
            return classify_status(
                exc.status_code,
                self.redact(message),
                code,
                parse_retry_after(exc.response.headers),
                who=self.identity.label(),
                key_hint=self.key_hint,
            )
        except anthropic.APIConnectionError as exc:  # timeouts included
            raise TransientError(connection_failure(exc, self.options.timeout_s)) from None
        try:
            return parse_message(json.loads(resp.content))
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise TransientError(f"malformed response body ({type(exc).__name__}: {exc})") from None


def build(model: str, options: JudgeOptions, *, transport: str = TRANSPORT) -> AnthropicJudge:
    if not model:
        raise JudgeSetupError("anthropic: name a model, e.g. --judge anthropic:claude-haiku-4-5")
    if options.top_logprobs is not None:
        raise JudgeSetupError(NO_LOGPROBS)
    hosted = not options.base_url or options.base_url.rstrip("/") == HOSTED_URL
    api_key, hint = resolve_key("anthropic", KEY_ENV, options, hosted=hosted)
    return AnthropicJudge(model, options, api_key, hint, transport)
