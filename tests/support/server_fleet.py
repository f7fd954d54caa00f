"""Several small OpenAI-compatible servers of one model, in one process of their own, for the
multi-server judge's tests and benchmarks (judges/pool.py).

Each server answers `POST /v1/chat/completions` and `GET /v1/models` like a self-hosted engine
with a fixed batch: at most `capacity` requests are served at a time, each for `latency`
seconds; the rest wait in its queue (or get 503 once `queue` of them wait, when set). Every
server counts its answers per request (sha256 of the body), so a test can check that no request
was answered twice and none is missing, across servers.

A server can be stopped mid-run as if it crashed: its listener closes and every request it has
not answered yet (in service, queued, or arriving on a kept-alive connection) gets its
connection reset, unanswered and uncounted; what it had answered is delivered. `stop_after`
stops a server by itself after that many answers (a deterministic mid-run crash).

    python tests/support/server_fleet.py --servers 3 --capacity 32 --latency 0.2
    # prints {"control": PORT, "ports": [...]} on the first stdout line; serves until SIGTERM

Controls on the control port: `GET /_stats`, `POST /_stop {"server": i}` (now, or with
`"after": k` answers), `POST /_start {"server": i}` (serve again on the same port), `POST
/_reset` (clears the counts). Requests for another model than `MODEL` get 404; a request whose
text holds `REJECT` gets 400 from every server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aiohttp import web

MODEL = "fleet-judge"
# a request whose text holds this gets 400, on every server (a request no server can answer)
REJECT = "REJECT-THIS-REQUEST"


class Server:
    """One server's state: its queue, its counts, and whether it has crashed."""

    def __init__(self, capacity: int, latency: float, queue: int | None) -> None:
        self.capacity = capacity
        self.latency = latency
        self.queue = queue
        self.slots = asyncio.Semaphore(capacity)
        self.runner: web.AppRunner | None = None
        self.site: web.TCPSite | None = None
        self.port = 0
        self.stop_after: int | None = None
        self.stopped = False
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        self.answered: Counter[str] = Counter()
        self.received = 0
        self.max_in_flight = 0
        self.rejected = 0  # 503: the queue was full
        self.aborted = 0  # unanswered when the server stopped

    async def stop(self) -> None:
        self.stopped = True
        if self.site is not None:
            await self.site.stop()
            self.site = None

    async def restart(self, runner: web.AppRunner) -> None:
        """Serve again on the same port, as a restarted server process would."""
        if self.site is None:
            self.site = web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True)
            await self.site.start()
        self.stopped = False
        self.stop_after = None

    def snapshot(self) -> dict[str, Any]:
        return {
            "port": self.port,
            "answers": sum(self.answered.values()),
            "answered": dict(self.answered),
            "received": self.received,
            "max_in_flight": self.max_in_flight,
            "rejected": self.rejected,
            "aborted": self.aborted,
            "stopped": self.stopped,
        }


def _abort(request: web.Request, srv: Server) -> web.Response:
    """Unanswered: the client sees its connection reset, as when a server process dies."""
    srv.aborted += 1
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=503)  # never reaches the client


async def chat_completions(request: web.Request) -> web.Response:
    srv: Server = request.app["server"]
    raw = await request.read()
    if srv.stopped:
        return _abort(request, srv)
    srv.received += 1
    body = json.loads(raw)
    if body.get("model") != MODEL:
        return web.json_response(
            {"error": {"message": f"The model `{body.get('model')}` does not exist."}}, status=404
        )
    if REJECT in raw.decode():
        return web.json_response({"error": {"message": "invalid request: rejected"}}, status=400)
    if srv.queue is not None and srv.in_flight >= srv.capacity + srv.queue:
        srv.rejected += 1
        return web.json_response(
            {"error": {"message": "server overloaded, try again", "type": "overloaded"}}, status=503
        )
    srv.in_flight += 1
    srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
    try:
        async with srv.slots:
            if not srv.stopped:
                await asyncio.sleep(srv.latency)
    finally:
        srv.in_flight -= 1
    # from this check to the return nothing awaits: an answer is counted iff it is sent
    if srv.stopped:
        return _abort(request, srv)
    key = hashlib.sha256(raw).hexdigest()
    srv.answered[key] += 1
    if srv.stop_after is not None and sum(srv.answered.values()) >= srv.stop_after:
        srv.stopped = True  # now: the next request's check must see it
        asyncio.get_running_loop().create_task(srv.stop())
    prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", ()))
    verdict = "A" if int(key[:2], 16) % 2 else "B"
    return web.json_response(
        {
            "id": f"chatcmpl-{key[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", MODEL),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"Reasons. [[{verdict}]]"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_chars // 4,
                "completion_tokens": 5,
                "total_tokens": prompt_chars // 4 + 5,
            },
        }
    )


async def models(request: web.Request) -> web.Response:
    srv: Server = request.app["server"]
    if srv.stopped:
        return _abort(request, srv)
    return web.json_response({"object": "list", "data": [{"id": MODEL, "object": "model"}]})


def server_app(srv: Server) -> web.Application:
    app = web.Application()
    app["server"] = srv
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", models)
    return app


def control_app(servers: list[Server]) -> web.Application:
    async def stats(_: web.Request) -> web.Response:
        return web.json_response({"servers": [s.snapshot() for s in servers]})

    async def stop(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        srv = servers[int(body["server"])]
        if body.get("after") is not None:
            srv.stop_after = int(body["after"])
        else:
            await srv.stop()
        return web.json_response(srv.snapshot())

    async def start(request: web.Request) -> web.Response:
        srv = servers[int(json.loads(await request.read())["server"])]
        assert srv.runner is not None
        await srv.restart(srv.runner)
        return web.json_response(srv.snapshot())

    async def reset(_: web.Request) -> web.Response:
        for s in servers:
            s.reset()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/_stats", stats)
    app.router.add_post("/_stop", stop)
    app.router.add_post("/_start", start)
    app.router.add_post("/_reset", reset)
    return app


async def _start(app: web.Application) -> tuple[web.AppRunner, web.TCPSite, int]:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024, reuse_address=True)
    await site.start()
    port = runner.addresses[-1][1]
    return runner, site, int(port)


async def serve(n: int, capacity: int, latency: float, queue: int | None) -> None:
    servers = [Server(capacity, latency, queue) for _ in range(n)]
    for s in servers:
        s.runner, s.site, s.port = await _start(server_app(s))
    *_, control = await _start(control_app(servers))
    print(json.dumps({"control": control, "ports": [s.port for s in servers]}), flush=True)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    await done.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--servers", type=int, default=3)
    p.add_argument("--capacity", type=int, default=32, help="requests served at a time")
    p.add_argument("--latency", type=float, default=0.2, help="seconds per request")
    p.add_argument("--queue", type=int, default=None, help="503 once this many wait")
    a = p.parse_args()
    run = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        run = uvloop.run
    run(serve(a.servers, a.capacity, a.latency, a.queue))


# ---------------------------------------------------------------------------- client handle


class Fleet:
    """A running fleet process: its servers' URLs and its controls."""

    def __init__(self, proc: subprocess.Popen[str], control: int, ports: list[int]) -> None:
        self.proc = proc
        self.control = f"http://127.0.0.1:{control}"
        self.urls = [f"http://127.0.0.1:{p}/v1" for p in ports]

    def _call(self, path: str, payload: dict[str, Any] | None = None) -> Any:
        body = None if payload is None else json.dumps(payload).encode()
        with urllib.request.urlopen(self.control + path, body, timeout=10) as resp:
            return json.loads(resp.read())

    def stats(self) -> list[dict[str, Any]]:
        return list(self._call("/_stats")["servers"])

    def stop_server(self, index: int, *, after: int | None = None) -> None:
        """Crash server `index` now, or once it has answered `after` requests."""
        self._call("/_stop", {"server": index, "after": after})

    def restart_server(self, index: int) -> None:
        self._call("/_start", {"server": index})

    def reset(self) -> None:
        self._call("/_reset", {})

    def answers_per_request(self) -> Counter[str]:
        """How many times each request was answered, summed over every server."""
        total: Counter[str] = Counter()
        for s in self.stats():
            total.update(s["answered"])
        return total

    def close(self) -> None:
        # nothing in the fleet needs a graceful end: its counts live only as long as a test
        self.proc.kill()
        self.proc.wait()


@contextlib.contextmanager
def running_fleet(
    servers: int = 3, *, capacity: int = 32, latency: float = 0.2, queue: int | None = None
) -> Iterator[Fleet]:
    cmd = [sys.executable, str(Path(__file__).resolve())]
    cmd += ["--servers", str(servers), "--capacity", str(capacity), "--latency", str(latency)]
    if queue is not None:
        cmd += ["--queue", str(queue)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    try:
        info = json.loads(line)
    except ValueError:
        proc.kill()
        raise RuntimeError(f"server fleet failed to start (got {line!r})") from None
    fleet = Fleet(proc, info["control"], info["ports"])
    try:
        yield fleet
    finally:
        fleet.close()


if __name__ == "__main__":
    main()
