"""Several servers of one judge behind one `Judge`: `--base-url` repeated (or a file of URLs).

Each server is its own judge (built by the provider's module, with no retries of its own: a
failure comes back at once, so the pool can hand the request to another server instead of
waiting on a dead one). The pool sends each request to the server with the least outstanding
work relative to its limit (judges/server_limit.py: adapted to the server's queueing), one
server at a time: a request is sent again only after its previous attempt came back failed, so
no request is ever answered twice by design, and none is lost while any server lives.

A server that fails `FAILS_TO_DROP` requests in a row is taken out of rotation (its requests in
flight fail with it and go to the others) and tried again after a cool-down that doubles while
it keeps failing; the run's log says both. When every server has failed its probes for half a
minute the run stops (a setup error: what was answered is cached, rerunning resumes). A request
that failed on every server waits (from `backoff_s`, doubling) before it is tried on them again,
up to the judge's retries: overload, a restart and a refused request all end that way, without
guessing from an error's wording.

The pool's identity is the model, never the servers' addresses: `--judge-id NAME`, else the
model id the servers list at /v1/models (they must agree), so the cache survives moving,
adding or removing servers."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from .base import ChatRequest, Completion, Judge, JudgeIdentity, JudgeOptions, JudgeStats
from .errors import JudgeSetupError, UserError
from .server_limit import ServerLimit

log = logging.getLogger("judges")

FAILS_TO_DROP = 3
COOLDOWN_S = 1.0
MAX_COOLDOWN_S = 30.0
# a server's first limit, and its ceiling unless the options ask for less
INITIAL_SLOTS = 16
MAX_SLOTS = 256
ID_PREFIX = "judge-id:"


@dataclass(eq=False)
class Server:
    index: int
    url: str
    judge: Judge
    limit: ServerLimit
    in_flight: int = 0
    fails_in_a_row: int = 0
    down_until: float = 0.0  # time.monotonic(); 0 while in rotation
    cooldown_s: float = COOLDOWN_S
    answered: int = 0
    failed: int = 0
    dropped: int = 0  # times it was taken out of rotation

    def usable(self, now: float) -> bool:
        return self.down_until <= now

    @property
    def probing(self) -> bool:
        """Back from a cool-down: one request at a time until it answers."""
        return self.fails_in_a_row >= FAILS_TO_DROP

    def room(self, now: float) -> int:
        if not self.usable(now):
            return 0
        return max(0, (1 if self.probing else self.limit.slots) - self.in_flight)


@dataclass
class _Attempts:
    failed_on: set[int] = field(default_factory=set)  # servers this request failed on
    rounds: int = 0  # times it failed on every server


class PoolJudge:
    """One judge over several servers of the same model."""

    def __init__(
        self,
        identity: JudgeIdentity,
        servers: Sequence[tuple[str, Judge]],
        *,
        initial_slots: int = INITIAL_SLOTS,
        max_slots: int = MAX_SLOTS,
        max_attempts: int = 7,
        backoff_s: float = 1.0,
    ) -> None:
        if not servers:
            raise UserError("a server pool needs at least one base URL")
        self.identity = identity
        self.stats = JudgeStats()
        initial = min(initial_slots, max_slots)
        self.servers = [
            Server(i, url, j, ServerLimit(initial, max_slots)) for i, (url, j) in enumerate(servers)
        ]
        self.max_attempts = max(1, max_attempts)
        self.backoff_s = backoff_s
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def max_in_flight(self) -> int:
        """What keeps every server at its ceiling: the most requests worth handing the pool."""
        return sum(s.limit.ceiling for s in self.servers)

    # ------------------------------------------------------------ choosing a server

    def _pick(self, avoid: set[int], now: float) -> Server | None:
        """The free server with the least outstanding work for its limit; servers the request
        failed on only when no other is in rotation."""
        fresh = [s for s in self.servers if s.index not in avoid and s.usable(now)]
        best: Server | None = None
        for s in fresh or self.servers:
            if s.room(now) and (
                best is None or s.in_flight / s.limit.slots < best.in_flight / best.limit.slots
            ):
                best = s
        return best

    async def _acquire(self, avoid: set[int]) -> Server:
        while True:
            now = time.monotonic()
            server = self._pick(avoid, now)
            if server is not None:
                server.in_flight += 1
                return server
            if all(s.cooldown_s >= MAX_COOLDOWN_S and s.probing for s in self.servers):
                raise JudgeSetupError(
                    f"no server of {self.identity.label()} has answered for half a minute "
                    f"({self.summary()}); the answers so far are cached: rerun the same "
                    "command when the servers are back"
                )
            # wait for a slot, or for the next server to come back from its cool-down
            back = [s.down_until - now for s in self.servers if not s.usable(now)]
            timeout = min(back) if back else None
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, timeout)
            except TimeoutError:
                pass
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake(1)  # pass on the slot this waiter was woken for
                raise

    def _wake(self, n: int) -> None:
        while n > 0 and self._waiters:
            w = self._waiters.popleft()
            if not w.done():
                w.set_result(None)
                n -= 1

    def _release(self, server: Server) -> None:
        server.in_flight -= 1
        now = time.monotonic()
        self._wake(max(1, sum(s.room(now) for s in self.servers)))

    # ------------------------------------------------------------ health

    def _answered(self, server: Server, seconds: float, c: Completion) -> None:
        if server.probing:
            log.warning("judge server %s answers again: back in rotation", server.url)
        server.fails_in_a_row = 0
        server.cooldown_s = COOLDOWN_S
        server.answered += 1
        server.limit.observe(seconds, c.usage.output_tokens)

    def _failed(self, server: Server, c: Completion) -> None:
        server.failed += 1
        server.fails_in_a_row += 1
        server.limit.overloaded()
        now = time.monotonic()
        if not server.probing or not server.usable(now):
            return  # not yet enough failures, or already out (its requests in flight failing)
        if server.fails_in_a_row > FAILS_TO_DROP:
            # a failed probe after a cool-down: wait longer before the next one
            server.cooldown_s = min(MAX_COOLDOWN_S, server.cooldown_s * 2)
        server.dropped += 1
        server.down_until = now + server.cooldown_s
        others = sum(s.usable(now) for s in self.servers)
        log.warning(
            "judge server %s taken out of rotation after %d failures in a row (%s); "
            "its requests go to the %d other server(s); retried in %.0f s",
            server.url,
            server.fails_in_a_row,
            c.error,
            others,
            server.cooldown_s,
        )

    # ------------------------------------------------------------ the Judge protocol

    async def complete(self, request: ChatRequest) -> Completion:
        self.stats.requests += 1
        tried = _Attempts()
        last: Completion | None = None
        for attempt in range(self.max_attempts):
            server = await self._acquire(tried.failed_on)
            start = time.monotonic()
            try:
                c = await server.judge.complete(request)
            finally:
                self._release(server)
            if c.finish_reason != "error":
                self._answered(server, time.monotonic() - start, c)
                return self._account(replace(c, attempts=attempt + 1))
            self._failed(server, c)
            last = c
            tried.failed_on.add(server.index)
            if len(tried.failed_on) == len(self.servers) and attempt + 1 < self.max_attempts:
                # every server failed it: overloaded, restarting, or the request is refused;
                # a doubling wait before the next round tells them apart without a guess
                tried.failed_on.clear()
                tried.rounds += 1
                await asyncio.sleep(min(MAX_COOLDOWN_S, self.backoff_s * 2 ** (tried.rounds - 1)))
            self.stats.retries += 1
        assert last is not None
        return self._account(replace(last, attempts=min(attempt + 1, self.max_attempts)))

    def _account(self, c: Completion) -> Completion:
        self.stats.count(c)
        return c

    async def aclose(self) -> None:
        await asyncio.gather(*(s.judge.aclose() for s in self.servers))

    def summary(self) -> str:
        """One line per server: what it answered and how often it was dropped."""
        return "; ".join(
            f"{s.url}: {s.answered} answered, {s.failed} failed"
            + (f", dropped {s.dropped}x" if s.dropped else "")
            for s in self.servers
        )


# ---------------------------------------------------------------------------- building


def read_url_file(path: str | Path) -> list[str]:
    """A file of base URLs, one a line; blank lines and # comments skipped."""
    p = Path(path)
    try:
        lines = p.read_text().splitlines()
    except OSError as exc:
        raise UserError(f"--base-url-file {p}: cannot read it ({exc.strerror})") from None
    urls = [ln.split("#", 1)[0].strip() for ln in lines]
    urls = [u for u in urls if u]
    for n, u in enumerate(urls, 1):
        if not u.startswith(("http://", "https://")):
            raise UserError(f"--base-url-file {p}: {u!r} (URL {n}) is not an http(s) URL")
    if not urls:
        raise UserError(f"--base-url-file {p}: no URL in it")
    return urls


def served_model_id(base_url: str, timeout_s: float = 5.0) -> str | None:
    """The model id an OpenAI-compatible server lists first at /models, or None when it does
    not answer (or lists nothing)."""
    import urllib.request  # ~15 ms of imports: only a pool being built needs it

    try:
        with urllib.request.urlopen(base_url.rstrip("/") + "/models", timeout=timeout_s) as resp:
            data = json.loads(resp.read())
        return str(data["data"][0]["id"])
    except (OSError, ValueError, KeyError, IndexError, TypeError):  # URLError is an OSError
        return None


def pool_identity(
    provider: str, model: str, urls: Sequence[str], judge_id: str | None
) -> JudgeIdentity:
    """The model, never the layout: `judge_id`, else the id the servers serve (they must agree)."""
    if judge_id:
        return JudgeIdentity(provider, model, ID_PREFIX + judge_id)
    served = {u: served_model_id(u) for u in urls}
    ids = {i for i in served.values() if i is not None}
    if not ids:
        raise UserError(
            f"no server of {', '.join(urls)} answers at /models, so the judge cannot be named "
            "from what they serve: name it with --judge-id NAME (e.g. the model and its revision)"
        )
    if len(ids) > 1:
        listed = ", ".join(f"{u} serves {i}" for u, i in served.items() if i)
        raise UserError(f"the servers of one judge serve different models ({listed})")
    return JudgeIdentity(provider, model, ID_PREFIX + ids.pop())


def build_pool(
    provider: str,
    model: str,
    options: JudgeOptions,
    urls: Sequence[str],
    judge_id: str | None,
    connect: Callable[[str, JudgeOptions], Judge],
) -> PoolJudge:
    """The pool over `urls`: `connect(url, options)` builds one server's judge. The options'
    concurrency is each server's ceiling; retries are the pool's (handing a request on)."""
    if len(set(urls)) != len(urls):
        raise UserError(f"a base URL is given twice: {', '.join(urls)}")
    ceiling = max(1, options.concurrency)
    per_server = replace(options, max_retries=0, concurrency=ceiling, base_urls=(), judge_id=None)
    identity = pool_identity(provider, model, urls, judge_id)
    servers = [(u, connect(u, replace(per_server, base_url=u))) for u in urls]
    return PoolJudge(
        identity,
        servers,
        max_slots=ceiling,
        max_attempts=options.max_retries + 1,
        backoff_s=options.backoff_s,
    )
