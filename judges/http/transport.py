"""How a request travels: the official SDK's HTTP client (sized, without telemetry headers), or
the lean transport (`LeanSession`: one aiohttp session, orjson bodies); and how a body is read.

Both end in the same body parse, so a backend fails, retries and redacts alike on either. The
SDK clients are used through their public `post()`: nothing private of the SDKs is overridden
(the per-request URL merge the SDKs repeat is theirs to keep; the lean path, where CPU per
request matters, parses its URL once)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

import orjson

from ..base import Completion, JudgeOptions
from ..limits import TransientError
from .status import connection_failure

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
    """A success body -> Completion. A body that is not JSON (cut off in transit) is worth a
    retry; JSON the backend cannot read as an answer was still answered (and billed): it is
    an error completion with its reason, never bought again."""
    try:
        data = orjson.loads(raw)
    except ValueError as exc:
        raise TransientError(f"malformed response body ({exc})") from None
    try:
        return parse(data)
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        shown = orjson.dumps(data)[:300].decode("utf-8", "replace")
        return Completion(
            text="",
            finish_reason="error",
            error=f"no answer in the response ({type(exc).__name__}: {exc}); body: {shown}",
        )
