"""`openai:MODEL`: OpenAI's Chat Completions API, or any OpenAI-compatible server (vLLM,
llama.cpp, SGLang) with `base_url`.

Two transports, the same body (`chat_body`), parse (`parse_chat_completion`) and error handling
(`HttpJudge.status_failure`, `parse_body`):
- "sdk": one `AsyncOpenAI` per judge, its own retries off (ours are in `http_judge`), on the
  SDK's aiohttp transport (faster than its default httpx2, bench/transport.py), through its raw
  `post()` (the typed `create()` spends twice the CPU building pydantic models).
- "lean": one aiohttp session per judge (`http_judge.LeanSession`), about a quarter of the SDK
  path's client CPU per request; the default for custom servers (see `default_transport`)."""

from __future__ import annotations

import functools
from typing import Any

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
    LeanSession,
    MemoURL,
    connection_failure,
    error_body,
    parse_body,
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


TRANSPORTS = ("sdk", "lean")


def default_transport(options: JudgeOptions, hosted: bool) -> str:
    """`options.transport`, else lean for a custom server (vLLM, llama.cpp, SGLang: there client
    CPU per request is what caps throughput) and the official SDK for OpenAI's own API (there
    rate limits cap it, and the SDK tracks the API)."""
    if options.transport is None:
        return "sdk" if hosted else "lean"
    if options.transport not in TRANSPORTS:
        raise JudgeSetupError(
            f"openai: unknown transport {options.transport!r}; use one of {', '.join(TRANSPORTS)}"
        )
    return options.transport


class OpenAIJudge(HttpJudge):
    def __init__(
        self, model: str, options: JudgeOptions, api_key: str, key_hint: str, sdk_http: str
    ) -> None:
        base_url = (options.base_url or HOSTED_URL).rstrip("/")
        self.hosted = base_url == HOSTED_URL
        super().__init__(
            JudgeIdentity("openai", model, "" if self.hosted else base_url), options, api_key
        )
        self.key_hint = key_hint
        self.transport = default_transport(options, self.hosted)
        self._base_url, self._sdk_http = base_url, sdk_http
        self.client = None  # the SDK client, made at the first request (see _sdk)
        self.lean = (
            LeanSession(base_url, {"Authorization": f"Bearer {api_key}"}, options)
            if self.transport == "lean"
            else None
        )

    def _connect(self) -> Any:
        openai, client_class = _sdk()
        self.client = client_class(
            base_url=self._base_url,
            api_key=self._secret,
            max_retries=0,
            timeout=self.options.timeout_s,
            default_headers=without_telemetry(openai),
            http_client=sdk_http_client(openai, self.options, self._sdk_http),
        )
        return self.client

    async def aclose(self) -> None:
        if self.lean is not None:
            await self.lean.close()
        if self.client is not None:
            await super().aclose()

    async def _send(self, request: ChatRequest) -> Completion:
        body = chat_body(request, hosted=self.hosted)
        if self.lean is not None:
            status, raw, headers = await self.lean.post("/chat/completions", body)
            if status >= 300:
                return self.status_failure(status, error_body(raw), "(no error body)", headers)
            return parse_body(raw, parse_chat_completion)
        client = self.client or self._connect()
        openai = _sdk()[0]
        import httpx2  # the SDK's HTTP library (loaded with it): the lean path never needs it

        try:
            resp = await client.post("/chat/completions", body=body, cast_to=httpx2.Response)
        except openai.APIStatusError as exc:
            return self.status_failure(exc.status_code, exc.body, exc.message, exc.response.headers)
        except openai.APIConnectionError as exc:  # timeouts included
            raise TransientError(connection_failure(exc, self.options.timeout_s)) from None
        return parse_body(resp.content, parse_chat_completion)


def build(model: str, options: JudgeOptions, *, transport: str = TRANSPORT) -> OpenAIJudge:
    """`transport`: the SDK's own HTTP client ("aiohttp" or "httpx", see bench/transport.py),
    used when `options.transport` picks the SDK (named as in `anthropic_api.build`)."""
    if not model:
        raise JudgeSetupError("openai: name a model, e.g. --judge openai:gpt-4o-mini")
    hosted = not options.base_url or options.base_url.rstrip("/") == HOSTED_URL
    api_key, hint = resolve_key("openai", KEY_ENV, options, hosted=hosted)
    return OpenAIJudge(model, options, api_key, hint, transport)
