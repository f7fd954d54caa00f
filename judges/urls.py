"""Check a judge's `--base-url` before any request is made.

A URL that is not one (`notaurl`, `localhost:8000` with no scheme, a bad port) fails at once
instead of after minutes of retries. Credentials inside a URL (`https://user:pass@host`,
`?api_key=...`) are refused, not stripped: a base URL is part of the judge's identity, written to
the cache, the manifest and every report, so a secret in it would be copied everywhere. Keys go
in an environment variable (`--api-key-env`). The error shows the URL with the secret masked."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from .errors import UserError

# query parameters that carry a secret (Azure's `api-version` and the like are fine)
_SECRET_PARAM = re.compile(
    r"(?i)^(api[-_]?key|key|token|access[-_]?token|auth|authorization|secret|password|passwd|"
    r"pwd|sig|signature|x-api-key|client[-_]secret)$"
)
_CONTROL = re.compile(r"[\x00-\x20\x7f]")


def masked(url: str) -> str:
    """`url` with any userinfo and secret-looking query values replaced by ***."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = "***@" + netloc.rsplit("@", 1)[1]
        query = "&".join(
            f"{k}={'***' if _SECRET_PARAM.match(k) else v}"
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        )
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    except ValueError:
        return "<unreadable URL>"


def check_base_url(url: str, option: str = "--base-url") -> str:
    """The URL, trailing slash removed, if it can be asked; else a UserError saying why."""

    def bad(why: str) -> UserError:
        return UserError(f"{option} {masked(url)!r}: {why}")

    if _CONTROL.search(url):
        raise bad("contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError when not a number in 0..65535
    except ValueError as e:
        raise bad(f"not a URL ({e})") from None
    if parts.scheme not in ("http", "https"):
        raise bad("not an http(s) URL; write it like http://127.0.0.1:8000/v1")
    if not parts.hostname:
        raise bad("names no host; write it like http://127.0.0.1:8000/v1")
    if port == 0:
        raise bad("port 0 cannot be asked")
    if parts.username is not None or parts.password is not None:
        raise bad(
            "holds credentials (user:password@); they would be copied to the cache, manifest "
            "and reports: remove them and pass the key with --api-key-env NAME"
        )
    if secrets := [k for k, _ in parse_qsl(parts.query) if _SECRET_PARAM.match(k)]:
        raise bad(
            f"holds a credential in its query ({', '.join(sorted(set(secrets)))}); it would be "
            "copied to the cache, manifest and reports: pass the key with --api-key-env NAME"
        )
    if parts.fragment:
        raise bad("has a #fragment, which a server never sees; remove it")
    return url.rstrip("/")
