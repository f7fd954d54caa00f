"""The HTTP judge: limits, the retry loop, stats and cost, for every backend that speaks HTTP.

A backend (judges/providers/) subclasses `HttpJudge` and writes its body and its parse; this
class sends them over either transport (the SDK's raw `post()`, or `LeanSession`), retries what
`status.classify_status` calls transient, stops on what it calls fatal, and stops too when the
API rejects the same request shape over and over (`status.RejectionStreak`)."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Self

from ..base import ChatRequest, Completion, JudgeIdentity, JudgeOptions, JudgeStats, Usage
from ..errors import JudgeSetupError
from ..limits import Limiter, TransientError, estimate_tokens, retry_policy
from ..pacing import Pacer
from ..pricing import FREE, rates_of
from .status import (
    RejectionStreak,
    classify_status,
    connection_failure,
    error_message,
    parse_retry_after,
)
from .transport import (
    SDK_HTTP,
    LeanSession,
    error_body,
    parse_body,
    sdk_http_client,
    without_telemetry,
)

log = logging.getLogger("judges")
# the status and headers of the attempt this task is making (None, None: no response)
_RESPONSE: contextvars.ContextVar[tuple[int | None, Mapping[str, str] | None]] = (
    contextvars.ContextVar("rmb_http_response", default=(None, None))
)


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
        # looked up once (a server on this machine is FREE; None: no price is known)
        self.rates = rates_of(self.identity)
        self.streak = RejectionStreak()
        self._probe: asyncio.Lock | None = None  # one request at a time while rejections last
        self.transport = choose_transport(self.provider, options, self.hosted)
        self._base_url, self._sdk_http = base_url, sdk_http
        self.client = None
        self.lean = (
            LeanSession(base_url, {**self.auth_headers(api_key), **self.api_headers()}, options)
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

    def api_headers(self) -> dict[str, str]:
        """Headers both transports send besides auth (e.g. the API version)."""
        return {}

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
            default_headers={**without_telemetry(sdk), **self.api_headers()},
            http_client=sdk_http_client(sdk, self.options, self._sdk_http),
        )
        return self.client

    async def _send(self, request: ChatRequest) -> Completion:
        body = self.body(request)
        if self.lean is not None:
            status, raw, headers = await self.lean.post(self.path, body)
            _RESPONSE.set((status, headers))
            if status >= 300:
                return self.status_failure(status, error_body(raw), "(no error body)", headers)
            return parse_body(raw, self.parse)
        client = self.client or self._connect()
        sdk = self.sdk()[0]
        import httpx2  # the SDKs' HTTP library (loaded with them): the lean path never needs it

        try:
            resp = await client.post(self.path, body=body, cast_to=httpx2.Response)
        except sdk.APIStatusError as exc:
            _RESPONSE.set((exc.status_code, exc.response.headers))
            return self.status_failure(exc.status_code, exc.body, exc.message, exc.response.headers)
        except sdk.APIConnectionError as exc:  # timeouts included
            raise TransientError(connection_failure(exc, self.options.timeout_s)) from None
        _RESPONSE.set((resp.status_code, resp.headers))
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
        self.pacer = Pacer(o.concurrency)
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
            self.streak = RejectionStreak()  # a new run starts with a clean record
        self._loop = loop
        self._probe = asyncio.Lock()

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
        message, code, param = error_message(body, fallback)
        return classify_status(
            status,
            self.redact(message),
            code,
            parse_retry_after(headers),
            who=self.identity.label(),
            key_hint=self.key_hint,
            param=param,
        )

    def check(self, request: ChatRequest) -> None:
        """Reject, before any request, what this backend can never do."""

    def _on_retry(self, state: Any) -> None:
        self.stats.retries += 1
        exc = state.outcome.exception() if state.outcome else None
        log.info("%s: retry %d after %s", self.identity.label(), state.attempt_number, exc)

    async def _attempt(self, request: ChatRequest, prompt_tokens: int) -> Completion:
        # the pacer (judges/pacing.py) reads this attempt's status and rate-limit headers
        ticket = await self.pacer.acquire(prompt_tokens + request.max_tokens)
        _RESPONSE.set((None, None))
        try:
            async with self.limiter.slot(prompt_tokens):
                # a deadline on the whole attempt, on every transport: the SDKs' timeout is per
                # read, so a body dripped a byte at a time kept a --timeout 3 request for minutes
                try:
                    async with asyncio.timeout(self.options.timeout_s):
                        return await self._send(request)
                except TimeoutError:
                    raise TransientError(f"no answer within {self.options.timeout_s:g} s") from None
        finally:
            status, headers = _RESPONSE.get()
            self.pacer.release(ticket, status, headers, parse_retry_after(headers))

    async def complete(self, request: ChatRequest) -> Completion:
        self.check(request)
        self._on_this_loop()
        if self.streak.rejecting and self._probe is not None:
            # the API rejected the last request: send one at a time until it answers again,
            # so a shape it rejects for every item stops the run within a few requests
            async with self._probe:
                self.streak.check()  # stopped while this one waited: it is never sent
                return await self._complete(request)
        return await self._complete(request)

    async def _complete(self, request: ChatRequest) -> Completion:
        self.stats.requests += 1
        start = time.perf_counter()
        # what a token budget charges: ours (--tpm) or the provider's (the pacer's)
        prompt_tokens = estimate_tokens(sum(len(m.content) for m in request.messages))
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
        # the answer too, not only errors: a server that echoes the key in its text would put
        # it in the cache and every report
        completion = replace(
            completion,
            text=self.redact(completion.text),
            reasoning=None if completion.reasoning is None else self.redact(completion.reasoning),
            latency_s=time.perf_counter() - start,
            attempts=attempts,
            created_at=time.time(),
            error=None if completion.error is None else self.redact(completion.error),
        )
        self._account(completion.usage, completion)
        self.streak.see(completion, self.identity.label())
        return completion

    def _account(self, usage: Usage, completion: Completion) -> None:
        self.limiter.charge_output(usage.output_tokens)
        st = self.stats
        st.input_tokens += usage.input_tokens
        st.output_tokens += usage.output_tokens
        if self.rates is None:
            st.cost_unknown = True
        elif self.rates is not FREE:
            st.cost_usd += self.rates.cost(usage)
        if completion.finish_reason in ("error", "refused"):
            st.errors += 1
            log.info("%s: %s", self.identity.label(), completion.error)
