"""How an HTTP failure is read: its message (from JSON objects, JSON lists, plain text or HTML),
and what it means for the run.

`classify_status` gives one of three outcomes: stop the run (bad key, unknown model, a request
option the API does not take, no credit or quota), retry (429, 408/409, 5xx), or answer with a
marked completion (the judge refused this item: context too long, content filter; or rejected
this one request). `RejectionStreak` turns the same rejection on K requests in a row into a
stop: a request shape the API refuses for every item must not walk the dataset."""

from __future__ import annotations

import email.utils
import html
import re
import time
from collections.abc import Mapping
from typing import Any

from ..base import Completion
from ..errors import JudgeSetupError
from ..limits import MAX_RETRY_AFTER_S, TransientError

_CONTEXT = re.compile(
    r"context[ _-]?(?:length|size|window)|maximum context|prompt is too long|too many tokens"
    r"|input is too long|request too large|too large for model",
    re.I,
)
_FILTER = re.compile(r"content[ _-]?(?:filter|management|policy)|safety system|flagged", re.I)
# llama.cpp and some other servers answer a request they cannot read with HTTP 500
_INVALID_500 = re.compile(
    r"invalid|malformed|validation|cannot parse|failed to parse|unsupported|not supported|"
    r"must be|is required|missing",
    re.I,
)
_PARAM = re.compile(
    r"unsupported (?:parameter|value)|not supported|unrecognized|unknown (?:param|field)"
    r"|extra (?:inputs|fields)|is deprecated for this model|not enabled for",
    re.I,
)
# out of money: Anthropic 400 "Your credit balance is too low", 402 billing_error; OpenAI 429
# insufficient_quota "You exceeded your current quota, please check your plan and billing
# details"; OpenRouter 402 "Insufficient credits"
_BILLING = re.compile(
    r"credit balance|insufficient[ _](?:credits|funds|balance|quota)|billing|payment required"
    r"|exceeded your current quota|spend limit",
    re.I,
)
_RETRY_HINT = re.compile(r"retry in|try again in|per minute|per day|rate limit", re.I)
# which judge option a rejected request field maps to (OpenAI names it in `param`)
_OPTIONS = (
    ("temperature", "--temperature (or leave it unset: the model family's default)"),
    ("max_tokens", "--max-tokens or the model rules (--model-rules)"),
    ("logprobs", "the template (one without top_logprobs) or --reasoning-effort none"),
    ("reasoning", "--reasoning-effort"),
    ("effort", "--reasoning-effort"),
    ("verbosity", "--verbosity"),
    ("thinking", "--thinking"),
    ("chat_template_kwargs", "--chat-template-kwargs"),
    ("response_format", "the template (one without JSON mode)"),
    ("seed", "--seed"),
)
_TAGS = re.compile(r"<(script|style)\b.*?</\1>|<[^>]+>", re.S | re.I)
_TITLE = re.compile(r"<title>(.*?)</title>", re.S | re.I)


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` (seconds or an HTTP date)."""
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / scale)
        except ValueError:
            if name == "retry-after":
                parsed = email.utils.parsedate_tz(value)
                if parsed is not None:
                    return max(0.0, email.utils.mktime_tz(parsed) - time.time())
    return None


def connection_failure(exc: BaseException, timeout_s: float) -> str:
    """Say what really happened: the SDKs' aiohttp transport reports a dropped connection as a
    connect timeout, so look at the root cause."""
    chain = [exc]
    while chain[-1].__cause__ is not None:
        chain.append(chain[-1].__cause__)
    # aiohttp's total timeout is a TimeoutError caused by a CancelledError: any link counts
    if any(isinstance(e, TimeoutError) or "timeout" in type(e).__name__.lower() for e in chain):
        return f"no answer within {timeout_s:g} s"
    root = chain[-1]
    return f"connection failed: {type(root).__name__}: {root}"


def _text_of(body: str) -> str:
    """A text body's message: an HTML page's title (or its text), else the text itself."""
    body = body.strip()
    if "<" in body and ">" in body:
        title = _TITLE.search(body)
        text = title.group(1) if title else _TAGS.sub(" ", body)
        body = html.unescape(text)
    return " ".join(body.split())[:500]


def error_message(body: object, fallback: str) -> tuple[str, str | None, str | None]:
    """(message, code, param) from an error body: an OpenAI or Anthropic object, a JSON list
    of them (Gemini's OpenAI endpoint), a plain string, or an HTML page (a proxy)."""
    if isinstance(body, list) and body:
        return error_message(body[0], fallback)
    if isinstance(body, Mapping):
        err: Any = body.get("error", body)
        if isinstance(err, Mapping):
            msg = err.get("message") or err.get("detail")
            code = err.get("code") or err.get("status") or err.get("type")
            param = err.get("param")
            return (
                _text_of(str(msg)) if msg else fallback,
                str(code) if code is not None else None,
                str(param) if param else None,
            )
        if isinstance(err, str):
            return _text_of(err), None, None
    if isinstance(body, str) and body.strip():
        return _text_of(body), None, None
    return fallback, None, None


def option_for(message: str, param: str | None) -> str:
    """The judge option that changes a rejected field, named in `param` or the message."""
    where = f"{param or ''} {message}".lower()
    for field, option in _OPTIONS:
        if field in where:
            return option
    return "the judge options (--temperature, --max-tokens, --reasoning-effort, --extra-body)"


def classify_status(
    status: int,
    message: str,
    code: str | None,
    retry_after: float | None,
    *,
    who: str,
    key_hint: str,
    param: str | None = None,
) -> Completion:
    """Map an HTTP error to a refused/error Completion, or raise TransientError or
    JudgeSetupError. `who` names the judge (provider:model@url); `key_hint` says where the key
    comes from. `message` must already be redacted."""
    text = f"HTTP {status}: {message}"
    code = (code or "").lower()
    if status in (401, 403):
        raise JudgeSetupError(f"{who}: the API key was rejected ({text}). Check {key_hint}.")
    if status == 404:
        raise JudgeSetupError(
            f"{who}: not found ({text}). Check the model name and the base URL "
            "(an OpenAI-compatible URL usually ends in /v1)."
        )
    billing = status == 402 or "insufficient_quota" in code or "billing" in code
    if billing or (_BILLING.search(message) and status in (400, 429)):
        retryable = status == 429 and (retry_after is not None or _RETRY_HINT.search(message))
        if not retryable:
            raise JudgeSetupError(
                f"{who}: out of credit or quota ({text}). Top up or check the account's billing, "
                "then rerun the same command: answers so far are cached."
            )
    if status in (400, 413, 422):
        if "context" in code or _CONTEXT.search(message) or status == 413:
            return Completion(text="", finish_reason="refused", error=f"context too long: {text}")
        if "content_filter" in code or _FILTER.search(message):
            return Completion(text="", finish_reason="refused", error=f"content filter: {text}")
        if _PARAM.search(message) or code in ("unsupported_parameter", "unsupported_value"):
            raise JudgeSetupError(
                f"{who}: the API does not accept a request option ({text}). "
                f"Change {option_for(message, param)}."
            )
        return Completion(text="", finish_reason="error", error=f"request rejected: {text}")
    if status == 500 and _INVALID_500.search(message):
        return Completion(text="", finish_reason="error", error=f"request rejected: {text}")
    if status in (408, 409, 429) or status >= 500:
        if retry_after is not None and retry_after > MAX_RETRY_AFTER_S:
            return Completion(
                text="", finish_reason="error", error=f"{text} (asked to wait {retry_after:.0f} s)"
            )
        raise TransientError(text, retry_after)
    return Completion(text="", finish_reason="error", error=f"request rejected: {text}")


# the same rejection on this many requests in a row stops the run
REJECTION_STREAK = 5
_DIGITS = re.compile(r"\d+")


class RejectionStreak:
    """Counts requests in a row that ended in the same rejection (an HTTP 4xx the API answers
    for every item, or a 200 with no answer); `k` of them stop the run. After the first
    rejection, requests wait for the ones in flight (`hold`), so a run stops after at most
    concurrency + k requests, never the whole dataset."""

    def __init__(self, k: int = REJECTION_STREAK) -> None:
        self.k = k
        self.count = 0
        self.last: str | None = None
        self.stopped: JudgeSetupError | None = None

    @staticmethod
    def signature(completion: Completion) -> str | None:
        error = completion.error or ""
        if completion.finish_reason != "error" or not error.startswith(
            ("request rejected", "no answer")
        ):
            return None
        return _DIGITS.sub("#", error.partition("; body: ")[0])

    def see(self, completion: Completion, who: str) -> None:
        """Record one outcome; raise JudgeSetupError when the streak reaches k."""
        sig = self.signature(completion)
        if sig is None:
            self.count, self.last = 0, None
            return
        self.count = self.count + 1 if sig == self.last else 1
        self.last = sig
        if self.count >= self.k:
            self.stopped = JudgeSetupError(
                f"{who}: stopped after the same rejection on {self.count} requests in a row: "
                f"{completion.error}. Change {option_for(completion.error or '', None)}; rerun "
                "the same command afterwards (answers so far are cached)."
            )
        self.check()

    def check(self) -> None:
        """Raise the stop, once the streak has tripped (nothing more is sent)."""
        if self.stopped is not None:
            raise self.stopped

    @property
    def rejecting(self) -> bool:
        return self.count > 0
