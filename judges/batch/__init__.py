"""Hosted judges through their providers' batch APIs (half the online price): the jobs recorded
in the cache database (`jobs`), the OpenAI and Anthropic clients over the official SDKs, crash
recovery, and the submit / poll / collect cycle (`manager`)."""

from __future__ import annotations

from typing import Any

from ..errors import UserError
from .jobs import Job, JobStore
from .manager import BatchOutcome, BatchRunner, JobView, progress_line

__all__ = [
    "BatchOutcome",
    "BatchRunner",
    "Job",
    "JobStore",
    "JobView",
    "batch_api",
    "progress_line",
]


def batch_api(judge: Any, api_key: str, base_url: str) -> Any:
    """The batch client for an `openai:` or `anthropic:` judge (its body and parse are reused)."""
    provider = judge.identity.provider
    if provider == "openai":
        from .openai_batches import OpenAIBatches

        return OpenAIBatches(judge, api_key, base_url)
    if provider == "anthropic":
        from .anthropic_batches import AnthropicBatches

        return AnthropicBatches(judge, api_key, base_url)
    raise UserError(
        f"--batch: {judge.identity.label()} has no batch API (openai: and anthropic: do)"
    )
