"""A programmable judge server on 127.0.0.1 for tests and benchmarks.

Speaks OpenAI Chat Completions (``POST /v1/chat/completions``, ``GET /v1/models``) and Anthropic
Messages (``POST /v1/messages``) well enough for the official SDKs, and answers like a judge.
Runs as its own process so a benchmark client never shares its event loop:

    python tests/loopback_server.py --port 0 --latency 0.2 --fault 429=0.1 --retry-after 1
    # prints the port on the first stdout line, then serves until SIGTERM/SIGINT

From Python (tests, benchmarks)::

    with start_server(latency=0.05, expected_key="sk-test") as srv:
        client = AsyncOpenAI(base_url=srv.openai_base_url, api_key="sk-test", max_retries=0)
        ...
        srv.configure(faults={"429": 1.0})   # change behaviour mid-test
        srv.stats()["max_in_flight"]

pytest fixtures in tests/conftest.py: ``loopback`` (a fresh configuration and stats per test
on a session-wide server process).

Controls (CLI flag / ``POST /_control`` JSON key; ``POST /_reset`` restores the start-up
configuration and clears the stats; ``GET /_stats`` reads the counters):

- ``latency`` (s) and ``latency_jitter`` (s, uniform extra): delay before every answer.
- ``faults``: ``{kind: rate}``, each request draws one kind (seeded RNG, ``seed``). Kinds:
  ``429`` (with ``Retry-After: retry_after`` and, if set, ``retry-after-ms: retry_after_ms``),
  ``500``, ``503``, ``invalid500`` (llama.cpp style: HTTP 500 whose body says the request is
  invalid; must not be retried), ``hang`` (sleeps ``hang_s`` past the client's timeout),
  ``drip`` (a normal answer whose body is sent one byte every ``drip_s`` seconds after the
  headers: a read timeout never fires, only a deadline on the whole attempt stops it),
  ``reset`` (TCP reset, no response), ``malformed`` (200 with a truncated JSON body),
  ``unparseable`` (200, judge text with no verdict), ``context_length`` (400 context too long),
  ``content_filter`` (OpenAI: 400 with code content_filter; Anthropic: stop_reason refusal),
  ``length`` (200, answer cut at half, finish_reason length), ``empty`` (200, empty text),
  ``credit`` (out of money: Anthropic 400 "Your credit balance is too low", OpenAI 429
  insufficient_quota), ``billing402`` (402 billing_error), ``no_message`` (200 whose choice has
  no message / no content), ``html`` (400 with an nginx HTML page as body).
- ``script``: a list of kinds (or ``"ok"``) used, in order, by the next requests before the
  random ``faults`` apply again: deterministic fault sequences for retry tests.
- ``expected_key``: any other key gets 401 (``x-api-key`` or ``Authorization: Bearer``).
  ``leak_key_in_errors``: the 401 message repeats the full key it got (proves the client
  redacts); otherwise it is masked like OpenAI's.
- ``models``: known model ids (default: any); another model gets 404 model_not_found.
- ``max_context_chars``: prompts longer than this get 400 context_length_exceeded.
- ``policy``: the verdict the judge text carries: ``hash`` (default; a deterministic
  pseudo-random choice among the labels the prompt offers, from the request key), ``first``
  (always the first label, a position-biased judge; pointwise: the top of the scale),
  ``prefer:MARKER`` (an oracle the test controls: the response whose ``<response X>`` block
  contains MARKER wins; pointwise: top of the scale if it has it, else 1; no marker: ``hash``),
  ``longer`` (a length-biased judge: the longest response shown wins; pointwise: ``hash``),
  ``fixed:TEXT`` (always TEXT).
- ``reasoning``: ``none`` | ``field`` (OpenAI-compatible ``reasoning_content`` / Anthropic
  ``thinking`` block) | ``think`` (``<think>…</think>`` before the answer text).
- ``rules`` (default true): enforce what the live APIs document per model family and API
  version, with their error bodies (see "provider rules" below): OpenAI reasoning models
  (o-series, gpt-5, gpt-5.1..5.5, gpt-5.6/gpt-6) reject ``max_tokens``, temperature other than
  1 (gpt-5.1..5.5: except at effort none), logprobs unless the effort is none, efforts the
  model lacks; Anthropic needs ``anthropic-version``; 2026-10-21 rejects temperature/top_p/top_k
  on every model, 2023-06-01 on Opus 4.7+ and the 5 generation; thinking modes per model;
  Gemini (``gemini-*``) rejects logprobs with a JSON *list* error body. Reasoning models spend
  tokens thinking (by effort; Claude 5 thinks by default): too small a limit leaves an empty,
  billed answer with finish_reason ``length``. A system prompt seen before is reported as
  cached input (``prompt_tokens_details.cached_tokens`` / ``cache_read_input_tokens``).
- Answers longer than the request's ``max_tokens`` (1 token ≈ one word piece) are cut with
  finish_reason ``length``. ``logprobs``/``top_logprobs`` come back in OpenAI's shape; at the
  verdict position the alternatives are the other labels.

The judge text: the prompt (system + user text) is read for the verdict format it asks for:
a JSON object with ``"winner"`` (pairwise-json; also ``response_format`` json_object), a single
token ``A``/``B`` (logprobs asked or ``max_tokens`` <= 4, pairwise-logprob), ``[[A]]``/``[[B]]``
(``[[C]]`` when the prompt offers it), ``[[r]]`` on a 1–10 or 1–5 scale (pointwise), or ``[[k]]``
for k in 1..N where N counts the numbered responses shown (listwise). A short reasoning sentence
precedes the verdict.

Stats: ``requests``, ``in_flight``, ``max_in_flight``, ``status`` (count per HTTP status, and
``reset``), ``faults`` (count per kind used), ``answers`` (successful answers per request key =
sha256 of model, messages/system and sampling fields: see `request_key`), ``timestamps`` (arrival
times, ``time.time()``; the last 200,000).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

DEFAULTS: dict[str, Any] = {
    "latency": 0.0,
    "latency_jitter": 0.0,
    "faults": {},
    "script": [],
    "seed": 0,
    "retry_after": 1.0,
    "retry_after_ms": None,
    "hang_s": 3600.0,
    "drip_s": 1.0,
    "expected_key": None,
    "leak_key_in_errors": False,
    "models": None,
    "max_context_chars": None,
    "policy": "hash",
    "reasoning": "none",
    "rules": True,
}

FAULT_KINDS = (
    "429",
    "500",
    "503",
    "invalid500",
    "hang",
    "drip",
    "reset",
    "malformed",
    "unparseable",
    "context_length",
    "content_filter",
    "length",
    "empty",
    "credit",
    "billing402",
    "no_message",
    "html",
)

# the sampling fields that change an answer (besides model and messages)
SAMPLING_FIELDS = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "seed",
    "logprobs",
    "top_logprobs",
    "response_format",
)
# reasoning controls: part of the key when sent (keys of requests without them are unchanged)
REASONING_FIELDS = ("reasoning_effort", "verbosity", "thinking", "output_config")


def request_key(body: dict[str, Any]) -> str:
    """sha256 over what changes an answer: model, system + messages (role, text) and sampling
    fields. String content and content blocks with the same text give the same key."""
    h = hashlib.sha256(f"{body.get('model')}\x00{_content_text(body.get('system'))}".encode())
    for m in body.get("messages", ()):
        h.update(f"\x00{m.get('role')}\x01{_content_text(m.get('content'))}".encode())
    h.update(repr(tuple(body.get(k) for k in SAMPLING_FIELDS)).encode())
    reasoning = tuple(body.get(k) for k in REASONING_FIELDS)
    if any(v is not None for v in reasoning):
        h.update(repr(reasoning).encode())
    return h.hexdigest()


# ---------------------------------------------------------------------------- judge text


@dataclass(frozen=True, slots=True)
class Format:
    kind: str  # pairwise | json | token | rating | listwise
    labels: tuple[str, ...]


# "from 1 to 5", "1-10", "from 1 (useless) to 10": the scale or the candidate count
_SCALE = re.compile(r"\b1\b[^.\n\d]{0,40}?(?:-|–|\bto\b|\band\b)\s*(\d{1,2})\b")
_LABELLED = re.compile(r"(?i)<response\s*(\d{1,2})>|\[(?:response|answer|candidate)\s*(\d{1,2})\]")


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks
        return "\n".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return ""


def prompt_text(body: dict[str, Any]) -> str:
    parts = [_content_text(body.get("system"))]
    parts += [_content_text(m.get("content")) for m in body.get("messages") or ()]
    return "\n".join(parts)


def _scale_near(prompt: str, marker: str) -> int | None:
    """The upper bound stated on the line that asks for `marker` (e.g. [[r]] ... from 1 to 5)."""
    at = prompt.rfind(marker)
    if at < 0:
        return None
    end = prompt.find("\n", at)
    line = prompt[prompt.rfind("\n", 0, at) + 1 : end if end >= 0 else len(prompt)]
    m = _SCALE.search(line)
    return int(m.group(1)) if m else None


def detect_format(body: dict[str, Any], prompt: str) -> Format:
    rf = body.get("response_format")
    if '"winner"' in prompt or (isinstance(rf, dict) and rf.get("type", "").startswith("json")):
        return Format("json", ("A", "B"))
    max_tokens = body.get("max_tokens") or body.get("max_completion_tokens") or 1024
    if body.get("logprobs") or body.get("top_logprobs") or max_tokens <= 4:
        return Format("token", ("A", "B"))
    if "[[A]]" in prompt:
        return Format("pairwise", ("A", "B", "C") if "[[C]]" in prompt else ("A", "B"))
    if "[[r]]" in prompt:
        top = _scale_near(prompt, "[[r]]") or 10
        return Format("rating", tuple(str(r) for r in range(top, 0, -1)))
    labelled = {int(x or y) for x, y in _LABELLED.findall(prompt)}
    n = _scale_near(prompt, "[[k]]") or max(labelled, default=0)
    if n >= 2:
        return Format("listwise", tuple(str(k) for k in range(1, n + 1)))
    return Format("pairwise", ("A", "B"))


_REASONS = (
    "{x} follows the user's instructions more closely and makes fewer factual mistakes.",
    "{x} is more complete and answers what was actually asked.",
    "{x} is clearer, safer and better organised than the alternative.",
    "{x} handles the key constraint in the question correctly.",
)


def judge_text(fmt: Format, choice: str, h: int) -> str:
    who = "The response" if fmt.kind == "rating" else f"Response {choice}"
    reason = _REASONS[h % len(_REASONS)].format(x=who)
    if fmt.kind == "token":
        return choice
    if fmt.kind == "json":
        return json.dumps({"reasoning": reason, "winner": choice})
    if fmt.kind == "rating":
        return f"The response is relevant and mostly accurate. Rating: [[{choice}]]"
    if fmt.kind == "pairwise" and choice == "C":
        return "Both responses are equally helpful and neither is clearly better. [[C]]"
    return f"{reason} Final verdict: [[{choice}]]"


_BLOCK = re.compile(r"<response (\w+)>(.*?)</response \1>", re.S)


def choose(policy: str, fmt: Format, h: int, prompt: str = "") -> str:
    if policy == "first":
        return fmt.labels[0]
    if policy.startswith("prefer:"):
        # an oracle the test controls: the response containing the marker wins / rates top
        marker = policy.removeprefix("prefer:")
        marked = [lab for lab, text in _BLOCK.findall(prompt) if marker in text]
        if fmt.kind == "rating":
            return fmt.labels[0] if marked else fmt.labels[-1]
        if marked and marked[0] in fmt.labels:
            return marked[0]
    if policy == "longer" and fmt.kind != "rating":
        # a length-biased judge: the longest response shown wins
        blocks = [(len(text), lab) for lab, text in _BLOCK.findall(prompt) if lab in fmt.labels]
        if blocks:
            return max(blocks)[1]
    return fmt.labels[h % len(fmt.labels)]


_TOKEN = re.compile(r"\s*(?:\[\[|\]\]|\w+|[^\w\s])|\s+")


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text)


def openai_logprobs(
    tokens: list[str], top_n: int, labels: tuple[str, ...], choice: str, h: int
) -> dict[str, Any]:
    """OpenAI's `choices[0].logprobs` shape; the verdict position's alternatives are labels."""
    verdict_at = max((i for i, t in enumerate(tokens) if t.strip() == choice), default=-1)
    p_choice = 0.55 + 0.4 * ((h >> 8) % 1000) / 1000
    content = []
    for i, tok in enumerate(tokens):
        if i == verdict_at:
            others = [lab for lab in labels if lab != choice]
            rest = (1 - p_choice) / max(1, len(others))
            alts = [(choice, math.log(p_choice))] + [(lab, math.log(rest)) for lab in others]
        else:
            alts = [(tok, -0.01), (" the", -5.0), (" a", -6.0), (".", -7.0), (" and", -8.0)]
        alts = alts[: max(top_n, 1)]
        lp = alts[0][1]
        content.append(
            {
                "token": tok,
                "logprob": lp,
                "bytes": list(tok.encode()),
                "top_logprobs": [
                    {"token": t, "logprob": v, "bytes": list(t.encode())} for t, v in alts[:top_n]
                ],
            }
        )
    return {"content": content, "refusal": None}


# ---------------------------------------------------------------------------- provider rules
# What the live APIs answer to a request they do not take, per model family and API version,
# as their documentation and users' reports give it (checked 2026-12): OpenAI's reasoning guide
# and openai-python 3.57 `completion_create_params.py`; Anthropic's versioning page, the
# 2026-10-21 migration guide and the Opus 4.7 / Opus 5 migration guides; error texts as
# reported in public issues. Written from those sources, not from judges/models.py, so a judge
# that sends what the API refuses fails here the way it would there.

Rejection = tuple[int, str, str, str | None, str | None]  # status, message, type, code, param


@dataclass(frozen=True, slots=True)
class OpenAIModel:
    efforts: tuple[str, ...]  # () = not a reasoning model
    default_effort: str | None
    sampling_at_none: bool  # temperature/top_p taken at effort none (gpt-5.1..5.5)
    logprobs_at_none: bool  # logprobs taken at effort none (gpt-5.1 and later)


_FIVE = ("none", "low", "medium", "high", "xhigh")
OPENAI_MODELS: tuple[tuple[str, OpenAIModel], ...] = (
    (r"gpt-(?:5\.6|6)(?:$|[-.])", OpenAIModel(_FIVE, "none", False, True)),
    (r"gpt-5\.[2-5](?:$|[-.])", OpenAIModel(_FIVE, "none", True, True)),
    (r"gpt-5\.1(?:$|-)", OpenAIModel(("none", "low", "medium", "high"), "none", True, True)),
    (r"gpt-5-chat", OpenAIModel((), None, True, True)),
    (r"gpt-5-pro", OpenAIModel(("high",), "high", False, False)),
    (r"gpt-5(?:$|-)", OpenAIModel(("minimal", "low", "medium", "high"), "medium", False, False)),
    (r"o\d(?:$|-)", OpenAIModel(("low", "medium", "high"), "medium", False, False)),
)
# tokens a model spends reasoning before it answers, by effort
THINK_TOKENS = {"minimal": 40, "low": 300, "medium": 1200, "high": 2500, "xhigh": 6000, "max": 9000}


def _openai_model(model: str) -> OpenAIModel | None:
    bare = model.rsplit("/", 1)[-1].lower()
    return next((m for pattern, m in OPENAI_MODELS if re.match(pattern, bare)), None)


def openai_rejection(body: dict[str, Any]) -> Rejection | None:
    model = str(body.get("model", ""))
    if model.startswith("gemini-") and body.get("logprobs"):
        # Gemini's OpenAI endpoint: a JSON list of Google error objects (see `_error`)
        return 400, "Request contains an invalid argument.", "INVALID_ARGUMENT", None, None
    spec = _openai_model(model)
    if spec is None:
        return None
    bad_param = "invalid_request_error", "unsupported_parameter"
    if not spec.efforts:
        for field_name in ("reasoning_effort", "verbosity"):
            if field_name in body:
                msg = f"Unsupported parameter: '{field_name}' is not supported with this model."
                return 400, msg, *bad_param, field_name
        return None
    if "max_tokens" in body:
        msg = (
            "Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead."
        )
        return 400, msg, *bad_param, "max_tokens"
    effort = body.get("reasoning_effort")
    if effort is not None and effort not in spec.efforts:
        allowed = ", ".join(f"'{e}'" for e in spec.efforts)
        msg = (
            f"Unsupported value: '{effort}' is not supported with the '{model}' model. "
            f"Supported values are: {allowed}."
        )
        return 400, msg, "invalid_request_error", "unsupported_value", "reasoning_effort"
    at_none = (effort or spec.default_effort) == "none"
    for field_name in ("temperature", "top_p"):
        value = body.get(field_name)
        if value is not None and value != 1 and not (spec.sampling_at_none and at_none):
            msg = (
                f"Unsupported value: '{field_name}' does not support {value} with this model. "
                "Only the default (1) value is supported."
            )
            return 400, msg, "invalid_request_error", "unsupported_value", field_name
    if body.get("logprobs") and not (spec.logprobs_at_none and at_none):
        msg = "Unsupported parameter: 'logprobs' is not supported with this model."
        return 400, msg, *bad_param, "logprobs"
    return None


def openai_think_tokens(body: dict[str, Any]) -> int:
    spec = _openai_model(str(body.get("model", "")))
    if spec is None or not spec.efforts:
        return 0
    return THINK_TOKENS.get(body.get("reasoning_effort") or spec.default_effort or "none", 0)


ANTHROPIC_VERSIONS = ("2023-06-01", "2026-10-21")
_NO_SAMPLING = re.compile(r"claude-(?:opus-4-[7-9]|(?:opus|sonnet|haiku|fable)-5)")
_THINKS_BY_DEFAULT = re.compile(r"claude-(?:opus|sonnet|haiku|fable)-5")
_ADAPTIVE = re.compile(r"claude-(?:(?:opus|sonnet)-4-6|opus-4-[7-9]|(?:opus|sonnet|haiku|fable)-5)")
_EFFORT = re.compile(r"claude-(?:opus-4-[5-9]|sonnet-4-6|(?:opus|sonnet|haiku|fable)-5)")


def anthropic_rejection(body: dict[str, Any], version: str | None) -> Rejection | None:
    bad = "invalid_request_error", None, None
    if not version:
        return 400, "anthropic-version: header is required", *bad
    if version not in ANTHROPIC_VERSIONS:
        return 400, f"anthropic-version: '{version}' is not a valid version", *bad
    model = str(body.get("model", ""))
    for field_name in ("temperature", "top_p", "top_k"):
        if field_name in body:
            if version >= "2026-10-21":
                return 400, f"{field_name}: Extra inputs are not permitted", *bad
            if _NO_SAMPLING.match(model):
                return 400, f"`{field_name}` is deprecated for this model.", *bad
    thinking = body.get("thinking") or {}
    kind = thinking.get("type")
    effort = (body.get("output_config") or {}).get("effort")
    if effort is not None and not _EFFORT.match(model):
        return 400, "output_config.effort: This model does not support the effort parameter.", *bad
    if kind == "enabled":
        if _NO_SAMPLING.match(model):
            msg = (
                '"thinking.type.enabled" is not supported for this model. Use '
                '"thinking.type.adaptive" and "output_config.effort" to control thinking behavior.'
            )
            return 400, msg, *bad
        budget = int(thinking.get("budget_tokens") or 0)
        if budget < 1024:
            return (
                400,
                "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
                *bad,
            )
        if budget >= int(body.get("max_tokens") or 0):
            return 400, "`max_tokens` must be greater than `thinking.budget_tokens`.", *bad
        if body.get("temperature", 1) != 1:
            msg = "`temperature` may only be set to 1 when thinking is enabled."
            return 400, msg, *bad
    if kind == "adaptive" and not _ADAPTIVE.match(model):
        return 400, "thinking.type: 'adaptive' is not supported for this model.", *bad
    if kind == "disabled" and _THINKS_BY_DEFAULT.match(model) and effort in ("xhigh", "max"):
        msg = f"thinking cannot be disabled at effort '{effort}': use effort 'high' or lower."
        return 400, msg, *bad
    return None


def anthropic_think_tokens(body: dict[str, Any]) -> int:
    """Thinking tokens spent: on when asked, and by default on the 5 generation."""
    model = str(body.get("model", ""))
    thinking = body.get("thinking") or {}
    kind = thinking.get("type") or ("adaptive" if _THINKS_BY_DEFAULT.match(model) else None)
    if kind == "enabled":
        return min(int(thinking.get("budget_tokens") or 0), THINK_TOKENS["high"])
    if kind == "adaptive":
        return THINK_TOKENS.get((body.get("output_config") or {}).get("effort") or "high", 0)
    return 0


# ---------------------------------------------------------------------------- server state


class State:
    def __init__(self, config: dict[str, Any]) -> None:
        self.initial = {**DEFAULTS, **config}
        self.reset()

    def reset(self) -> None:
        self.config: dict[str, Any] = json.loads(json.dumps(self.initial))
        self.rng = random.Random(self.config["seed"])
        self.script: deque[str] = deque(self.config["script"])
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.status: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.answers: Counter[str] = Counter()
        self.timestamps: deque[float] = deque(maxlen=200_000)
        self.systems: set[str] = set()  # system prompts seen: reported as cached input

    def configure(self, changes: dict[str, Any]) -> None:
        unknown = set(changes) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"unknown control(s): {sorted(unknown)}; known: {sorted(DEFAULTS)}")
        bad = set(changes.get("faults", {})) | set(changes.get("script", [])) - {"ok"}
        bad -= set(FAULT_KINDS)
        if bad:
            raise ValueError(f"unknown fault kind(s) {sorted(bad)}; known: {FAULT_KINDS}")
        self.config.update(changes)
        if "seed" in changes:
            self.rng = random.Random(changes["seed"])
        if "script" in changes:
            self.script = deque(changes["script"])

    def draw_fault(self) -> str | None:
        if self.script:
            kind = self.script.popleft()
            return None if kind == "ok" else kind
        faults = self.config["faults"]
        if not faults:
            return None
        x = self.rng.random()
        for kind, rate in faults.items():
            x -= rate
            if x < 0:
                return str(kind)
        return None

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "status": dict(self.status),
            "faults": dict(self.faults),
            "answers": dict(self.answers),
            "timestamps": list(self.timestamps),
            "config": self.config,
        }


STATE = web.AppKey("state", State)


def _error(
    status: int,
    api: str,
    message: str,
    etype: str,
    code: str | None = None,
    param: str | None = None,
) -> web.Response:
    """The provider's error body: Anthropic's, OpenAI's, or (api "gemini") the JSON list of
    Google error objects that Gemini's OpenAI endpoint answers with."""
    body: Any
    if api == "anthropic":
        body = {"type": "error", "error": {"type": etype, "message": message}}
    elif api == "gemini":
        body = [{"error": {"code": status, "message": message, "status": etype}}]
    else:
        body = {"error": {"message": message, "type": etype, "param": param, "code": code}}
    return web.json_response(body, status=status)


def _rejected(request: web.Request, api: str, body: dict[str, Any]) -> web.Response | None:
    if api == "anthropic":
        found = anthropic_rejection(body, request.headers.get("anthropic-version"))
    else:
        found = openai_rejection(body)
    if found is None:
        return None
    status, message, etype, code, param = found
    if str(body.get("model", "")).startswith("gemini-"):
        api = "gemini"
    return _error(status, api, message, etype, code, param)


_NGINX_400 = (
    "<html>\r\n<head><title>400 Bad Request</title></head>\r\n<body>\r\n<center><h1>400 Bad "
    "Request</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


def _billing(fault: str, api: str) -> web.Response:
    """Out of money, as each provider says it (these must stop a run at once)."""
    if fault == "billing402":
        msg = "Your credit balance is too low to access the API. Please add credits."
        return _error(402, api, msg, "billing_error", "insufficient_credits")
    if api == "anthropic":
        msg = (
            "Your credit balance is too low to access the Anthropic API. Please go to "
            "Plans & Billing to upgrade or purchase credits."
        )
        return _error(400, api, msg, "invalid_request_error")
    msg = (
        "You exceeded your current quota, please check your plan and billing details. For more "
        "information on this error, read the docs: "
        "https://platform.openai.com/docs/guides/error-codes/api-errors."
    )
    return _error(429, api, msg, "insufficient_quota", "insufficient_quota")


def _mask(key: str) -> str:
    return key[:3] + "*" * 4 + key[-4:] if len(key) > 8 else "****"


async def _reset_connection(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # SO_LINGER 0: close() sends a RST instead of a FIN
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" * 2)
        transport.abort()


async def handle(request: web.Request, api: str) -> web.StreamResponse:
    st = request.app[STATE]
    cfg = st.config
    st.requests += 1
    st.timestamps.append(time.time())
    st.in_flight += 1
    st.max_in_flight = max(st.max_in_flight, st.in_flight)
    try:
        resp = await _answer(request, api, st, cfg)
        if request.get("fault") == "drip":
            resp = await _drip(request, resp, cfg["drip_s"])
    finally:
        st.in_flight -= 1
    st.status[str(resp.status)] += 1
    return resp


async def _drip(request: web.Request, resp: web.Response, every_s: float) -> web.StreamResponse:
    """Send `resp` with its headers at once and its body one byte every `every_s` seconds."""
    body = resp.body if isinstance(resp.body, bytes) else b""
    out = web.StreamResponse(status=resp.status, headers={"Content-Type": "application/json"})
    out.content_length = len(body)
    await out.prepare(request)
    for i in range(len(body)):
        await out.write(body[i : i + 1])
        await asyncio.sleep(every_s)
    await out.write_eof()
    return out


async def _answer(request: web.Request, api: str, st: State, cfg: dict[str, Any]) -> web.Response:
    body = await request.json()
    if cfg["expected_key"] is not None:
        # anthropic 2.x sends the key as a bearer token; older SDKs as x-api-key
        got = request.headers.get("x-api-key") or request.headers.get(
            "Authorization", ""
        ).removeprefix("Bearer ")
        if got != cfg["expected_key"]:
            shown = got if cfg["leak_key_in_errors"] else _mask(got)
            msg = f"Incorrect API key provided: {shown}. Check the key you set."
            return _error(401, api, msg, "authentication_error", "invalid_api_key")
    model = body.get("model", "")
    if cfg["models"] is not None and model not in cfg["models"]:
        msg = f"The model `{model}` does not exist or you do not have access to it."
        etype = "not_found_error" if api == "anthropic" else "invalid_request_error"
        return _error(404, api, msg, etype, "model_not_found")
    if cfg["rules"] and (rejected := _rejected(request, api, body)) is not None:
        return rejected
    prompt = prompt_text(body)
    limit = cfg["max_context_chars"]
    fault = st.draw_fault()
    if fault:
        st.faults[fault] += 1
    request["fault"] = fault
    if fault in ("credit", "billing402"):
        return _billing(fault, api)
    if fault == "html":
        return web.Response(status=400, text=_NGINX_400, content_type="text/html")
    if fault == "context_length" or (limit is not None and len(prompt) > limit):
        n = len(prompt) // 4
        if api == "anthropic":
            msg = f"prompt is too long: {n} tokens > {n // 2} maximum"
        else:
            msg = (
                f"This model's maximum context length is {n // 2} tokens. However, your "
                f"messages resulted in {n} tokens. Please reduce the length of the messages."
            )
        return _error(400, api, msg, "invalid_request_error", "context_length_exceeded")
    if fault == "content_filter" and api == "openai":
        msg = (
            "The response was filtered due to the prompt triggering the content management policy."
        )
        return _error(400, api, msg, "invalid_request_error", "content_filter")

    delay = cfg["latency"] + (cfg["latency_jitter"] and st.rng.random() * cfg["latency_jitter"])
    if fault == "hang":
        delay = cfg["hang_s"]
    if delay:
        await asyncio.sleep(delay)

    if fault == "429":
        headers = {"Retry-After": f"{cfg['retry_after']:g}"}
        if cfg["retry_after_ms"] is not None:
            headers["retry-after-ms"] = f"{cfg['retry_after_ms']:g}"
        etype = "rate_limit_error" if api == "anthropic" else "requests"
        resp = _error(
            429, api, "Rate limit reached; please retry later.", etype, "rate_limit_exceeded"
        )
        resp.headers.update(headers)
        return resp
    if fault in ("500", "503"):
        etype = "api_error" if api == "anthropic" else "server_error"
        return _error(int(fault), api, "The server had an error processing your request.", etype)
    if fault == "invalid500":
        msg = "Invalid request: 'messages' must be a non-empty array of valid chat messages"
        return _error(500, api, msg, "server_error")
    if fault == "reset":
        st.status["reset"] += 1
        await _reset_connection(request)
        await asyncio.sleep(60)  # aiohttp cancels this handler as the connection is gone
    if fault == "malformed":
        return web.Response(
            status=200,
            body=b'{"id": "chatcmpl-x", "choices": [{"index": 0, "mess',
            content_type="application/json",
        )

    key = request_key(body)
    h = int(key[:15], 16)
    fmt = detect_format(body, prompt)
    policy = str(cfg["policy"])
    choice = choose(policy, fmt, h, prompt)
    if fault == "unparseable":
        text = "Both responses have strengths and weaknesses; it is hard to say which is better."
    elif fault == "empty":
        text = ""
    elif policy.startswith("fixed:"):
        text = policy.removeprefix("fixed:")
    else:
        text = judge_text(fmt, choice, h)
    tokens = tokenize(text)
    max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 1 << 30)
    think = 0
    if cfg["rules"]:  # reasoning spends the same token limit before the answer starts
        think = anthropic_think_tokens(body) if api == "anthropic" else openai_think_tokens(body)
        think = min(think, max_tokens)
    finish = "stop"
    cut = len(tokens) // 2 if fault == "length" else max_tokens - think
    if len(tokens) > cut:
        tokens, finish = tokens[:cut], "length"
        text = "".join(tokens)
    reasoning = None
    if cfg["reasoning"] != "none":
        reasoning = "Let me compare the responses against the user's request before deciding."
        if cfg["reasoning"] == "think":
            text, reasoning = f"<think>{reasoning}</think>\n{text}", None
    usage_in, usage_out = max(1, len(prompt) // 4), len(tokens) + think
    system = _content_text(body.get("system")) or next(
        (
            _content_text(m.get("content"))
            for m in body.get("messages", ())
            if m.get("role") == "system"
        ),
        "",
    )
    cached = len(system) // 4 if system in st.systems else 0
    st.systems.add(system)
    filtered = fault == "content_filter"  # anthropic: a refusal stop reason
    if filtered:
        text, usage_out = "", 0
    if finish == "stop" and not filtered and fault != "empty":
        st.answers[key] += 1

    if fault == "no_message":  # answered (and billed) with nothing in it
        if api == "anthropic":
            return web.json_response({"id": f"msg_{key[:24]}", "type": "message", "usage": {}})
        usage = {"prompt_tokens": usage_in, "completion_tokens": 0, "total_tokens": usage_in}
        empty_choice = {"index": 0, "finish_reason": "stop"}
        return web.json_response(
            {"id": f"chatcmpl-{key[:24]}", "choices": [empty_choice], "usage": usage}
        )
    if api == "anthropic":
        blocks: list[dict[str, Any]] = []
        if think:  # Claude 5 omits the thinking text by default: an empty block, signed
            blocks.append({"type": "thinking", "thinking": "", "signature": "loopback"})
        if reasoning:
            blocks.append({"type": "thinking", "thinking": reasoning, "signature": "loopback"})
        if text:
            blocks.append({"type": "text", "text": text})
        stop = "refusal" if filtered else ("max_tokens" if finish == "length" else "end_turn")
        return web.json_response(
            {
                "id": f"msg_{key[:24]}",
                "type": "message",
                "role": "assistant",
                "model": body.get("model", ""),
                "content": blocks,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": usage_in - cached,
                    "cache_read_input_tokens": cached,
                    "output_tokens": usage_out,
                },
            }
        )
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if reasoning:
        message["reasoning_content"] = reasoning
    choice_obj: dict[str, Any] = {"index": 0, "message": message, "finish_reason": finish}
    if body.get("logprobs"):
        top_n = int(body.get("top_logprobs") or 0)
        choice_obj["logprobs"] = openai_logprobs(tokens, top_n, fmt.labels, choice, h)
    return web.json_response(
        {
            "id": f"chatcmpl-{key[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": [choice_obj],
            "usage": {
                "prompt_tokens": usage_in,
                "completion_tokens": usage_out,
                "total_tokens": usage_in + usage_out,
                "prompt_tokens_details": {"cached_tokens": cached},
                "completion_tokens_details": {"reasoning_tokens": think},
            },
        }
    )


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await handle(request, "openai")


async def messages(request: web.Request) -> web.StreamResponse:
    return await handle(request, "anthropic")


async def models(request: web.Request) -> web.Response:
    ids = request.app[STATE].config["models"] or ["loopback"]
    data = [{"id": m, "object": "model", "created": 0, "owned_by": "loopback"} for m in ids]
    return web.json_response({"object": "list", "data": data})


async def control(request: web.Request) -> web.Response:
    try:
        request.app[STATE].configure(await request.json())
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(request.app[STATE].config)


async def reset(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    return web.json_response({"ok": True})


async def stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].snapshot())


def make_app(config: dict[str, Any]) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[STATE] = State(config)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/messages", messages)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/_control", control)
    app.router.add_post("/_reset", reset)
    app.router.add_get("/_stats", stats)
    return app


async def serve(config: dict[str, Any], host: str, port: int) -> None:
    runner = web.AppRunner(
        make_app(config), access_log=None, handler_cancellation=True, shutdown_timeout=0.5
    )
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    await web.SockSite(runner, sock, backlog=4096).start()
    print(sock.getsockname()[1], flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def _parse_faults(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        kind, _, rate = item.partition("=")
        out[kind] = float(rate or 1.0)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--latency", type=float, default=0.0)
    p.add_argument("--latency-jitter", type=float, default=0.0)
    p.add_argument("--fault", action="append", default=[], metavar="KIND=RATE")
    p.add_argument(
        "--script", default="", help="comma-separated fault kinds for the first requests"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--retry-after", type=float, default=1.0)
    p.add_argument("--retry-after-ms", type=float, default=None)
    p.add_argument("--hang-s", type=float, default=3600.0)
    p.add_argument("--expected-key", default=None)
    p.add_argument("--leak-key-in-errors", action="store_true")
    p.add_argument("--models", default=None, help="comma-separated known model ids")
    p.add_argument("--max-context-chars", type=int, default=None)
    p.add_argument("--policy", default="hash")
    p.add_argument("--reasoning", choices=("none", "field", "think"), default="none")
    p.add_argument("--config-json", default=None, help="extra controls as a JSON object")
    a = p.parse_args(argv)
    config: dict[str, Any] = {
        "latency": a.latency,
        "latency_jitter": a.latency_jitter,
        "faults": _parse_faults(a.fault),
        "script": [s for s in a.script.split(",") if s],
        "seed": a.seed,
        "retry_after": a.retry_after,
        "retry_after_ms": a.retry_after_ms,
        "hang_s": a.hang_s,
        "expected_key": a.expected_key,
        "leak_key_in_errors": a.leak_key_in_errors,
        "models": a.models.split(",") if a.models else None,
        "max_context_chars": a.max_context_chars,
        "policy": a.policy,
        "reasoning": a.reasoning,
    }
    if a.config_json:
        config.update(json.loads(a.config_json))
    State(config).configure(config)  # fail fast on unknown kinds
    run = asyncio.run
    with contextlib.suppress(ImportError):  # uvloop: less CPU per request; asyncio works too
        import uvloop

        run = uvloop.run
    run(serve(config, a.host, a.port))


# ---------------------------------------------------------------------------- client handle


class LoopbackServer:
    """A running server process: URLs for both SDKs, and its controls over HTTP."""

    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc = proc
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.openai_base_url = f"{self.base_url}/v1"
        self.anthropic_base_url = self.base_url  # the anthropic SDK adds /v1 itself

    def _call(self, path: str, payload: dict[str, Any] | None = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(
            self.base_url + path, data=data, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def configure(self, **changes: Any) -> dict[str, Any]:
        return dict(self._call("/_control", changes))

    def reset(self) -> None:
        self._call("/_reset", {})

    def stats(self) -> dict[str, Any]:
        return dict(self._call("/_stats"))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> LoopbackServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(*, cpu: int | None = None, **options: Any) -> LoopbackServer:
    """Start the server in its own process (optionally pinned to one CPU) and wait for its port.

    `options` are controls (see the module docstring), sent as --config-json."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--port", "0"]
    if options:
        cmd += ["--config-json", json.dumps(options)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ})
    if cpu is not None:
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setaffinity(proc.pid, {cpu})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        raise RuntimeError(f"loopback server failed to start (got {line!r})")
    return LoopbackServer(proc, int(line))


@contextlib.contextmanager
def running_server(**options: Any) -> Iterator[LoopbackServer]:
    srv = start_server(**options)
    try:
        yield srv
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
