"""OpenAI's Batch API through the official SDK: the input file (`files.create`, purpose
"batch"), `batches.create` (endpoint /v1/chat/completions, completion_window "24h", our job id in
`metadata`), `retrieve`, `list`, `cancel`, and the output and error files (`files.content`).

Output and error file lines are `{id, custom_id, response: {status_code, request_id, body},
error}`: a 200 body is read by the online judge's own parser; another status by its error rules;
`error.code` batch_expired / batch_cancelled marks a line the window or a cancel left undone."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Final

import orjson

from ..base import ChatRequest
from .lines import Limits, LineOutcome, Remote, answered, check_custom_id, http_outcome

ENDPOINT: Final = "/v1/chat/completions"
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
# 50,000 lines and 200 MB per input file (decimal MB: the stricter reading)
LIMITS = Limits(lines=50_000, bytes=200_000_000)
_GONE = {"batch_expired": "expired", "batch_cancelled": "cancelled"}


class OpenAIBatches:
    provider = "openai"
    limits = LIMITS

    def __init__(
        self, judge: Any, api_key: str, base_url: str, *, timeout_s: float = 600.0
    ) -> None:
        import openai  # heavy: only a batch run needs it

        self.judge = judge
        self.sdk = openai
        # management calls may be retried by the SDK; `create` never is (see submit)
        self.client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key, max_retries=2, timeout=timeout_s
        )

    def line(self, key: str, request: ChatRequest) -> bytes:
        body = self.judge.body(request)
        return orjson.dumps(
            {"custom_id": check_custom_id(key), "method": "POST", "url": ENDPOINT, "body": body}
        )

    async def submit(
        self, job_id: str, lines: Sequence[tuple[str, bytes]], record: Callable[..., None]
    ) -> Remote:
        """Upload the lines and create the batch; `record(file_id=...)` as soon as it exists.
        The create is sent once, never retried: a retry after a lost answer could pay twice
        (recovery finds the batch by its metadata instead)."""
        data = b"\n".join(raw for _, raw in lines) + b"\n"
        f = await self.client.files.create(file=(f"{job_id}.jsonl", data), purpose="batch")
        record(file_id=f.id)
        b = await self.client.with_options(max_retries=0).batches.create(
            input_file_id=f.id,
            endpoint=ENDPOINT,
            completion_window="24h",
            metadata={"rmb_job": job_id},
        )
        return self.remote(b)

    def remote(self, b: Any) -> Remote:
        counts = b.request_counts
        failure = None
        if b.status == "failed":
            errs = (b.errors.data if b.errors else None) or []
            failure = (
                "; ".join(
                    (f"line {e.line}: " if e.line else "") + f"{e.message} ({e.code})"
                    for e in errs[:5]
                )
                or "the batch failed validation (no reason given)"
            )
        return Remote(
            batch_id=b.id,
            status=b.status,
            terminal=b.status in TERMINAL,
            counts={"completed": counts.completed, "failed": counts.failed} if counts else {},
            total=counts.total if counts else 0,
            created_at=float(b.created_at),
            tag=(b.metadata or {}).get("rmb_job"),
            failure=failure,
            raw=b,
        )

    async def retrieve(self, batch_id: str) -> Remote:
        return self.remote(await self.client.batches.retrieve(batch_id))

    async def cancel(self, batch_id: str) -> Remote:
        return self.remote(await self.client.batches.cancel(batch_id))

    async def recent(self, since: float) -> AsyncIterator[Remote]:
        """Batches created at or after `since` (epoch seconds), newest first."""
        async for b in self.client.batches.list(limit=100):
            if b.created_at < since:
                return
            yield self.remote(b)

    async def discard_file(self, file_id: str) -> None:
        """An input file whose batch was never created (best effort: it expires anyway)."""
        with contextlib.suppress(self.sdk.APIError):
            await self.client.files.delete(file_id)

    async def results(self, remote: Remote, *, cut_ok: bool) -> AsyncIterator[LineOutcome]:
        b = remote.raw
        now = time.time()
        who, hint = self.judge.identity.label(), self.judge.key_hint
        for file_id in (b.output_file_id, b.error_file_id):
            if not file_id:
                continue
            content = await self.client.files.content(file_id)
            for raw in content.content.splitlines():
                if not raw.strip():
                    continue
                line = orjson.loads(raw)
                key = line["custom_id"]
                resp, err = line.get("response"), line.get("error")
                if resp is not None and resp.get("status_code") == 200:
                    yield answered(key, self.judge.parse(resp["body"]), cut_ok=cut_ok, now=now)
                elif resp is not None:
                    yield http_outcome(
                        key, resp["status_code"], resp.get("body"), who=who, key_hint=hint
                    )
                else:
                    code = (err or {}).get("code") or ""
                    reason = f"{code}: {(err or {}).get('message', '')}"
                    kind = _GONE.get(code)
                    if kind is not None:
                        yield LineOutcome(key, kind, reason=reason)  # type: ignore[arg-type]
                    else:
                        yield http_outcome(key, 500, {"error": err}, who=who, key_hint=hint)

    async def aclose(self) -> None:
        await self.client.close()
