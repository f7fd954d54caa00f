"""Where a prompt's shared part ends, so a provider's prefix cache can reuse it.

Every comparison of one RMB item shares the system instructions and the conversation; the
built-in templates put them first, then the responses. OpenAI caches such prefixes by itself
(prompts of 1,024 tokens or more, in 128-token steps, cached input billed at a discount).
Anthropic caches only up to a `cache_control` breakpoint: `anthropic_content` splits a user
message after its `</conversation>` (the `transcript` macro of prompts/_common.j2) into two text
blocks and marks the first. The text the model reads is unchanged, and so is the cache key (it
is the request's, not the body's). One breakpoint only: the conversation is what every
comparison of the item repeats; a second one after the first response would be written (at 1.25x
the input price) for prefixes that pairwise orders never repeat."""

from __future__ import annotations

from typing import Any

SHARED_END = "</conversation>"
EPHEMERAL = {"type": "ephemeral"}


def anthropic_content(text: str) -> str | list[dict[str, Any]]:
    """A user message's content: as is, or two text blocks with the shared first one marked."""
    at = text.find(SHARED_END)
    if at < 0:
        return text
    cut = at + len(SHARED_END)
    head, tail = text[:cut], text[cut:]
    if not tail.strip():
        return text
    return [
        {"type": "text", "text": head, "cache_control": EPHEMERAL},
        {"type": "text", "text": tail},
    ]
