"""`openai:MODEL`: OpenAI's Chat Completions API, or any OpenAI-compatible server (vLLM,
llama.cpp, SGLang) with `base_url`.

One `AsyncOpenAI` per judge, its own retries off (ours are in `http_judge`), on the SDK's
aiohttp transport, which measured faster than its default httpx2 transport (bench/transport.py).
Requests go through the SDK's raw `post()` and the JSON is read here: the typed
`chat.completions.create()` spends about twice the CPU per call building and validating
pydantic models, which caps a single event loop well below the ideal rate at concurrency 64."""

from __future__ import annotations

import functools
import json
from typing import Any

import httpx2

from .base import (
    ChatRequest,
    Completion,
    FinishReason,
    JudgeIdentity,
    JudgeOptions,
    TokenLogprob,
    Usage,
)
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

HOSTED_URL = "https://api.openai.com/v1"
KEY_ENV = "OPENAI_API_KEY"

_FINISH: dict[str | None, FinishReason] = {"length": "length", "content_filter": "content_filter"}


def chat_body(request: ChatRequest, *, hosted: bool = False) -> dict[str, Any]:
    """The Chat Completions body for a request. OpenAI's own API wants `max_completion_tokens`
    (its reasoning models refuse `max_tokens`); compatible servers know `max_tokens`."""
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "temperature": request.temperature,
        ("max_completion_tokens" if hosted else "max_tokens"): request.max_tokens,
    }
    if request.seed is not None:
        body["seed"] = request.seed
    if request.top_logprobs is not None:
        body["logprobs"] = True
        body["top_logprobs"] = request.top_logprobs
    if request.response_format == "json":
        body["response_format"] = {"type": "json_object"}
    elif request.response_format is not None:
        raise JudgeSetupError(
            f"response_format {request.response_format!r} is not supported; use 'json' or none"
        )
    return body


def _logprobs(block: Any) -> tuple[TokenLogprob, ...] | None:
    if not isinstance(block, dict) or block.get("content") is None:
        return None
    return tuple(
        TokenLogprob(
            token=str(pos["token"]),
            logprob=float(pos["logprob"]),
            top=tuple(
                (str(t["token"]), float(t["logprob"])) for t in pos.get("top_logprobs") or ()
            ),
        )
        for pos in block["content"]
    )


def parse_chat_completion(data: Any) -> Completion:
    """A Chat Completions response body -> Completion. Raises KeyError/TypeError/IndexError/
    ValueError when the body is not one."""
    choice = data["choices"][0]
    msg = choice["message"]
    text = msg.get("content") or ""
    # vLLM/SGLang/DeepSeek call it reasoning_content; OpenRouter and newer vLLM, reasoning
    reasoning = msg.get("reasoning_content") or msg.get("reasoning")
    finish = _FINISH.get(choice.get("finish_reason"), "stop")
    error = None
    if not text and msg.get("refusal"):
        finish, error = "refused", f"refusal: {msg['refusal']}"
    usage = data.get("usage") or {}
    return Completion(
        text=text,
        finish_reason=finish,
        usage=Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)),
        logprobs=_logprobs(choice.get("logprobs")),
        reasoning=str(reasoning) if reasoning else None,
        error=error,
    )


@functools.cache
def _sdk() -> tuple[Any, type]:
    """`openai` and our client class over it, imported at the first request: the import alone
    costs ~1.5 s CPU here, more than the rest of a cached rerun, which never sends anything."""
    import openai

    class LeanAsyncOpenAI(MemoURL, openai.AsyncOpenAI):
        pass

    return openai, LeanAsyncOpenAI


class OpenAIJudge(HttpJudge):
    def __init__(
        self, model: str, options: JudgeOptions, api_key: str, key_hint: str, transport: str
    ) -> None:
        base_url = (options.base_url or HOSTED_URL).rstrip("/")
        self.hosted = base_url == HOSTED_URL
        super().__init__(
            JudgeIdentity("openai", model, "" if self.hosted else base_url), options, api_key
        )
        self.key_hint = key_hint
        self._base_url, self._transport = base_url, transport
        self.client = None  # made at the first request (see _sdk)

    def _connect(self) -> Any:
        openai, client_class = _sdk()
        self.client = client_class(
            base_url=self._base_url,
            api_key=self._secret,
            max_retries=0,
            timeout=self.options.timeout_s,
            default_headers=without_telemetry(openai),
            http_client=sdk_http_client(openai, self.options, self._transport),
        )
        return self.client

    async def aclose(self) -> None:
        if self.client is not None:
            await super().aclose()

    async def _send(self, request: ChatRequest) -> Completion:
        body = chat_body(request, hosted=self.hosted)
        client = self.client or self._connect()
        openai = _sdk()[0]
        try:
            resp = await client.post("/chat/completions", body=body, cast_to=httpx2.Response)
        except openai.APIStatusError as exc:
            message, code = error_message(exc.body, exc.message)
            return classify_status(
                exc.status_code,
                self.redact(message),
                code,
                parse_retry_after(exc.response.headers),
                who=self.identity.label(),
                key_hint=self.key_hint,
            )
        except openai.APIConnectionError as exc:  # timeouts included
            raise TransientError(connection_failure(exc, self.options.timeout_s)) from None
        try:
            completion = parse_chat_completion(json.loads(resp.content))
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise TransientError(f"malformed response body ({type(exc).__name__}: {exc})") from None
        return completion


def build(model: str, options: JudgeOptions, *, transport: str = TRANSPORT) -> OpenAIJudge:
    if not model:
        raise JudgeSetupError("openai: name a model, e.g. --judge openai:gpt-4o-mini")
    hosted = not options.base_url or options.base_url.rstrip("/") == HOSTED_URL
    api_key, hint = resolve_key("openai", KEY_ENV, options, hosted=hosted)
    return OpenAIJudge(model, options, api_key, hint, transport)
