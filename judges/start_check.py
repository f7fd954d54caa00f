"""The start-up check of a judge server we run: one tiny chat completion before the run's first
request. A llama.cpp build that uses instructions this CPU (or its hypervisor) mishandles loads
the model and answers /v1/models, then dies or returns nonsense at the first real computation;
this finds that in seconds, while the run has asked nothing yet."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from .child_server import ChildServer

CHECK_PROMPT = "Reply with the single word OK."


def garbage(body: Any) -> str | None:
    """What is wrong with a chat completion body that asked for one top logprob, or None.
    Broken kernels show as NaN/inf or positive logprobs, no tokens, or no choices."""
    try:
        choice = body["choices"][0]
        content = choice["message"]["content"]
        tokens = body["usage"]["completion_tokens"]
        logprobs = [t["logprob"] for t in choice["logprobs"]["content"]]
    except (KeyError, IndexError, TypeError) as e:
        return f"answered a malformed completion (no {e})"
    if not isinstance(content, str) or not isinstance(tokens, int) or tokens < 1:
        return f"answered a completion without tokens ({str(body)[:200]})"
    bad = [lp for lp in logprobs if not isinstance(lp, int | float) or not -1e9 < lp <= 1e-6]
    if not logprobs or bad or any(not math.isfinite(lp) for lp in logprobs):
        return f"answered with impossible logprobs {logprobs[:5]} (broken arithmetic)"
    return None


async def _ask(base_url: str, model: str, timeout_s: float) -> str | None:
    import httpx

    body = {
        "model": model,
        "messages": [{"role": "user", "content": CHECK_PROMPT}],
        "max_tokens": 2,
        "temperature": 0,
        "logprobs": True,
        "top_logprobs": 1,
    }
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            r = await client.post(f"{base_url}/chat/completions", json=body)
    except httpx.TimeoutException:
        return f"did not answer a tiny completion within {timeout_s:.0f} s (hung)"
    except httpx.HTTPError as e:
        return f"dropped a tiny completion ({type(e).__name__}: {e})"
    if r.status_code != 200:
        return f"answered a tiny completion with HTTP {r.status_code}: {r.text[:200]}"
    try:
        return garbage(r.json())
    except ValueError:
        return f"answered a tiny completion with a body that is not JSON: {r.text[:200]!r}"


async def check_first_completion(
    child: ChildServer, base_url: str, model: str, timeout_s: float
) -> str | None:
    """None if the server answers a tiny completion sanely; else what went wrong, naming the
    signal or exit code when the process died (a dropped connection is usually that: the
    process is given a moment to be reaped so its cause is known)."""
    ask = asyncio.ensure_future(_ask(base_url, model, timeout_s))
    death = asyncio.ensure_future(child.until_exit(0.05))
    try:
        await asyncio.wait((ask, death), return_when=asyncio.FIRST_COMPLETED)
        if not death.done():
            problem = ask.result()
            if problem is None:
                return None
            with_death = asyncio.wait_for(asyncio.shield(death), 1.0)
            try:
                await with_death
            except TimeoutError:
                return f"{problem}, at its start-up check"
        return f"{death.result()} at its start-up check (a tiny completion)"
    finally:
        for t in (ask, death):
            t.cancel()
        await asyncio.gather(ask, death, return_exceptions=True)
