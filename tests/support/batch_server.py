"""The providers' batch APIs, rate-limited online endpoints and prompt caching, on 127.0.0.1, with
a clock the test controls. Runs beside the loopback judge server (tests/loopback_server.py):
every online request and every batch line is answered by posting it to that backend, so a batch
answers exactly what an online run would, and the backend's own stats see every paid answer.

    python tests/support/batch_server.py --backend http://127.0.0.1:PORT --port 0   # prints its port

OpenAI (platform.openai.com/docs/api-reference/batch, /files): `POST /v1/files` (multipart,
purpose "batch"), `GET /v1/files/{id}`, `GET /v1/files/{id}/content`, `DELETE /v1/files/{id}`;
`POST /v1/batches` (input_file_id, endpoint, completion_window "24h", metadata), `GET
/v1/batches/{id}`, `GET /v1/batches` (newest first; `after`, `limit`), `POST
/v1/batches/{id}/cancel`. Statuses validating -> in_progress -> finalizing -> completed, or
failed (validation: the errors name the line), expired (the window ended: the finished lines are
in the output file, the rest in the error file as `batch_expired`), cancelling -> cancelled
(`batch_cancelled`). Output lines `{id, custom_id, response: {status_code, request_id, body},
error}`; a line the backend refused goes to the error file with its status and body.

Anthropic (docs.anthropic.com/en/api/creating-message-batches): `POST /v1/messages/batches`
(validated at once: custom_id `^[a-zA-Z0-9_-]{1,64}$`, unique, <= 100,000 requests, <= 256 MB),
`GET /v1/messages/batches/{id}`, `GET /v1/messages/batches` (newest first; `after_id`,
`before_id`, `limit`), `POST .../{id}/cancel`, `GET .../{id}/results` (JSONL once ended:
`{custom_id, result: {type: succeeded|errored|canceled|expired, message|error}}`).
processing_status in_progress -> canceling -> ended.

The clock: server seconds = real seconds x `clock_speed` + what `POST /_clock {"advance": s}`
added. A batch validates for `validate_s`, processes its lines evenly over `process_s` (each line
answered when its share of that time has passed), finalizes for `finalize_s`; it expires
`window_s` after creation; a cancel takes `cancel_s`.

Online: `POST /v1/chat/completions` and `POST /v1/messages`, with `rate_limit` {requests_per_min,
tokens_per_min} enforced by token buckets and the providers' headers (tests/support/rate_limits.py).

Prompt caching (`prefix_cache`, on by default): OpenAI's automatic one (a prompt of >= 1,024
tokens reads its longest prefix seen before, in 128-token steps, as
`usage.prompt_tokens_details.cached_tokens`); Anthropic's explicit one (the prompt up to the last
block with `cache_control`, if >= 1,024 tokens, is written once `cache_creation_input_tokens`,
then read `cache_read_input_tokens`; `input_tokens` is the rest). Tokens are chars/4, as the
backend counts them; entries never expire.

Controls: `POST /_control` (keys of DEFAULTS), `POST /_reset`, `POST /_clock`, `GET /_stats`:
`billed` (successful answers per request key = sha256 of the body's canonical JSON, online and
batch alike), `usage` (per mode online|batch and model: requests, input, cached_input,
cache_write, output tokens), `limited` (429s sent), `admitted` ([arrival time, tokens charged] of each admitted request),
`batches` (status per batch id), `uploads`, `creates` (calls that reached the server).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

from support.loopback_server import STATE as LOOPBACK_STATE
from support.loopback_server import LoopbackServer, control, reset
from support.rate_limits import RateLimit

DEFAULTS: dict[str, Any] = {
    "backend": None,
    "clock_speed": 1.0,
    "validate_s": 1.0,
    "process_s": 4.0,
    "finalize_s": 1.0,
    "cancel_s": 1.0,
    "window_s": 86_400.0,
    "fail_validation": None,  # a message: every batch fails validation with it (line 1)
    # {"requests_per_min": 600, "tokens_per_min": 400_000, "burst_s": 60} (see rate_limits.py)
    "rate_limit": None,
    "prefix_cache": True,
    "line_concurrency": 64,  # batch lines answered at once
    # seconds a call waits, to give a test a window to kill its client in: "upload" (after the
    # file is stored), "before_create" (a create's body has arrived, nothing is made yet),
    # "after_create" (the batch exists, its answer has not left), "results" (before the output
    # file or the results are sent)
    "delays": {},
}

OPENAI_MAX_LINES = 50_000
OPENAI_MAX_BYTES = 200 * 1024 * 1024
ANTHROPIC_MAX_REQUESTS = 100_000
ANTHROPIC_MAX_BYTES = 256 * 1024 * 1024
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
CACHE_MIN_TOKENS = 1024
CACHE_STEP_TOKENS = 128
CHARS_PER_TOKEN = 4

ONLINE_PATH = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages"}


def body_key(body: dict[str, Any]) -> str:
    """What a request is billed under: the same body online or in a batch, the same key."""
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return ""


def _cache_marked(content: Any) -> bool:
    return isinstance(content, list) and any(
        isinstance(b, dict) and b.get("cache_control") for b in content
    )


class PrefixCache:
    """Which prompt prefixes a model has seen (hashes of the prompt cut at 128-token steps)."""

    def __init__(self) -> None:
        self.seen: set[bytes] = set()

    def openai(self, model: str, prompt: str) -> int:
        """Cached tokens of an OpenAI prompt; records its prefixes."""
        step = CACHE_STEP_TOKENS * CHARS_PER_TOKEN
        h = hashlib.sha1(model.encode())
        cached = 0
        for end in range(step, len(prompt) + 1, step):
            h.update(prompt[end - step : end].encode())
            d = h.digest()
            if d in self.seen:
                cached = end // CHARS_PER_TOKEN
            self.seen.add(d)
        return cached if cached >= CACHE_MIN_TOKENS else 0

    def anthropic(self, model: str, prefix: str) -> tuple[int, int]:
        """(read, written) tokens for the cache-marked prefix of an Anthropic prompt."""
        tokens = len(prefix) // CHARS_PER_TOKEN
        if tokens < CACHE_MIN_TOKENS:
            return 0, 0
        d = hashlib.sha1(f"{model}\x00{prefix}".encode()).digest()
        if d in self.seen:
            return tokens, 0
        self.seen.add(d)
        return 0, tokens


def openai_prompt(body: dict[str, Any]) -> str:
    return "".join(f"{m.get('role')}\x00{_text(m.get('content'))}\x01" for m in body["messages"])


def anthropic_cached_prefix(body: dict[str, Any]) -> str:
    """The prompt up to and including the last block marked cache_control ("" if none)."""
    parts: list[str] = []
    upto = 0
    system = body.get("system")
    blocks = system if isinstance(system, list) else [{"text": system or ""}]
    for b in blocks:
        parts.append(str(b.get("text", "")))
        if b.get("cache_control"):
            upto = len(parts)
    for m in body.get("messages", ()):
        content = m.get("content")
        blocks = content if isinstance(content, list) else [{"text": content or ""}]
        for b in blocks:
            parts.append(f"{m.get('role')}\x00{b.get('text', '')}")
            if isinstance(b, dict) and b.get("cache_control"):
                upto = len(parts)
    return "\x01".join(parts[:upto])


# ---------------------------------------------------------------------------- state


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def _int(t: float | None) -> int | None:
    return None if t is None else int(t)


@dataclass
class Line:
    custom_id: str
    body: dict[str, Any]
    # None until answered; then ("answer", status_code, body) or ("expired"|"cancelled",)
    result: tuple[Any, ...] | None = None
    started: bool = False


@dataclass
class Job:
    api: str  # openai | anthropic
    id: str
    created: float
    lines: list[Line]
    status: str  # the OpenAI statuses (Anthropic's are derived)
    endpoint: str = "/v1/chat/completions"
    input_file_id: str | None = None
    metadata: dict[str, str] | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    at: dict[str, float] = field(default_factory=dict)  # in_progress, finalizing, ...
    output_file_id: str | None = None
    error_file_id: str | None = None
    in_flight: int = 0
    ended_as: str = ""  # completed | expired | cancelled: what the unfinished lines become
    # the create request's API headers (anthropic-version): every line is answered under them,
    # so the backend checks a batch line by the same rules as an online request
    headers: dict[str, str] = field(default_factory=dict)

    def counts(self) -> Counter[str]:
        c: Counter[str] = Counter()
        for ln in self.lines:
            if ln.result is None:
                c["processing"] += 1
            elif ln.result[0] == "answer":
                c["succeeded" if ln.result[1] == 200 else "errored"] += 1
            else:
                c[ln.result[0]] += 1
        return c


class State:
    def __init__(self, config: dict[str, Any]) -> None:
        self.initial = {**DEFAULTS, **config}
        self.reset()

    def reset(self) -> None:
        self.config: dict[str, Any] = json.loads(json.dumps(self.initial))
        # the clock read `base` at real time `anchor`, and runs at clock_speed from there
        self.base = self.anchor = time.time()
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.jobs: dict[str, Job] = {}
        self.billed: Counter[str] = Counter()
        self.usage: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
        self.limited = 0
        self.limited_at: list[tuple[float, int, float]] = []  # (arrival, tokens, wait asked)
        self.admitted: list[tuple[float, int]] = []  # (arrival, tokens charged)
        self.calls: Counter[str] = Counter()
        self.cache = PrefixCache()
        self._make_limit()

    def _make_limit(self) -> None:
        rl = self.config["rate_limit"]
        self.limit = (
            RateLimit(
                rl["requests_per_min"], rl["tokens_per_min"], self.now, rl.get("burst_s", 60.0)
            )
            if rl
            else None
        )

    def configure(self, changes: dict[str, Any]) -> None:
        unknown = set(changes) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"unknown control(s): {sorted(unknown)}; known: {sorted(DEFAULTS)}")
        now = self.now()
        self.config.update(changes)
        if "clock_speed" in changes:  # the clock stays continuous; the new speed runs from now
            self.base, self.anchor = now, time.time()
        if "rate_limit" in changes:
            self._make_limit()

    def now(self) -> float:
        """The server's clock (epoch seconds)."""
        return self.base + (time.time() - self.anchor) * self.config["clock_speed"]

    def advance(self, seconds: float) -> None:
        self.base, self.anchor = self.now() + seconds, time.time()

    def snapshot(self) -> dict[str, Any]:
        return {
            "now": self.now(),
            "billed": dict(self.billed),
            "usage": {m: {k: dict(v) for k, v in d.items()} for m, d in self.usage.items()},
            "limited": self.limited,
            "limited_at": self.limited_at[-10_000:],
            "admitted": self.admitted[-200_000:],
            "calls": dict(self.calls),
            "batches": {j.id: j.status for j in self.jobs.values()},
            "config": self.config,
        }


# the loopback server's key: its /_control and /_reset handlers serve this State as they do its own
STATE: web.AppKey[State] = LOOPBACK_STATE  # type: ignore[assignment]
SESSION = web.AppKey("session", ClientSession)


def _openai_error(status: int, message: str, code: str, param: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param}}
    body["error"]["code"] = code
    return web.json_response(body, status=status)


def _anthropic_error(
    status: int, message: str, etype: str = "invalid_request_error"
) -> web.Response:
    return web.json_response(
        {"type": "error", "error": {"type": etype, "message": message}}, status=status
    )


async def _delay(st: State, what: str, request: web.Request | None = None) -> None:
    """Hold the call; with `request`, a client gone meanwhile means its body never arrived."""
    wait = float(st.config["delays"].get(what, 0.0))
    if wait:
        await asyncio.sleep(wait)
    if request is not None and (request.transport is None or request.transport.is_closing()):
        raise web.HTTPBadRequest(text="the client went away before its request was complete")


# ---------------------------------------------------------------------------- answering


# the request headers the backend's provider rules read (the API version)
FORWARDED = ("anthropic-version",)


def api_headers(request: web.Request) -> dict[str, str]:
    return {h: request.headers[h] for h in FORWARDED if h in request.headers}


async def answer(
    app: web.Application, api: str, body: dict[str, Any], mode: str, headers: dict[str, str]
) -> tuple[int, Any]:
    """Ask the backend; account usage (with prompt caching) and billing. (status, body)."""
    st = app[STATE]
    backend = st.config["backend"]
    if not backend:
        raise web.HTTPInternalServerError(text="batch_server: no backend configured")
    url = backend.rstrip("/") + ONLINE_PATH[api]
    async with app[SESSION].post(url, json=body, headers=headers) as resp:
        status = resp.status
        data = await resp.json(content_type=None)
    if status != 200 or not isinstance(data, dict):
        return status, data
    model = str(body.get("model", ""))
    use = st.usage[mode][model]
    use["requests"] += 1
    u = data.setdefault("usage", {})
    if api == "openai":
        total = int(u.get("prompt_tokens") or 0)
        cached = st.cache.openai(model, openai_prompt(body)) if st.config["prefix_cache"] else 0
        cached = min(cached, total)
        u["prompt_tokens_details"] = {"cached_tokens": cached}
        out = int(u.get("completion_tokens") or 0)
        use["input"] += total
        use["cached_input"] += cached
    else:
        total = int(u.get("input_tokens") or 0)
        read = written = 0
        if st.config["prefix_cache"]:
            read, written = st.cache.anthropic(model, anthropic_cached_prefix(body))
            read, written = min(read, total), min(written, total - min(read, total))
        u["input_tokens"] = total - read - written
        u["cache_read_input_tokens"] = read
        u["cache_creation_input_tokens"] = written
        out = int(u.get("output_tokens") or 0)
        use["input"] += total
        use["cached_input"] += read
        use["cache_write"] += written
    use["output"] += out
    st.billed[body_key(body)] += 1
    return status, data


async def online(request: web.Request, api: str) -> web.Response:
    st = request.app[STATE]
    body = await request.json()
    if st.limit is not None:
        max_out = body.get("max_completion_tokens") or body.get("max_tokens") or 0
        prompt = openai_prompt(body) if api == "openai" else _anthropic_prompt(body)
        charge = len(prompt) // CHARS_PER_TOKEN + int(max_out)
        wait = st.limit.admit(charge)
        if wait > 0:
            st.limited += 1
            st.limited_at.append((time.time(), charge, wait))
            msg = "Rate limit reached; please retry later."
            resp = (
                _anthropic_error(429, msg, "rate_limit_error")
                if api == "anthropic"
                else _openai_error(429, msg, "rate_limit_exceeded")
            )
            resp.headers.update(st.limit.headers(api, retry_after=wait))
            return resp
        st.admitted.append((time.time(), charge))
    status, data = await answer(request.app, api, body, "online", api_headers(request))
    resp = web.json_response(data, status=status)
    if st.limit is not None:
        resp.headers.update(st.limit.headers(api))
    return resp


def _anthropic_prompt(body: dict[str, Any]) -> str:
    system = _text(body.get("system"))
    return system + "".join(_text(m.get("content")) for m in body.get("messages", ()))


async def chat_completions(request: web.Request) -> web.Response:
    return await online(request, "openai")


async def messages(request: web.Request) -> web.Response:
    return await online(request, "anthropic")


# ---------------------------------------------------------------------------- batches: the clock


async def _answer_line(app: web.Application, job: Job, line: Line) -> None:
    try:
        status, data = await answer(app, job.api, line.body, "batch", job.headers)
    except Exception as exc:  # the backend failed: a server error for this line
        status, data = 500, {"error": {"message": f"backend failed: {exc}", "type": "server_error"}}
    line.result = ("answer", status, data)
    job.in_flight -= 1


def _validate_openai(st: State, job: Job) -> list[dict[str, Any]]:
    """The errors that fail an OpenAI batch at validation (each names its line)."""
    if st.config["fail_validation"]:
        return [{"code": "invalid_request", "line": 1, "message": st.config["fail_validation"]}]
    raw = st.contents.get(job.input_file_id or "", b"")
    if len(raw) > OPENAI_MAX_BYTES:
        return [
            {"code": "file_too_large", "line": None, "message": "The input file exceeds 200 MB."}
        ]
    errors: list[dict[str, Any]] = []
    ids: set[str] = set()
    model = None
    # JSONL lines end at "\n" only (str.splitlines would also cut at U+2028 inside a string)
    for n, line in enumerate(raw.split(b"\n"), 1):
        text = line.decode("utf-8", "replace")
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
            cid, url, body = obj["custom_id"], obj["url"], obj["body"]
        except (ValueError, KeyError, TypeError) as exc:
            errors.append({"code": "invalid_json_line", "line": n, "message": f"bad line: {exc}"})
            continue
        if obj.get("method") != "POST" or url != job.endpoint:
            msg = f"The url {url!r} does not match the batch endpoint {job.endpoint!r}."
            errors.append({"code": "mismatched_endpoint", "line": n, "message": msg})
        if cid in ids:
            msg = f"The custom_id {cid!r} is used by another line."
            errors.append({"code": "duplicate_custom_id", "line": n, "message": msg})
        ids.add(cid)
        model = model or body.get("model")
        if body.get("model") != model:
            msg = f"The model {body.get('model')!r} differs from the batch's model {model!r}."
            errors.append({"code": "model_mismatch", "line": n, "message": msg})
        job.lines.append(Line(cid, body))
    if len(job.lines) > OPENAI_MAX_LINES:
        msg = f"The batch has {len(job.lines)} requests; the limit is {OPENAI_MAX_LINES}."
        errors.append({"code": "too_many_requests", "line": None, "message": msg})
    if not job.lines and not errors:
        errors.append({"code": "empty_file", "line": None, "message": "The input file is empty."})
    return [{**e, "param": None} for e in errors]


def _finish_openai_files(st: State, job: Job) -> None:
    out: list[str] = []
    err: list[str] = []
    gone = {
        "expired": (
            "batch_expired",
            "This request could not be executed before the completion window expired.",
        ),
        "cancelled": (
            "batch_cancelled",
            "This request was not executed because the batch was cancelled.",
        ),
    }
    for ln in job.lines:
        rid = f"batch_req_{uuid.uuid4().hex[:24]}"
        if ln.result is None or ln.result[0] != "answer":
            code, msg = gone[ln.result[0] if ln.result else job.ended_as]
            line = {"id": rid, "custom_id": ln.custom_id, "response": None}
            line["error"] = {"code": code, "message": msg}
            err.append(json.dumps(line))
            continue
        _, status, data = ln.result
        response = {"status_code": status, "request_id": f"req_{uuid.uuid4().hex}", "body": data}
        line = {"id": rid, "custom_id": ln.custom_id, "response": response, "error": None}
        (out if status == 200 else err).append(json.dumps(line))
    for lines, attr in ((out, "output_file_id"), (err, "error_file_id")):
        if lines:
            fid = _store_file(st, ("\n".join(lines) + "\n").encode(), "batch_output", job.id)
            setattr(job, attr, fid)


def _store_file(st: State, data: bytes, purpose: str, filename: str) -> str:
    fid = f"file-{uuid.uuid4().hex[:24]}"
    st.files[fid] = {
        "id": fid,
        "object": "file",
        "bytes": len(data),
        "created_at": int(st.now()),
        "filename": filename,
        "purpose": purpose,
        "status": "processed",
        "status_details": None,
    }
    st.contents[fid] = data
    return fid


def _end(st: State, job: Job, how: str, now: float) -> None:
    """The batch is over: `how` = completed | expired | cancelled; unfinished lines become how."""
    job.ended_as = how
    for ln in job.lines:
        if ln.result is None:
            ln.result = (how,)
    job.status = how
    job.at[how] = now
    if job.api == "openai":
        _finish_openai_files(st, job)


def tick(app: web.Application) -> None:
    """Move every open batch along the clock; start the lines whose time has come."""
    st = app[STATE]
    cfg = st.config
    now = st.now()
    for job in list(st.jobs.values()):
        if job.status == "validating" and now >= job.created + cfg["validate_s"]:
            job.errors = _validate_openai(st, job) if job.api == "openai" else []
            if job.errors:
                job.lines.clear()
                job.status, job.at["failed"] = "failed", now
            else:
                job.status, job.at["in_progress"] = "in_progress", job.created + cfg["validate_s"]
        expires = job.created + cfg["window_s"]
        if job.status == "in_progress":
            elapsed = min(now, expires) - job.at["in_progress"]
            share = 1.0 if cfg["process_s"] <= 0 else min(1.0, elapsed / cfg["process_s"])
            due = int(len(job.lines) * share + 1e-9)
            for ln in job.lines[:due]:
                if not ln.started and job.in_flight < cfg["line_concurrency"]:
                    ln.started = True
                    job.in_flight += 1
                    asyncio.get_running_loop().create_task(_answer_line(app, job, ln))
            if now >= expires:
                job.status = "expiring"
            elif due == len(job.lines) and all(ln.result for ln in job.lines):
                job.status, job.at["finalizing"] = "finalizing", now
        if job.status in ("expiring", "cancelling") and job.in_flight == 0:
            # lines in flight are not interrupted: the rest never start
            for ln in job.lines:
                ln.started = True
            if job.status == "expiring":
                _end(st, job, "expired", now)
            elif now >= job.at["cancelling"] + cfg["cancel_s"]:
                _end(st, job, "cancelled", now)
        if job.status == "finalizing" and now >= job.at["finalizing"] + cfg["finalize_s"]:
            _end(st, job, "completed", now)


async def driver(app: web.Application) -> None:
    while True:
        tick(app)
        await asyncio.sleep(0.02)


# ---------------------------------------------------------------------------- OpenAI


def _openai_batch(st: State, job: Job) -> dict[str, Any]:
    c = job.counts()
    a = job.at
    status = {"expiring": "in_progress"}.get(job.status, job.status)
    return {
        "id": job.id,
        "object": "batch",
        "endpoint": job.endpoint,
        "errors": {"object": "list", "data": job.errors} if job.errors else None,
        "input_file_id": job.input_file_id,
        "completion_window": "24h",
        "status": status,
        "output_file_id": job.output_file_id,
        "error_file_id": job.error_file_id,
        "created_at": int(job.created),
        "in_progress_at": _int(a.get("in_progress")),
        "expires_at": int(job.created + st.config["window_s"]),
        "finalizing_at": _int(a.get("finalizing")),
        "completed_at": _int(a.get("completed")),
        "failed_at": _int(a.get("failed")),
        "expired_at": _int(a.get("expired")),
        "cancelling_at": _int(a.get("cancelling")),
        "cancelled_at": _int(a.get("cancelled")),
        "request_counts": {
            "total": len(job.lines),
            "completed": c["succeeded"],
            "failed": len(job.lines) - c["succeeded"] - c["processing"],
        },
        "metadata": job.metadata,
    }


async def upload_file(request: web.Request) -> web.Response:
    st = request.app[STATE]
    st.calls["upload"] += 1
    form = await request.post()
    purpose = form.get("purpose")
    upload = form.get("file")
    if purpose != "batch" or not isinstance(upload, web.FileField):
        return _openai_error(400, "Expected a file with purpose 'batch'.", "invalid_request")
    data = upload.file.read()
    fid = _store_file(st, data, "batch", upload.filename)
    await _delay(st, "upload")
    return web.json_response(st.files[fid])


def _file(request: web.Request) -> str:
    fid = request.match_info["file_id"]
    if fid not in request.app[STATE].files:
        raise web.HTTPNotFound(
            text=json.dumps(
                {
                    "error": {
                        "message": f"No such File object: {fid}",
                        "type": "invalid_request_error",
                        "param": "id",
                        "code": None,
                    }
                }
            ),
            content_type="application/json",
        )
    return fid


async def get_file(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].files[_file(request)])


async def file_content(request: web.Request) -> web.Response:
    st = request.app[STATE]
    st.calls["results"] += 1
    await _delay(st, "results")
    return web.Response(body=st.contents[_file(request)], content_type="application/octet-stream")


async def delete_file(request: web.Request) -> web.Response:
    st = request.app[STATE]
    fid = _file(request)
    del st.files[fid], st.contents[fid]
    return web.json_response({"id": fid, "object": "file", "deleted": True})


async def _creating(request: web.Request) -> tuple[State, bytes]:
    """A create's body, once it has all arrived (and the test's window to kill has passed)."""
    st = request.app[STATE]
    raw = await request.read()
    st.calls["create_started"] += 1
    await _delay(st, "before_create", request)
    st.calls["create"] += 1
    return st, raw


async def create_batch(request: web.Request) -> web.Response:
    st, raw = await _creating(request)
    body = json.loads(raw)
    fid = body.get("input_file_id")
    if fid not in st.files:
        return _openai_error(400, f"No such File object: {fid}", "invalid_request", "input_file_id")
    if body.get("completion_window") != "24h":
        return _openai_error(400, "completion_window must be '24h'.", "invalid_request")
    if body.get("endpoint") not in ("/v1/chat/completions", "/v1/responses", "/v1/embeddings"):
        return _openai_error(400, "Unsupported endpoint.", "invalid_request", "endpoint")
    meta = body.get("metadata")
    if meta is not None and (
        len(meta) > 16 or any(len(k) > 64 or len(str(v)) > 512 for k, v in meta.items())
    ):
        return _openai_error(
            400,
            "metadata: at most 16 pairs, keys <= 64, values <= 512 chars.",
            "invalid_request",
            "metadata",
        )
    job = Job(
        "openai",
        f"batch_{uuid.uuid4().hex[:24]}",
        st.now(),
        [],
        "validating",
        endpoint=body["endpoint"],
        input_file_id=fid,
        metadata=meta,
    )
    st.jobs[job.id] = job
    await _delay(st, "after_create")
    return web.json_response(_openai_batch(st, job))


def _job(request: web.Request, api: str) -> Job:
    st = request.app[STATE]
    bid = request.match_info["batch_id"]
    job = st.jobs.get(bid)
    if job is None or job.api != api:
        msg = f"No batch with id {bid!r}."
        raise web.HTTPNotFound(
            text=json.dumps(
                {"type": "error", "error": {"type": "not_found_error", "message": msg}}
                if api == "anthropic"
                else {
                    "error": {
                        "message": msg,
                        "type": "invalid_request_error",
                        "param": None,
                        "code": None,
                    }
                }
            ),
            content_type="application/json",
        )
    return job


async def get_batch(request: web.Request) -> web.Response:
    tick(request.app)
    return web.json_response(_openai_batch(request.app[STATE], _job(request, "openai")))


async def cancel_batch(request: web.Request) -> web.Response:
    st = request.app[STATE]
    job = _job(request, "openai")
    if job.status in ("validating", "in_progress", "finalizing"):
        job.status, job.at["cancelling"] = "cancelling", st.now()
    elif job.status not in ("cancelling", "expiring"):
        return _openai_error(400, f"Cannot cancel a batch that is {job.status}.", "invalid_request")
    return web.json_response(_openai_batch(st, job))


def _page(
    jobs: list[Job], request: web.Request, after_key: str, before_key: str | None
) -> tuple[list[Job], bool]:
    q = request.query
    limit = max(1, min(int(q.get("limit", 20)), 1000))
    newest = sorted(jobs, key=lambda j: j.created, reverse=True)
    ids = [j.id for j in newest]
    if q.get(after_key) in ids:
        newest = newest[ids.index(q[after_key]) + 1 :]
    elif before_key and q.get(before_key) in ids:
        newest = newest[: ids.index(q[before_key])][-limit:]
    return newest[:limit], len(newest) > limit


async def list_batches(request: web.Request) -> web.Response:
    tick(request.app)
    st = request.app[STATE]
    page, more = _page([j for j in st.jobs.values() if j.api == "openai"], request, "after", None)
    data = [_openai_batch(st, j) for j in page]
    return web.json_response(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": more,
        }
    )


# ---------------------------------------------------------------------------- Anthropic


def _anthropic_batch(request: web.Request, job: Job) -> dict[str, Any]:
    st = request.app[STATE]
    c = job.counts()
    ended = job.status in ("completed", "expired", "cancelled")
    status = "ended" if ended else "canceling" if job.status == "cancelling" else "in_progress"
    base = f"{request.scheme}://{request.host}"
    return {
        "id": job.id,
        "type": "message_batch",
        "processing_status": status,
        "request_counts": {
            "processing": c["processing"],
            "succeeded": c["succeeded"],
            "errored": c["errored"],
            "canceled": c["cancelled"],
            "expired": c["expired"],
        },
        "ended_at": _iso(job.at.get(job.status)) if ended else None,
        "created_at": _iso(job.created),
        "expires_at": _iso(job.created + st.config["window_s"]),
        "archived_at": None,
        "cancel_initiated_at": _iso(job.at.get("cancelling")),
        "results_url": f"{base}/v1/messages/batches/{job.id}/results" if ended else None,
    }


async def create_message_batch(request: web.Request) -> web.Response:
    st, raw = await _creating(request)
    if len(raw) > ANTHROPIC_MAX_BYTES:
        return _anthropic_error(
            413, "Request exceeds the maximum size of 256 MB.", "request_too_large"
        )
    body = json.loads(raw)
    reqs = body.get("requests")
    if not isinstance(reqs, list) or not reqs:
        return _anthropic_error(400, "requests: must be a non-empty list")
    if len(reqs) > ANTHROPIC_MAX_REQUESTS:
        return _anthropic_error(
            400, f"requests: at most {ANTHROPIC_MAX_REQUESTS} requests in a batch"
        )
    if st.config["fail_validation"]:
        return _anthropic_error(400, f"requests.0: {st.config['fail_validation']}")
    seen: set[str] = set()
    lines = []
    for i, r in enumerate(reqs):
        cid = r.get("custom_id") if isinstance(r, dict) else None
        if not isinstance(cid, str) or not CUSTOM_ID.match(cid):
            return _anthropic_error(
                400,
                f"requests.{i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'",
            )
        if cid in seen:
            return _anthropic_error(
                400,
                f"requests.{i}.custom_id: duplicate custom_id {cid!r}; each must be unique within the batch",
            )
        seen.add(cid)
        params = r.get("params")
        if not isinstance(params, dict) or "model" not in params or "max_tokens" not in params:
            return _anthropic_error(400, f"requests.{i}.params: model and max_tokens are required")
        lines.append(Line(cid, params))
    now = st.now()
    job = Job("anthropic", f"msgbatch_{uuid.uuid4().hex[:24]}", now, lines, "in_progress")
    job.headers = api_headers(request)
    job.at["in_progress"] = now
    st.jobs[job.id] = job
    await _delay(st, "after_create")
    return web.json_response(_anthropic_batch(request, job))


async def get_message_batch(request: web.Request) -> web.Response:
    tick(request.app)
    return web.json_response(_anthropic_batch(request, _job(request, "anthropic")))


async def cancel_message_batch(request: web.Request) -> web.Response:
    st = request.app[STATE]
    job = _job(request, "anthropic")
    if job.status == "in_progress":
        job.status, job.at["cancelling"] = "cancelling", st.now()
    return web.json_response(_anthropic_batch(request, job))


async def list_message_batches(request: web.Request) -> web.Response:
    tick(request.app)
    st = request.app[STATE]
    jobs = [j for j in st.jobs.values() if j.api == "anthropic"]
    page, more = _page(jobs, request, "after_id", "before_id")
    data = [_anthropic_batch(request, j) for j in page]
    return web.json_response(
        {
            "data": data,
            "has_more": more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
    )


async def message_batch_results(request: web.Request) -> web.Response:
    st = request.app[STATE]
    job = _job(request, "anthropic")
    st.calls["results"] += 1
    await _delay(st, "results")
    if job.status not in ("completed", "expired", "cancelled"):
        return _anthropic_error(
            400, f"Message Batch {job.id} has not yet ended; results are not available."
        )
    out = []
    for ln in job.lines:
        assert ln.result is not None
        kind = ln.result[0]
        if kind == "answer" and ln.result[1] == 200:
            result: dict[str, Any] = {"type": "succeeded", "message": ln.result[2]}
        elif kind == "answer":
            err = ln.result[2] if isinstance(ln.result[2], dict) else {}
            inner = (
                err.get("error")
                if isinstance(err.get("error"), dict)
                else {
                    "type": "api_error",
                    "message": str(err)[:500],
                }
            )
            result = {"type": "errored", "error": {"type": "error", "error": inner}}
        else:
            result = {"type": "canceled" if kind == "cancelled" else "expired"}
        out.append(json.dumps({"custom_id": ln.custom_id, "result": result}))
    return web.Response(body=("\n".join(out) + "\n").encode(), content_type="application/binary")


# ---------------------------------------------------------------------------- controls


async def clock(request: web.Request) -> web.Response:
    st = request.app[STATE]
    st.advance(float((await request.json()).get("advance", 0.0)))
    tick(request.app)
    return web.json_response({"now": st.now()})


async def stats(request: web.Request) -> web.Response:
    tick(request.app)
    return web.json_response(request.app[STATE].snapshot())


def make_app(config: dict[str, Any]) -> web.Application:
    app = web.Application(client_max_size=ANTHROPIC_MAX_BYTES + (1 << 20))
    app[STATE] = State(config)
    r = app.router
    r.add_post("/v1/chat/completions", chat_completions)
    r.add_post("/v1/messages", messages)
    r.add_post("/v1/files", upload_file)
    r.add_get("/v1/files/{file_id}", get_file)
    r.add_delete("/v1/files/{file_id}", delete_file)
    r.add_get("/v1/files/{file_id}/content", file_content)
    r.add_post("/v1/batches", create_batch)
    r.add_get("/v1/batches", list_batches)
    r.add_get("/v1/batches/{batch_id}", get_batch)
    r.add_post("/v1/batches/{batch_id}/cancel", cancel_batch)
    r.add_post("/v1/messages/batches", create_message_batch)
    r.add_get("/v1/messages/batches", list_message_batches)
    r.add_get("/v1/messages/batches/{batch_id}", get_message_batch)
    r.add_post("/v1/messages/batches/{batch_id}/cancel", cancel_message_batch)
    r.add_get("/v1/messages/batches/{batch_id}/results", message_batch_results)
    r.add_post("/_control", control)
    r.add_post("/_reset", reset)
    r.add_post("/_clock", clock)
    r.add_get("/_stats", stats)

    async def lifecycle(app: web.Application) -> Any:
        app[SESSION] = ClientSession(
            connector=TCPConnector(limit=256), timeout=ClientTimeout(total=120)
        )
        task = asyncio.get_running_loop().create_task(driver(app))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await app[SESSION].close()

    app.cleanup_ctx.append(lifecycle)
    return app


def serve(config: dict[str, Any], host: str, port: int) -> None:
    """Print the port, then serve until SIGTERM/SIGINT."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(
        4096
    )  # connections queue from now on: a client may call as soon as it reads the port
    print(sock.getsockname()[1], flush=True)
    web.run_app(make_app(config), sock=sock, print=None, access_log=None, shutdown_timeout=0.5)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--backend", required=True, help="base URL of the answering server")
    p.add_argument("--config-json", default=None, help="controls as a JSON object")
    a = p.parse_args(argv)
    config = {"backend": a.backend, **json.loads(a.config_json or "{}")}
    State({}).configure(config)  # fail fast on unknown controls
    serve(config, a.host, a.port)


# ---------------------------------------------------------------------------- client handle


class BatchServer(LoopbackServer):
    """A running batch server process: the loopback handle's controls, plus its clock."""

    def advance(self, seconds: float) -> float:
        return float(self._call("/_clock", {"advance": seconds})["now"])


def start_batch_server(backend: str, **options: Any) -> BatchServer:
    """Start the server in its own process, answering from `backend`; wait for its port."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--port", "0", "--backend", backend]
    if options:
        cmd += ["--config-json", json.dumps(options)]
    # run as a script: `support.` (the loopback server it reuses) is found from tests/
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        raise RuntimeError(f"batch server failed to start (got {line!r})")
    return BatchServer(proc, int(line))


@contextlib.contextmanager
def running_batch_server(backend: str, **options: Any) -> Iterator[BatchServer]:
    srv = start_batch_server(backend, **options)
    try:
        yield srv
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
