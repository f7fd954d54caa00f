"""`openai:MODEL`: OpenAI's Chat Completions API, or any OpenAI-compatible server (vLLM,
llama.cpp, SGLang) with `base_url`.

The body (`chat_body`) and the parse (`parse_chat_completion`) are here; both transports (the
SDK's raw `post()`, whose typed `create()` spends twice the CPU building pydantic models, or the
lean aiohttp session, the default for custom servers) are `http.judge.HttpJudge`'s. Which
token-limit field a model takes, and which sampling and reasoning fields, is `judges.models`'s
to say: the request already holds exactly what is sent (None = not sent)."""

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
from ..http.judge import SDK_HTTP, HttpJudge
from ..models import family_of

HOSTED_URL = "https://api.openai.com/v1"
KEY_ENV = "OPENAI_API_KEY"

_FINISH: dict[str | None, FinishReason] = {"length": "length", "content_filter": "content_filter"}


def chat_body(request: ChatRequest, *, hosted: bool = False) -> dict[str, Any]:
    """The Chat Completions body for a request. The token-limit field is the model family's
    (OpenAI's models want `max_completion_tokens`, here or behind Azure and OpenRouter; an
    unknown model on a custom server gets `max_tokens`); `extra_body` is merged last."""
    token_field = family_of("openai", request.model, hosted=hosted).token_field
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        token_field: request.max_tokens,
    }
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.reasoning_effort is not None:
        body["reasoning_effort"] = request.reasoning_effort
    if request.verbosity is not None:
        body["verbosity"] = request.verbosity
    if request.chat_template_kwargs is not None:
        body["chat_template_kwargs"] = request.chat_template_kwargs
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
    if request.extra_body:
        body.update(request.extra_body)
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


def _usage(data: Any) -> Usage:
    usage = data.get("usage") or {}
    prompt = usage.get("prompt_tokens_details") or {}
    completion = usage.get("completion_tokens_details") or {}
    return Usage(
        int(usage.get("prompt_tokens") or 0),
        int(usage.get("completion_tokens") or 0),
        cached_input_tokens=int(prompt.get("cached_tokens") or 0),
        reasoning_tokens=int(completion.get("reasoning_tokens") or 0),
    )


def parse_chat_completion(data: Any) -> Completion:
    """A Chat Completions response body -> Completion. A body with no choice or no message
    (billed all the same) is an error completion with that reason; raises KeyError/TypeError
    when the body is not a completion at all."""
    choices = data["choices"]
    usage = _usage(data)
    msg = choices[0].get("message") if choices else None
    if not isinstance(msg, dict):
        return Completion(
            text="",
            finish_reason="error",
            usage=usage,
            error="no answer in the response: HTTP 200 without choices[0].message",
        )
    choice = choices[0]
    text = msg.get("content") or ""
    # vLLM/SGLang/DeepSeek call it reasoning_content; OpenRouter and newer vLLM, reasoning
    reasoning = msg.get("reasoning_content") or msg.get("reasoning")
    finish = _FINISH.get(choice.get("finish_reason"), "stop")
    error = None
    if not text and msg.get("refusal"):
        finish, error = "refused", f"refusal: {msg['refusal']}"
    elif not text.strip() and finish == "length" and (usage.reasoning_tokens or reasoning):
        error = emptied_by_reasoning(usage)
    return Completion(
        text=text,
        finish_reason=finish,
        usage=usage,
        logprobs=_logprobs(choice.get("logprobs")),
        reasoning=str(reasoning) if reasoning else None,
        error=error,
    )


def emptied_by_reasoning(usage: Usage) -> str:
    """The reason for an answer the token limit cut before it began: reasoning took it all."""
    spent = (
        f"{usage.reasoning_tokens:,} reasoning tokens" if usage.reasoning_tokens else "reasoning"
    )
    return (
        f"reasoning used the whole token limit ({spent} of {usage.output_tokens:,} output "
        "tokens, billed), no answer left: raise --max-tokens or lower --reasoning-effort"
    )


@functools.cache
def _sdk() -> tuple[Any, type]:
    """`openai` and its async client, imported at the first request: the import alone costs
    ~1.5 s CPU here, more than the rest of a cached rerun, which never sends anything."""
    import openai

    return openai, openai.AsyncOpenAI


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
