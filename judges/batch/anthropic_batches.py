"""Anthropic's Message Batches API through the official SDK: `messages.batches.create` (requests
of `{custom_id, params}`), `retrieve`, `list`, `cancel`, `results` (JSONL lines `{custom_id,
result: {type: succeeded|errored|canceled|expired, message|error}}`).

A batch has no metadata: a job recorded as submitting whose create may have reached the
provider is found again by listing recent batches (see `judges.batch.recovery`); the ids of a
batch's requests are readable only once it has ended (`custom_ids`)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import orjson

from ..base import ChatRequest
from .lines import Limits, LineOutcome, Remote, answered, check_custom_id, http_outcome

# 100,000 requests or 256 MB per batch (decimal MB: the stricter reading)
LIMITS = Limits(lines=100_000, bytes=256_000_000 - 64)  # less the {"requests":[...]} wrapper
# an errored result carries the error type the online API would have answered with
_STATUS_OF = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class AnthropicBatches:
    provider = "anthropic"
    limits = LIMITS

    def __init__(
        self, judge: Any, api_key: str, base_url: str, *, timeout_s: float = 600.0
    ) -> None:
        import anthropic  # heavy: only a batch run needs it

        self.judge = judge
        self.sdk = anthropic
        # the judge's anthropic-version: a batch's lines are read under the create request's
        self.client = anthropic.AsyncAnthropic(
            base_url=base_url,
            api_key=api_key,
            max_retries=2,
            timeout=timeout_s,
            default_headers=judge.api_headers(),
        )

    def line(self, key: str, request: ChatRequest) -> bytes:
        self.judge.check(request)
        return orjson.dumps({"custom_id": check_custom_id(key), "params": self.judge.body(request)})

    async def submit(
        self, job_id: str, lines: Sequence[tuple[str, bytes]], record: Callable[..., None]
    ) -> Remote:
        """Create the batch; sent once, never retried (a retry after a lost answer could pay
        twice: recovery finds the batch by listing instead)."""
        requests = [orjson.loads(raw) for _, raw in lines]
        b = await self.client.with_options(max_retries=0).messages.batches.create(requests=requests)
        return self.remote(b)

    def remote(self, b: Any) -> Remote:
        c = b.request_counts
        counts = {
            "processing": c.processing,
            "succeeded": c.succeeded,
            "errored": c.errored,
            "canceled": c.canceled,
            "expired": c.expired,
        }
        return Remote(
            batch_id=b.id,
            status=b.processing_status,
            terminal=b.processing_status == "ended",
            counts=counts,
            total=sum(counts.values()),
            created_at=b.created_at.timestamp(),
            raw=b,
        )

    async def retrieve(self, batch_id: str) -> Remote:
        return self.remote(await self.client.messages.batches.retrieve(batch_id))

    async def cancel(self, batch_id: str) -> Remote:
        return self.remote(await self.client.messages.batches.cancel(batch_id))

    async def recent(self, since: float) -> AsyncIterator[Remote]:
        async for b in self.client.messages.batches.list(limit=100):
            if b.created_at.timestamp() < since:
                return
            yield self.remote(b)

    async def custom_ids(self, batch_id: str) -> set[str]:
        return {r.custom_id async for r in await self.client.messages.batches.results(batch_id)}

    async def discard_file(self, file_id: str) -> None:
        """No input files here."""

    async def results(self, remote: Remote, *, cut_ok: bool) -> AsyncIterator[LineOutcome]:
        now = time.time()
        who, hint = self.judge.identity.label(), self.judge.key_hint
        async for r in await self.client.messages.batches.results(remote.batch_id):
            key, res = r.custom_id, r.result
            if res.type == "succeeded":
                message = res.message.to_dict(mode="json")
                yield answered(key, self.judge.parse(message), cut_ok=cut_ok, now=now)
            elif res.type == "errored":
                err = res.error.error
                status = _STATUS_OF.get(err.type, 500)
                body = {"error": {"type": err.type, "message": err.message}}
                yield http_outcome(key, status, body, who=who, key_hint=hint)
            else:  # canceled | expired
                reason = f"the batch line {res.type}"
                if res.type == "canceled":
                    yield LineOutcome(key, "cancelled", reason=reason)
                else:
                    yield LineOutcome(key, "expired", reason=reason)

    async def aclose(self) -> None:
        await self.client.close()
