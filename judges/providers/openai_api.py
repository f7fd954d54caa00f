"""`openai:MODEL`: OpenAI's Chat Completions API, or any OpenAI-compatible server (vLLM,
llama.cpp, SGLang) with `base_url`.

The body (`chat_body`) and the parse (`parse_chat_completion`) are here; both transports (the
SDK's raw `post()`, whose typed `create()` spends twice the CPU building pydantic models, or the
lean aiohttp session, the default for custom servers) are `http_judge.HttpJudge`'s."""

from __future__ import annotations

import functools
from typing import Any

from ..base import (
    ChatRequest,
    Completion,
    FinishReason,
    JudgeOptions,
    TokenLogprob,
    Usage,
)
from ..errors import JudgeSetupError
from ..http.judge import SDK_HTTP, HttpJudge, MemoURL

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
    provider = "openai"
    hosted_url = HOSTED_URL
    key_env = KEY_ENV
    example_model = "gpt-4o-mini"
    path = "/chat/completions"
    sdk = staticmethod(_sdk)

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {api_key}"}

    def body(self, request: ChatRequest) -> dict[str, Any]:
        return chat_body(request, hosted=self.hosted)

    def parse(self, data: Any) -> Completion:
        return parse_chat_completion(data)


def build(model: str, options: JudgeOptions, *, sdk_http: str = SDK_HTTP) -> OpenAIJudge:
    return OpenAIJudge.build(model, options, sdk_http=sdk_http)
