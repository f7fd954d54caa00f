"""A loopback HTTP server run as a child process that never outlives us, and a judge that starts
one at its first request (`ServedJudge`).

It runs in its own process group (a terminal's Ctrl-C reaches only us, and we stop it in order)
and is stopped by `stop()`, at interpreter exit, when this process gets SIGTERM, and — on Linux,
through PR_SET_PDEATHSIG — by the kernel when the thread that started it dies, however it dies."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any, Protocol

from .base import ChatRequest, Completion, Judge, JudgeIdentity, JudgeStats
from .errors import JudgeServerDied, JudgeSetupError

# how often a running judge looks at its child: a dead one fails requests within this
WATCH_INTERVAL_S = 0.2


class ServerExited(Exception):
    """The child exited while we waited for it to answer."""


def describe_exit(returncode: int) -> str:
    """'exited with code 3', or 'died of SIGSEGV (signal 11)' for a negative (signal) code."""
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = "an unknown signal"
    return f"died of {name} (signal {-returncode})"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGKILL the child when the thread that forked it ends."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)  # loaded before fork
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def preexec() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
        if os.getppid() != parent:  # we died between fork and prctl
            os._exit(1)

    return preexec


_live: set[ChildServer] = set()
_hooks_lock = threading.Lock()
_hooks_installed = False


def stop_all() -> None:
    for server in list(_live):
        server.stop()


def _on_sigterm(signum: int, frame: Any) -> None:
    """Stop the children, then die of SIGTERM as if this handler had never been here."""
    stop_all()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _install_exit_hooks() -> None:
    global _hooks_installed
    with _hooks_lock:
        if _hooks_installed:
            return
        _hooks_installed = True
        atexit.register(stop_all)
        # only where nobody else handles SIGTERM (and handlers can only be set in the main thread)
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        ):
            signal.signal(signal.SIGTERM, _on_sigterm)


class ChildServer:
    """`argv` started as a child; ready when a GET of `ready_url` answers 200."""

    def __init__(
        self, argv: Sequence[str], ready_url: str, *, env: Mapping[str, str] | None = None
    ) -> None:
        self.argv = list(argv)
        self.ready_url = ready_url
        self.env = dict(env) if env is not None else None
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def spawn(self) -> None:
        """Start the process (call it from the thread whose life bounds the server's)."""
        _install_exit_hooks()
        # a file, not a pipe: nobody drains it while the server runs, and a full pipe blocks it
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
            preexec_fn=_die_with_parent(),
        )
        _live.add(self)

    def probe(self) -> bool:
        """True once `ready_url` answers; raises ServerExited if the process has ended."""
        if self.proc is None:
            raise ServerExited("was stopped")
        if (why := self.exit_reason()) is not None:
            raise ServerExited(why)
        try:
            with urllib.request.urlopen(self.ready_url, timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.probe():
            if time.monotonic() > deadline:
                raise TimeoutError(f"did not answer within {timeout_s:.0f} s")
            time.sleep(0.1)

    async def await_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not await asyncio.to_thread(self.probe):
            if time.monotonic() > deadline:
                raise TimeoutError(f"did not answer within {timeout_s:.0f} s")
            await asyncio.sleep(0.1)

    def exit_reason(self) -> str | None:
        """How the process ended on its own ('died of SIGSEGV (signal 11)'); None while it runs
        and after `stop()`."""
        if self.proc is None or self.proc.poll() is None:
            return None
        return describe_exit(self.proc.returncode)

    async def until_exit(self, interval_s: float = WATCH_INTERVAL_S) -> str:
        """Wait until the process ends on its own; returns `exit_reason()`. Polled: a
        zombie child is reaped here, and a poll costs microseconds."""
        while (why := self.exit_reason()) is None:
            await asyncio.sleep(interval_s)
        return why

    async def until_dead(self, what: str, hint: str = "") -> JudgeServerDied:
        """Wait until the process ends on its own; the error that says so (and stops it)."""
        why = await self.until_exit()
        return JudgeServerDied(self.failure(what, f"{why} during the run", hint))

    def failure(self, what: str, why: str, hint: str = "") -> str:
        """'<what> <why>. <hint> Its last output:' and the log's last lines, then stop."""
        tail = self.log_tail()
        self.stop()
        text = f"{what} {why}." + (f" {hint}" if hint else "")
        return text + (" Its last output:\n" + textwrap.indent(tail, "  ") if tail else "")

    def log_tail(self, lines: int = 15) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        text = self._log.read().decode("utf-8", errors="replace")
        return "\n".join(text.strip().splitlines()[-lines:])

    def stop(self, grace_s: float = 3.0) -> None:
        """SIGTERM to its process group, SIGKILL if anything lingers; idempotent."""
        proc, self.proc = self.proc, None
        _live.discard(self)
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(grace_s)
            # the group must be empty, helpers included
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


class Server(Protocol):
    async def astart(self) -> str:
        """Start, wait until it answers, return its OpenAI base URL."""
        ...

    async def until_dead(self) -> Exception:
        """Wait until the started server dies on its own; the error its requests fail with."""
        ...

    def stop(self) -> None: ...


class ServedJudge:
    """A `Judge` in front of a server it starts at the first request that reaches it, so a run
    answered wholly from the cache starts nothing, and stops on `aclose()`. Its identity is fixed
    here (the model, never the server's random port), so later runs find their cached answers.
    `connect(base_url)` builds the judge that talks to the started server.

    A watchdog follows the server from its start: once it dies, every request in flight and
    every later one fails with the server's error (how it died, its last output) within
    WATCH_INTERVAL_S, instead of waiting on retries and timeouts against a dead port."""

    def __init__(
        self, identity: JudgeIdentity, server: Server, connect: Callable[[str], Judge]
    ) -> None:
        self.identity = identity
        self.stats = JudgeStats()
        self.server = server
        self._connect = connect
        self._inner: Judge | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        self._failed: Exception | None = None  # a start that failed fails every later request
        self._dead: asyncio.Future[None] | None = None  # done (with the error) once it died
        self._watchdog: asyncio.Task[None] | None = None

    async def _ready(self) -> Judge:
        async with self._lock:
            if self._closed:
                raise JudgeSetupError(f"{self.identity.label()}: used after aclose()")
            if self._failed is not None:
                raise self._failed
            if self._inner is None:
                try:
                    base_url = await self.server.astart()
                except JudgeSetupError as e:
                    self._failed = e
                    raise
                inner = self._connect(base_url)
                inner.stats = self.stats  # one set of counters, whoever reads them
                self._dead = asyncio.get_running_loop().create_future()
                self._watchdog = asyncio.create_task(self._watch(self._dead))
                self._inner = inner
            return self._inner

    async def _watch(self, dead: asyncio.Future[None]) -> None:
        error = await self.server.until_dead()
        self._failed = error
        dead.set_exception(error)
        dead.exception()  # retrieved: no "never retrieved" warning when nothing was in flight

    async def complete(self, request: ChatRequest) -> Completion:
        inner = self._inner or await self._ready()
        dead = self._dead
        assert dead is not None
        if dead.done():
            raise dead.exception()  # type: ignore[misc]
        answer = asyncio.ensure_future(inner.complete(request))
        try:
            await asyncio.wait((answer, dead), return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not answer.done():  # the server died, or our caller was cancelled
                answer.cancel()
                with contextlib.suppress(BaseException):
                    await answer
        if answer.done() and not answer.cancelled() and answer.exception() is None:
            completion = answer.result()
            if completion.is_answer or not dead.done():
                return completion  # an answer that arrived as the server died is still good
        if dead.done():
            raise dead.exception()  # type: ignore[misc]
        return answer.result()  # its error

    async def aclose(self) -> None:
        self._closed = True
        inner, self._inner = self._inner, None
        watchdog, self._watchdog = self._watchdog, None
        try:
            if watchdog is not None:
                watchdog.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watchdog
            if inner is not None:
                await inner.aclose()
        finally:
            self.server.stop()
