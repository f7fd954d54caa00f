"""`rmb run --batch` killed with SIGKILL at random moments of each phase (during the upload,
after the provider created the batch but before its answer arrived, while polling, while
collecting), then rerun: the batch test server bills every request exactly once, and the final
report equals an online run's against the same server."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.batch_server import BatchServer, running_batch_server
from support.loopback_server import LoopbackServer

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
RMB = [sys.executable, "-m", "benchmark.cli"]
TIMING = {"validate_s": 0.3, "process_s": 2.0, "finalize_s": 0.3}
WINDOW = 3.0  # each kill point's call is held this long: the kill lands inside it
MODELS = {"openai": "gpt-4.1", "anthropic": "claude-sonnet-4-5"}


@pytest.fixture(scope="module")
def server(loopback_server: LoopbackServer) -> Iterator[BatchServer]:
    with running_batch_server(loopback_server.base_url, **TIMING) as srv:
        yield srv


def rmb_run(srv: BatchServer, provider: str, data: Path, tmp: Path, *extra: str) -> list[str]:
    url = srv.openai_base_url if provider == "openai" else srv.anthropic_base_url
    return [
        *RMB, "run", "--judge", f"{provider}:{MODELS[provider]}", "--base-url", url,
        "--data", str(data), "--per-scenario", "1", "--set", "pairwise", "--runs-dir", str(tmp / "runs"), "--quiet", *extra,
    ]  # fmt: skip


def scores(report_dir: Path) -> dict[str, Any]:
    """The report's numbers that say how the judge did (not what it cost or when)."""
    (run,) = report_dir.iterdir()
    report = json.loads((run / "report.json").read_text())

    def strip(x: Any) -> Any:
        if isinstance(x, dict):
            return {
                k: strip(v)
                for k, v in x.items()
                if not any(w in k for w in ("cost", "cache", "latency"))
            }
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    return strip({k: report[k] for k in ("overall", "subsets", "scenarios", "items", "unjudged")})


def kill_when(
    cmd: list[str], seen: Callable[[], bool], rng: random.Random, env: dict[str, str]
) -> None:
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while not seen():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before the kill point: {proc.stderr.read()!r}")  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the kill point never came"
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, WINDOW / 2))  # a random moment inside the held call
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_killed_batch_runs_bill_once_and_match_online(
    provider: str, server: BatchServer, rmb_dir: Path, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "OPENAI_API_KEY": "sk-test",
        "ANTHROPIC_API_KEY": "sk-test",
    }
    server.reset()
    online = tmp_path / "online"
    subprocess.run(
        rmb_run(server, provider, rmb_dir, online, "--cache-dir", str(online / "cache")),
        cwd=REPO,
        env=env,
        check=True,
    )
    server.reset()

    batch = tmp_path / "batch"
    cmd = rmb_run(
        server,
        provider,
        rmb_dir,
        batch,
        "--cache-dir",
        str(batch / "cache"),
        "--batch",
        "--poll",
        "0.1",
    )
    rng = random.Random(f"{provider}-{os.environ.get('RMB_KILL_SEED', '0')}")

    def calls(what: str) -> Callable[[], bool]:
        """True once the server counts one more `what` call than when the run started."""
        before = server.stats()["calls"].get(what, 0)
        return lambda: server.stats()["calls"].get(what, 0) > before

    def in_progress() -> bool:
        return "in_progress" in server.stats()["batches"].values()

    upload = "upload" if provider == "openai" else "before_create"
    points = [
        (
            "during upload",
            {upload: WINDOW},
            lambda: calls("upload" if provider == "openai" else "create_started"),
        ),
        ("after create", {"after_create": WINDOW}, lambda: calls("create")),
        ("while polling", {}, lambda: in_progress),
        ("while collecting", {"results": WINDOW}, lambda: calls("results")),
    ]
    for name, delays, make_seen in points:
        server.configure(delays=delays)
        kill_when(cmd, make_seen(), rng, env)
        if name == "after create":
            # recovery adopts the batch created before the kill: nothing is created again
            creates = server.stats()["calls"]["create"]
    server.configure(delays={})
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]

    stats = server.stats()
    billed = stats["billed"]
    assert billed and set(billed.values()) == {1}, "a request was paid twice"
    assert stats["calls"]["create"] == creates  # the batch made before the kill was adopted
    assert scores(batch / "runs") == scores(online / "runs")


def test_ctrl_c_leaves_the_batches_running_and_says_how_to_collect(
    server: BatchServer, rmb_dir: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OPENAI_API_KEY": "sk-test"}
    server.reset()
    server.configure(process_s=60.0)
    cache = str(tmp_path / "cache")
    cmd = rmb_run(
        server, "openai", rmb_dir, tmp_path, "--cache-dir", cache, "--batch", "--poll", "0.1"
    )
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while "in_progress" not in server.stats()["batches"].values():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "batches are running at the provider" in err and "rmb batches collect" in err
    assert list(server.stats()["batches"].values()) == ["in_progress"]  # not cancelled
    # --no-wait: submits nothing new (the keys are held), exits 0 with the same advice
    again = subprocess.run([*cmd, "--no-wait"], cwd=REPO, env=env, capture_output=True, text=True)
    assert again.returncode == 0 and "rerun" in again.stderr
    assert server.stats()["calls"]["create"] == 1
    server.configure(process_s=TIMING["process_s"])
