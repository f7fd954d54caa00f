"""How many requests one self-hosted server gets at once, adapted to its queueing.

A self-hosted engine (vLLM, SGLang, llama.cpp) serves a batch at a time and queues the rest: it
never says 429, it gets slower. So the limit grows while the server's latency stays near the
best it has shown (more in flight is more throughput: the batch fills) and shrinks when latency
has grown past `TOLERANCE`× of it (requests wait in the server's queue: more in flight only
lengthens the queue) or the server answers overloaded (503). It settles where the server is
full with a short queue of its own: fed, never flooded.

Latency is read per output token (decoding is most of an engine's time per request: an answer
twice as long takes about twice as long on an idle server too; prompts are prefilled at tens of
times that speed, and counting them made the signal noisier, not truer) and per window of completions (the median of about half a limit's worth), so one
long answer or one slow request moves nothing."""

from __future__ import annotations

import statistics

# grow while latency is within this factor of the best seen; shrink beyond TOLERANCE
GROW_BELOW = 1.3
TOLERANCE = 2.0
GROWTH = 1.25
BACKOFF = 0.8
# a server still slow at this limit is slower for good (another tenant on it, harder prompts),
# not queueing our requests: its latency then becomes the new best
FLOOR = 2
MIN_WINDOW = 8


class ServerLimit:
    """The adaptive concurrency limit of one server, between 1 and `ceiling`."""

    def __init__(self, initial: int, ceiling: int) -> None:
        if not 1 <= initial <= ceiling:
            raise ValueError(f"need 1 <= initial ({initial}) <= ceiling ({ceiling})")
        self.ceiling = ceiling
        self.value = float(initial)
        self.best = float("inf")  # seconds per output token, best window median
        self._window: list[float] = []

    @property
    def slots(self) -> int:
        return max(1, int(self.value))

    def observe(self, seconds: float, output_tokens: int) -> None:
        """One answered request: its latency and length."""
        self._window.append(seconds / max(1, output_tokens))
        if len(self._window) < max(MIN_WINDOW, self.slots // 2):
            return
        median = statistics.median(self._window)
        self._window.clear()
        self.best = min(median, self.best)
        ratio = median / self.best
        if ratio <= GROW_BELOW:
            self.value = min(float(self.ceiling), self.value * GROWTH + 1)
        elif ratio > TOLERANCE:
            if self.value <= FLOOR:
                self.best = median
            self.value = max(1.0, self.value * BACKOFF)

    def overloaded(self) -> None:
        """The server refused or failed a request: back off at once, measure afresh."""
        self.value = max(1.0, self.value * BACKOFF)
        self._window.clear()
