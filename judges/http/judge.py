"""What every HTTP judge shares: limits, the retry loop, stats, and how an HTTP failure is read.

A backend subclasses `HttpJudge` and implements `_send(request) -> Completion`, raising
`TransientError` for what is worth retrying and `JudgeSetupError` for what stops the run;
`complete()` does the rest. `classify_status` turns an HTTP error into one of three outcomes:
stop the run (bad key, unknown model, bad parameter, no quota), retry (429, 408/409, 5xx), or
answer with a marked completion (the judge refused: context too long, content filter); both
transports of a backend (its SDK, or `LeanSession`) end in `HttpJudge.status_failure` and
`parse_body`, so they fail, retry and redact alike."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from types import ModuleType
from typing import Any, Self

import orjson

from ..base import ChatRequest, Completion, JudgeIdentity, JudgeOptions, JudgeStats, Usage
from ..errors import JudgeSetupError
from ..limits import MAX_RETRY_AFTER_S, Limiter, TransientError, estimate_tokens, retry_policy
from ..pricing import cost_usd

log = logging.getLogger("judges")

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
    r"unsupported (?:parameter|value)|not supported|unrecognized|unknown (?:param|field)|extra (?:inputs|fields)",
    re.I,
)


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
    root = exc
    while root.__cause__ is not None:
        root = root.__cause__
    if isinstance(root, TimeoutError) or "timeout" in type(root).__name__.lower():
        return f"no answer within {timeout_s:g} s"
    return f"connection failed: {type(root).__name__}: {root}"


def error_message(body: object, fallback: str) -> tuple[str, str | None]:
    """(message, code) from an OpenAI- or Anthropic-shaped error body."""
    if isinstance(body, Mapping):
        err = body.get("error", body)
        if isinstance(err, Mapping):
            msg = err.get("message")
            code = err.get("code") or err.get("type")
            return (str(msg) if msg else fallback), (str(code) if code else None)
        if isinstance(err, str):
            return err, None
    if isinstance(body, str) and body.strip():
        return body.strip()[:500], None
    return fallback, None


def classify_status(
    status: int,
    message: str,
    code: str | None,
    retry_after: float | None,
    *,
    who: str,
    key_hint: str,
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
    if status == 429 and ("insufficient_quota" in code or "quota" in message.lower()):
        raise JudgeSetupError(f"{who}: out of quota ({text}). Check the account's billing.")
    if status in (400, 413, 422):
        if "context" in code or _CONTEXT.search(message) or status == 413:
            return Completion(text="", finish_reason="refused", error=f"context too long: {text}")
        if "content_filter" in code or _FILTER.search(message):
            return Completion(text="", finish_reason="refused", error=f"content filter: {text}")
        if _PARAM.search(message):
            raise JudgeSetupError(
                f"{who}: the server does not accept a request option ({text}). "
                "Change the judge options (temperature, seed, logprobs, JSON mode)."
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
    return Completion(text="", finish_reason="error", error=text)


# the SDKs' HTTP client: "aiohttp" (the default: measured faster, see bench/transport.py) or
# "httpx" (the SDKs' own)
SDK_HTTP = "aiohttp"


def sdk_http_client(sdk: ModuleType, options: JudgeOptions, transport: str) -> Any:
    """The `openai`/`anthropic` SDK's HTTP client, sized so that every request in flight keeps
    its connection alive between requests."""
    import httpx2  # ~13 MB: only the SDK transports need it, never the lean one

    n = options.concurrency + 4
    cls = sdk.DefaultAioHttpClient if transport == "aiohttp" else sdk.DefaultAsyncHttpxClient
    return cls(
        limits=httpx2.Limits(max_connections=n, max_keepalive_connections=n),
        timeout=httpx2.Timeout(options.timeout_s, connect=min(10.0, options.timeout_s)),
    )


# SDK telemetry headers (`X-Stainless-*`): no server needs them; each costs header handling on
# every request. `Omit()` in default_headers is the SDKs' documented way to drop a header.
TELEMETRY_HEADERS = (
    "X-Stainless-Lang",
    "X-Stainless-Package-Version",
    "X-Stainless-OS",
    "X-Stainless-Arch",
    "X-Stainless-Runtime",
    "X-Stainless-Runtime-Version",
    "X-Stainless-Async",
)


def without_telemetry(sdk: ModuleType) -> Any:
    return {h: sdk.Omit() for h in TELEMETRY_HEADERS}


class MemoURL:
    """Mixin for an SDK client class: a judge posts to one path, so the SDK's per-request URL
    merge (a full URL parse, ~12% of the client's Python calls per request) is done once."""

    def _prepare_url(self, url: str) -> Any:
        memo: dict[str, Any] = self.__dict__.setdefault("_rmb_url_memo", {})
        if url not in memo:
            memo[url] = super()._prepare_url(url)  # type: ignore[misc]
        return memo[url]


class LeanSession:
    """The lean transport: one shared `aiohttp.ClientSession` per judge (keep-alive pool sized to
    the concurrency), JSON bodies by orjson. Per request it costs about a quarter of the SDK's
    client CPU (bench/throughput.py), which is what caps a 2-core machine against a fast local
    server. aiohttp is imported at the first request: a cached rerun never sends."""

    def __init__(self, base_url: str, headers: Mapping[str, str], options: JudgeOptions) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Content-Type": "application/json", **headers}
        self.options = options
        self._session: Any = None
        self._urls: dict[str, Any] = {}
        self._errors: tuple[type[BaseException], ...] = ()  # aiohttp's, set by _open

    def _open(self) -> Any:
        import aiohttp

        n = self.options.concurrency + 4
        t = self.options.timeout_s
        self._session = aiohttp.ClientSession(
            headers=self.headers,
            connector=aiohttp.TCPConnector(limit=n, limit_per_host=n),
            timeout=aiohttp.ClientTimeout(total=t, connect=min(10.0, t)),
            skip_auto_headers=("User-Agent",),
            cookie_jar=aiohttp.DummyCookieJar(),  # a judge keeps no cookies: skip the jar
        )
        self._errors = (aiohttp.ClientError, TimeoutError)
        return self._session

    async def post(self, path: str, body: Any) -> tuple[int, bytes, Mapping[str, str]]:
        """(status, raw body, headers); a connection failure or timeout is a TransientError."""
        session = self._session or self._open()
        url = self._urls.get(path)
        if url is None:  # parsed once: yarl's URL parse is a measurable share per request
            import yarl

            url = self._urls[path] = yarl.URL(self.base_url + path)
        try:
            async with session.post(url, data=orjson.dumps(body)) as resp:
                return resp.status, await resp.read(), resp.headers
        except self._errors as exc:
            raise TransientError(connection_failure(exc, self.options.timeout_s)) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def forget(self) -> None:
        """Let go of a session whose event loop is gone (it cannot be closed there); the next
        request opens a new one."""
        if self._session is not None:
            self._session.detach()  # marks it closed without its loop
            self._session = None


def error_body(raw: bytes) -> object:
    """An error response's body: its JSON when it is JSON, else its text."""
    try:
        return orjson.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def parse_body(raw: bytes | str, parse: Callable[[Any], Completion]) -> Completion:
    """A success body -> Completion; a garbled one (bad JSON, wrong shape) is worth a retry."""
    try:
        return parse(orjson.loads(raw))
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise TransientError(f"malformed response body ({type(exc).__name__}: {exc})") from None


# what a server run on this machine accepts as a key when none is set
PLACEHOLDER_KEY = "unused"


def resolve_key(
    provider: str, default_env: str, options: JudgeOptions, *, hosted: bool
) -> tuple[str, str]:
    """(key, where it came from) from `options.api_key_env` or the provider's variable. A
    hosted API needs one; a custom server (loopback, vLLM, llama.cpp) may go without."""
    env = options.api_key_env or default_env
    key = os.environ.get(env, "").strip()
    if key:
        return key, f"${env}"
    if hosted or options.api_key_env:
        where = "the hosted API" if hosted else options.base_url
        raise JudgeSetupError(
            f"{provider}: no API key for {where}: set {env} in the environment"
            + ("" if options.api_key_env else " (or name another variable with --api-key-env)")
        )
    return PLACEHOLDER_KEY, "the server's key (none was set)"


TRANSPORTS = ("sdk", "lean")


def choose_transport(provider: str, options: JudgeOptions, hosted: bool) -> str:
    """`options.transport`, else lean for a custom server (vLLM, llama.cpp, SGLang: there client
    CPU per request is what caps throughput) and the official SDK for the provider's own API
    (there rate limits cap it, and the SDK tracks the API)."""
    if options.transport is None:
        return "sdk" if hosted else "lean"
    if options.transport not in TRANSPORTS:
        raise JudgeSetupError(
            f"{provider}: unknown transport {options.transport!r}; "
            f"use one of {', '.join(TRANSPORTS)}"
        )
    return options.transport


class HttpJudge:
    """The shared half of an HTTP backend: limits, retries, errors, and both transports (the
    official SDK's raw `post()`, or `LeanSession`). A backend names its API and writes its body
    and its parse; everything else is here, so the backends fail, retry and redact alike."""

    provider: str  # "openai" | "anthropic"
    hosted_url: str  # the provider's own API (no identity base_url, SDK transport by default)
    key_env: str  # where its key is looked for by default
    example_model: str  # named in the error for a spec without a model
    path: str  # what every request posts to, under the base URL
    key_hint = "the API key environment variable"
    client: Any  # the SDK client, made at the first request (see `sdk`)

    @classmethod
    def build(cls, model: str, options: JudgeOptions, *, sdk_http: str = SDK_HTTP) -> Self:
        """The judge for `provider:model`, its key resolved (a hosted API needs one).
        `sdk_http`: the SDK's own HTTP client ("aiohttp" or "httpx", see bench/transport.py),
        used when the transport is the SDK."""
        if not model:
            raise JudgeSetupError(
                f"{cls.provider}: name a model, e.g. --judge {cls.provider}:{cls.example_model}"
            )
        hosted = cls._base_url_of(options) == cls.hosted_url
        api_key, hint = resolve_key(cls.provider, cls.key_env, options, hosted=hosted)
        return cls(model, options, api_key, hint, sdk_http)

    @classmethod
    def _base_url_of(cls, options: JudgeOptions) -> str:
        return (options.base_url or cls.hosted_url).rstrip("/")

    def __init__(
        self, model: str, options: JudgeOptions, api_key: str, key_hint: str, sdk_http: str
    ) -> None:
        base_url = self._base_url_of(options)
        self.hosted = base_url == self.hosted_url
        self.identity = JudgeIdentity(self.provider, model, "" if self.hosted else base_url)
        self.options = options
        self.stats = JudgeStats()
        self.limiter = self._new_limiter()
        self._loop: asyncio.AbstractEventLoop | None = None  # the one its parts are bound to
        self.key_hint = key_hint
        self._secret = api_key
        # a server on this machine (or a free provider) costs nothing: skip the price lookup,
        # whose URL check is measurable per request
        self._free = cost_usd(self.identity, Usage(1_000_000, 1_000_000)) == 0.0
        self.transport = choose_transport(self.provider, options, self.hosted)
        self._base_url, self._sdk_http = base_url, sdk_http
        self.client = None
        self.lean = (
            LeanSession(base_url, self.auth_headers(api_key), options)
            if self.transport == "lean"
            else None
        )

    # ------------------------------------------------------------ what a backend provides

    @staticmethod
    def sdk() -> tuple[Any, type]:
        """The SDK module and a client class over it (imported at the first SDK request)."""
        raise NotImplementedError

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """The headers the lean transport authenticates with."""
        raise NotImplementedError

    def body(self, request: ChatRequest) -> dict[str, Any]:
        raise NotImplementedError

    def parse(self, data: Any) -> Completion:
        """A success body (decoded JSON) -> Completion; raises KeyError/TypeError/IndexError/
        ValueError when the body is not one (a garbled answer, retried)."""
        raise NotImplementedError

    # ------------------------------------------------------------ sending

    def _connect(self) -> Any:
        sdk, client_class = self.sdk()
        self.client = client_class(
            base_url=self._base_url,
            api_key=self._secret,
            max_retries=0,
            timeout=self.options.timeout_s,
            default_headers=without_telemetry(sdk),
            http_client=sdk_http_client(sdk, self.options, self._sdk_http),
        )
        return self.client

    async def _send(self, request: ChatRequest) -> Completion:
        body = self.body(request)
        if self.lean is not None:
            status, raw, headers = await self.lean.post(self.path, body)
            if status >= 300:
                return self.status_failure(status, error_body(raw), "(no error body)", headers)
            return parse_body(raw, self.parse)
        client = self.client or self._connect()
        sdk = self.sdk()[0]
        import httpx2  # the SDKs' HTTP library (loaded with them): the lean path never needs it

        try:
            resp = await client.post(self.path, body=body, cast_to=httpx2.Response)
        except sdk.APIStatusError as exc:
            return self.status_failure(exc.status_code, exc.body, exc.message, exc.response.headers)
        except sdk.APIConnectionError as exc:  # timeouts included
            raise TransientError(connection_failure(exc, self.options.timeout_s)) from None
        return parse_body(resp.content, self.parse)

    async def aclose(self) -> None:
        if self._loop is not asyncio.get_running_loop():
            self._drop_clients()  # made in a loop that is gone: nothing to await there
            return
        if self.lean is not None:
            await self.lean.close()
        if self.client is not None:
            await self.client.close()
            self.client = None

    def _new_limiter(self) -> Limiter:
        o = self.options
        return Limiter(o.concurrency, o.requests_per_s, o.tokens_per_min)

    def _on_this_loop(self) -> None:
        """A judge may serve one event loop after another (`benchmark.run(judge=obj)` twice):
        what binds to a loop (the cap's semaphore, the HTTP sessions) is made afresh in a new
        one, or the second run would fail on the first's."""
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            return
        if self._loop is not None:
            self.limiter = self._new_limiter()
            self._drop_clients()
        self._loop = loop

    def _drop_clients(self) -> None:
        if self.lean is not None:
            self.lean.forget()
        self.client = None  # the SDK client is made again at the next request

    def redact(self, text: str) -> str:
        """Never let the key reach a message, a log line or a cache."""
        if self._secret and len(self._secret) >= 4:
            text = text.replace(self._secret, "[redacted]")
        return text

    def setup_error(self, message: str) -> JudgeSetupError:
        return JudgeSetupError(self.redact(message))

    def status_failure(
        self, status: int, body: object, fallback: str, headers: Mapping[str, str] | None
    ) -> Completion:
        """An HTTP error response, from either transport -> classify_status (redacted)."""
        message, code = error_message(body, fallback)
        return classify_status(
            status,
            self.redact(message),
            code,
            parse_retry_after(headers),
            who=self.identity.label(),
            key_hint=self.key_hint,
        )

    def check(self, request: ChatRequest) -> None:
        """Reject, before any request, what this backend can never do."""

    def _on_retry(self, state: Any) -> None:
        self.stats.retries += 1
        exc = state.outcome.exception() if state.outcome else None
        log.info("%s: retry %d after %s", self.identity.label(), state.attempt_number, exc)

    async def _attempt(self, request: ChatRequest, prompt_tokens: int) -> Completion:
        async with self.limiter.slot(prompt_tokens):
            return await self._send(request)

    async def complete(self, request: ChatRequest) -> Completion:
        self.check(request)
        self._on_this_loop()
        self.stats.requests += 1
        start = time.perf_counter()
        prompt_tokens = (
            estimate_tokens(sum(len(m.content) for m in request.messages))
            if self.limiter.tokens is not None
            else 0
        )
        attempts = 1
        try:
            try:
                # most requests succeed at once: only a failure pays for the retry machinery
                completion = await self._attempt(request, prompt_tokens)
            except TransientError as first:
                failed: TransientError | None = first
                policy = retry_policy(
                    self.options.max_retries, self.options.backoff_s, self._on_retry
                )
                attempts = 0
                async for attempt in policy:
                    with attempt:
                        attempts += 1
                        if failed is not None:  # replay the first failure so the policy sees it
                            replay, failed = failed, None
                            raise replay from None
                        completion = await self._attempt(request, prompt_tokens)
        except TransientError as exc:
            reason = self.redact(exc.reason)
            completion = Completion(
                text="", finish_reason="error", error=f"gave up after {attempts} attempts: {reason}"
            )
        except JudgeSetupError as exc:
            raise self.setup_error(str(exc)) from None
        completion = replace(
            completion,
            latency_s=time.perf_counter() - start,
            attempts=attempts,
            created_at=time.time(),
            error=None if completion.error is None else self.redact(completion.error),
        )
        self._account(completion.usage, completion)
        return completion

    def _account(self, usage: Usage, completion: Completion) -> None:
        self.limiter.charge_output(usage.output_tokens)
        st = self.stats
        st.input_tokens += usage.input_tokens
        st.output_tokens += usage.output_tokens
        if not self._free:
            st.cost_usd += cost_usd(self.identity, usage) or 0.0
        if completion.finish_reason in ("error", "refused"):
            st.errors += 1
            log.info("%s: %s", self.identity.label(), completion.error)
