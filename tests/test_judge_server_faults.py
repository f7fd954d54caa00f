"""A judge server we run as a child that crashes, hangs or talks nonsense ends the run in
seconds, with exit code 2, the signal or exit code named, the server's last output and what to
try; the answers it gave stay cached, the message says how to resume, and no process is left.

The servers are real processes: tests/fake_judge_server.py, started by the local judge in place
of llama.cpp's server ($RMB_LOCAL_SERVER_CMD) and by vllm-server in place of vLLM's
($RMB_VLLM_PYTHON), misbehaving on cue ($FAKE_MODE)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from processes import wait_gone

from judges.base import ChatRequest, JudgeOptions, Message
from judges.child_server import free_port
from judges.errors import JudgeServerDied
from judges.local import LocalJudge

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parent.parent
FAKE = Path(__file__).resolve().parent / "fake_judge_server.py"
# what every failure message tells the user to try
HINTS = ("make install", "--judge local:PATH.gguf", "another judge")


def assert_all_gone(pids_file: Path, at_least: int = 2) -> None:
    pids = [int(p) for p in pids_file.read_text().split()]
    assert len(pids) >= at_least, pids  # the fake server and its helper, each time it started
    assert all(wait_gone(p, 5) for p in pids), f"processes left behind: {pids}"


@pytest.fixture
def fake_env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "RMB_LOCAL_SERVER_CMD": f"{sys.executable} {FAKE}",
        "FAKE_PIDS": str(tmp_path / "pids"),
        "RMB_LOCAL_START_TIMEOUT_S": "3",
    }


@pytest.fixture
def fake_gguf(tmp_path: Path) -> Path:
    path = tmp_path / "fake.gguf"
    path.write_bytes(b"GGUF" + bytes(4096))
    return path


def rmb(args: list[str], env: dict[str, str], tmp_path: Path) -> tuple[int, str, float]:
    t0 = time.monotonic()
    done = subprocess.run(
        [
            *(sys.executable, "-m", "benchmark.cli", *args),
            *("--cache-dir", str(tmp_path / "cache"), "--runs-dir", str(tmp_path / "runs")),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stderr, time.monotonic() - t0


def run_args(judge: str, rmb_dir: Path) -> list[str]:
    return [
        *("run", "--judge", judge, "--template", "pairwise-logprob", "--data", str(rmb_dir)),
        *("--set", "pairwise", "--goal", "harmlessness", "--limit", "3", "--concurrency", "2"),
    ]


# ---------------------------------------------------------------- the start-up check


@pytest.mark.parametrize(
    ("mode", "says"),
    [
        ("segv", "died of SIGSEGV (signal 11) at its start-up check"),
        ("exit", "exited with code 3 at its start-up check"),
        ("never-ready", "did not answer within 3 s"),
        ("hang", "did not answer a tiny completion within 3 s (hung)"),
        ("garbage", "answered a completion without tokens"),
    ],
)
def test_a_bad_server_fails_rmb_run_at_once(
    mode: str,
    says: str,
    rmb_dir: Path,
    fake_env: dict[str, str],
    fake_gguf: Path,
    tmp_path: Path,
) -> None:
    code, err, took = rmb(
        run_args(f"local:{fake_gguf}", rmb_dir), {**fake_env, "FAKE_MODE": mode}, tmp_path
    )
    assert code == 2, err
    first = err.splitlines()[0]
    assert first.startswith("rmb: error: local judge: the llama.cpp server for fake.gguf"), err
    assert says in first and all(h in first for h in HINTS), err
    assert "Its last output:" in first and "\n  fake server: " in err, err  # its log's tail
    assert "Traceback" not in err
    assert took < 30, took
    assert_all_gone(tmp_path / "pids")


def test_a_segfaulting_server_ends_the_demo_in_seconds(
    rmb_dir: Path, fake_env: dict[str, str], tmp_path: Path
) -> None:
    code, err, took = rmb(
        ["demo", "--data", str(rmb_dir)], {**fake_env, "FAKE_MODE": "segv"}, tmp_path
    )
    assert code == 2, err
    assert "died of SIGSEGV (signal 11) at its start-up check" in err, err
    assert took <= 30, took
    assert_all_gone(tmp_path / "pids")


# ---------------------------------------------------------------- the watchdog


def test_a_server_that_dies_mid_run_stops_it_keeps_the_answers_and_says_how_to_resume(
    rmb_dir: Path, fake_env: dict[str, str], fake_gguf: Path, tmp_path: Path
) -> None:
    args = run_args(f"local:{fake_gguf}", rmb_dir)
    # the check, then 2 answers, then a segfault (3 items, both orders: 6 requests)
    code, err, took = rmb(args, {**fake_env, "FAKE_MODE": "segv-after-3"}, tmp_path)
    assert code == 2, err
    assert "died of SIGSEGV (signal 11) during the run" in err.splitlines()[0], err
    assert "Answers so far are cached; to resume run:" in err and "rmb run --judge local:" in err
    assert took < 30, took
    assert_all_gone(tmp_path / "pids")

    # the same command resumes: the 2 answers come from the cache
    code, err, _ = rmb(args, {**fake_env, "FAKE_MODE": "ok"}, tmp_path)
    assert code == 0, err
    (manifest,) = (tmp_path / "runs").glob("*/manifest.json")
    counts = json.loads(manifest.read_text())["counts"]
    assert (counts["cache_hits"], counts["sent"]) == (2, 4), counts
    assert_all_gone(tmp_path / "pids", at_least=4)


async def test_requests_in_flight_and_later_fail_within_seconds_when_the_child_dies(
    fake_gguf: Path, fake_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for k in ("RMB_LOCAL_SERVER_CMD", "FAKE_PIDS"):
        monkeypatch.setenv(k, fake_env[k])
    monkeypatch.setenv("FAKE_MODE", "hang-after-1")  # the check passes, then nothing answers
    judge = LocalJudge(fake_gguf, JudgeOptions(max_retries=5))

    def request(n: int) -> ChatRequest:
        return ChatRequest((Message("user", f"question {n}"),), judge.identity.model)

    try:
        in_flight = [asyncio.ensure_future(judge.complete(request(n))) for n in range(2)]
        while judge._inner is None:  # started and checked
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # both requests are waiting on the hung server
        assert not any(t.done() for t in in_flight)
        pid = judge.server.pid
        os.kill(pid, signal.SIGKILL)
        t0 = time.monotonic()
        for t in in_flight:
            with pytest.raises(JudgeServerDied, match=r"died of SIGKILL \(signal 9\) during"):
                await t
        assert time.monotonic() - t0 < 3
        t0 = time.monotonic()
        with pytest.raises(JudgeServerDied, match="SIGKILL"):
            await judge.complete(request(3))
        assert time.monotonic() - t0 < 0.5  # a later request never reaches the dead port
    finally:
        await judge.aclose()
    assert_all_gone(Path(fake_env["FAKE_PIDS"]))


def test_vllm_server_dying_mid_run_stops_the_run(
    rmb_dir: Path, fake_env: dict[str, str], tmp_path: Path
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    # vllm-server runs `$RMB_VLLM_PYTHON -m vllm.entrypoints.openai.api_server FLAGS`
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nshift 2\nexec {sys.executable} {FAKE} "$@"\n')
    python.chmod(0o755)
    env = {**fake_env, "RMB_VLLM_PYTHON": str(python), "FAKE_MODE": "segv-after-2"}
    code, err, took = rmb(run_args(f"vllm-server:{model}", rmb_dir), env, tmp_path)
    assert code == 2, err
    assert "vllm-server for" in err and "died of SIGSEGV (signal 11) during the run" in err, err
    assert "to resume run:" in err
    assert took < 30, took
    assert_all_gone(tmp_path / "pids")


# ---------------------------------------------------------------- serve-local


@pytest.mark.parametrize(
    ("mode", "says"),
    [("segv", "died of SIGSEGV (signal 11) at its start-up check"), ("ok", "died of SIGKILL")],
)
def test_serve_local_names_how_its_server_died(
    mode: str, says: str, fake_env: dict[str, str], fake_gguf: Path, tmp_path: Path
) -> None:
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "benchmark.cli", "serve-local"),
            *("--model", str(fake_gguf), "--port", str(free_port())),
        ],
        cwd=REPO,
        env={**fake_env, "FAKE_MODE": mode},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        if mode == "ok":
            assert proc.stdout is not None
            assert proc.stdout.readline().startswith("serving ")
            os.kill(int((tmp_path / "pids").read_text().split()[0]), signal.SIGKILL)
        err = proc.communicate(timeout=30)[1]
        assert proc.returncode == 2, err
        assert says in err and all(h in err for h in HINTS), err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert_all_gone(tmp_path / "pids")
