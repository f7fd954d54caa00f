"""What both batch APIs share: the provider's view of a batch (`Remote`), what became of one line
(`LineOutcome`), chunking within the providers' limits, and how a line's error is read.

A line's `custom_id` is its cache key: SHA-256 hex, 64 characters of [0-9a-f], which fits both
providers' rule (Anthropic: `^[a-zA-Z0-9_-]{1,64}$`; OpenAI takes any string), so no mapping is
needed and results map back to the cache by id alone. `check_custom_id` guards that assumption.

An errored line is read with the online judge's rules (`http.status.classify_status`): a refusal
(context too long, content filter) or a rejected request becomes an invalid comparison with the
provider's reason; what online would retry (429, 5xx, overloaded) is `transient` and goes into
the next batch of the same run (up to `MAX_ROUNDS` batches; then it is invalid with the reason);
an expired or cancelled line is not answered and the next run submits it again."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ..base import Completion
from ..errors import JudgeSetupError, UserError
from ..http.status import classify_status, error_message
from ..limits import TransientError

# how many batches one run tries a transiently failing line in before it counts it invalid
MAX_ROUNDS = 3

_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

Kind = Literal["answer", "failed", "transient", "expired", "cancelled"]


def check_custom_id(key: str) -> str:
    if not _CUSTOM_ID.match(key):
        raise UserError(f"cache key {key!r} is not a valid batch custom_id (64 of [A-Za-z0-9_-])")
    return key


@dataclass(frozen=True, slots=True)
class Limits:
    """Per batch: at most `lines` requests and `bytes` of what is sent."""

    lines: int
    bytes: int


def chunks(lines: Iterable[tuple[str, bytes]], limits: Limits) -> Iterator[list[tuple[str, bytes]]]:
    """(key, serialized line) runs that each fit the limits (a newline per line counted)."""
    chunk: list[tuple[str, bytes]] = []
    size = 0
    for key, raw in lines:
        if len(raw) + 1 > limits.bytes:
            raise UserError(
                f"request {key}: {len(raw):,} bytes, more than a whole batch may hold "
                f"({limits.bytes:,}); judge it online (without --batch)"
            )
        if chunk and (len(chunk) == limits.lines or size + len(raw) + 1 > limits.bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append((key, raw))
        size += len(raw) + 1
    if chunk:
        yield chunk


@dataclass(frozen=True, slots=True)
class Remote:
    """A batch as the provider reports it, in provider-neutral terms."""

    batch_id: str
    status: str  # the provider's own word
    terminal: bool  # no line will change any more: results can be read
    counts: dict[str, int] = field(default_factory=dict)
    total: int = 0
    created_at: float = 0.0
    tag: str | None = None  # our job id, when the provider keeps metadata (OpenAI)
    failure: str | None = None  # why it failed validation (names the line)
    raw: Any = None

    @property
    def done(self) -> int:
        """Lines the provider has finished with (answered or failed)."""
        if "processing" in self.counts:  # Anthropic counts what is left
            return self.total - self.counts["processing"]
        return self.counts.get("completed", 0) + self.counts.get("failed", 0)


@dataclass(frozen=True, slots=True)
class LineOutcome:
    key: str
    kind: Kind
    completion: Completion | None = None  # answers and failures; None when not processed
    reason: str = ""


def http_outcome(key: str, status: int, body: object, *, who: str, key_hint: str) -> LineOutcome:
    """A line the provider answered with an HTTP error, read as the online judge reads one."""
    message, code, param = error_message(body, f"HTTP {status}")
    try:
        c = classify_status(status, message, code, None, who=who, key_hint=key_hint, param=param)
    except TransientError as exc:
        return LineOutcome(key, "transient", reason=exc.reason)
    except JudgeSetupError as exc:
        c = Completion(text="", finish_reason="error", error=str(exc))
    return LineOutcome(key, "failed", c, c.error or f"HTTP {status}")


def answered(key: str, completion: Completion, *, cut_ok: bool, now: float) -> LineOutcome:
    """A line with a response body: an answer bought at the batch price."""
    c = replace(completion, usage=replace(completion.usage, batch=True), created_at=now)
    if c.is_complete(cut_ok=cut_ok):
        return LineOutcome(key, "answer", c)
    return LineOutcome(key, "failed", c, c.error or f"finish_reason {c.finish_reason}")
