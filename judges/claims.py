"""Share the buying of answers with other processes on the same cache.

`ClaimQueue.next()` hands out the keys this process should buy, claiming them in the cache
database a chunk at a time (`CacheStore.claim`). Keys another live process is buying are set
aside; once this process's own keys are handed out it waits for those: an answer that arrives
is a cache hit, a key whose owner died or gave up is claimed and bought here. So two `rmb run`
processes started at once on one cache pay for each distinct request once."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator

from .cache import LEASE_S, CacheStore


class ClaimQueue:
    def __init__(
        self,
        store: CacheStore,
        keys: Iterable[str],
        on_cached: Callable[[str], None],
        *,
        chunk: int = 64,
        poll_s: float = 0.25,
    ) -> None:
        self.store = store
        self._todo: Iterator[str] = iter(keys)
        self._on_cached = on_cached  # a key another process answered
        self._chunk = chunk
        self._poll_s = poll_s
        self._ready: deque[str] = deque()
        self._waiting: list[str] = []  # claimed by another live process
        self._lock = asyncio.Lock()
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    async def next(self) -> str | None:
        """The next key to buy, or None when every key is bought or answered elsewhere."""
        async with self._lock:
            while not self._ready:
                batch = [k for _, k in zip(range(self._chunk), self._todo, strict=False)]
                others_only = not batch
                if others_only:
                    if not self._waiting:
                        return None
                    batch, self._waiting = self._waiting, []
                got = await asyncio.to_thread(self.store.claim, batch)
                self._start_heartbeat()
                self._ready.extend(got.mine)
                for key in got.cached:
                    self._on_cached(key)
                self._waiting += got.others
                if others_only and not self._ready and got.others:
                    await asyncio.sleep(self._poll_s)  # others are buying the rest: let them
            return self._ready.popleft()

    def _start_heartbeat(self) -> None:
        # a thread, not a task: a busy event loop must not let the claims lapse
        if self._beat is None:
            self._beat = threading.Thread(target=self._heartbeat, daemon=True, name="rmb-claims")
            self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(LEASE_S / 6):
            # a failing beat only lets the claims lapse; the run goes on
            with contextlib.suppress(Exception):
                self.store.heartbeat()

    def close(self) -> None:
        """Stop the heartbeat and free every key still claimed (not bought after all)."""
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        self.store.release_all()
