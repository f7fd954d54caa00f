"""The fault suite: a run under injected faults loses nothing and pays nothing twice; a run
SIGKILLed again and again ends with the report an uninterrupted run gives; a corrupted cache is
a clear error with a way out, never a silent wrong answer.

Everything is real: the team's OpenAI judge (official SDK) against the loopback server
(tests/support/loopback_server.py, its own process), and `rmb run` as a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from support.commands import rmb_run_cmd

from benchmark.api import COMPARISONS_FILE, MANIFEST_FILE, RunResult, arun
from benchmark.options import RunOptions
from benchmark.results import JudgedComparison
from judges.base import Judge, JudgeOptions
from judges.cache import CACHE_FILE
from judges.registry import build_judge

MODEL = "fault-judge"
KEY_ENV = "RMB_FAULTS_KEY"
RMB = str(Path(sys.executable).with_name("rmb"))
# 20% of requests fail, one kind each; all but "unparseable" are worth a retry
FAULTS = {"429": 0.04, "500": 0.04, "hang": 0.03, "reset": 0.03, "malformed": 0.03}
UNPARSEABLE = 0.03
TIMEOUT_S = 2.0  # the client's; a hang lasts longer


def write_items(path: Path, n_pair: int, n_bon: int = 0, losers: int = 3) -> Path:
    """RMB-shaped JSONL records with short, distinct texts (every request distinct)."""
    rows: list[dict[str, Any]] = []
    for i in range(n_pair):
        rows.append(
            {
                "pair_uid": f"p{i}",
                "category_path": "Pairwise_set/Helpfulness/Code/Data Management"
                if i % 2
                else "Pairwise_set/Harmlessness/S1",
                "conversation_input": [{"role": "user", "content": f"Question {i}?"}],
                "chosen": {"llm_name": "a", "answer": f"A good answer to {i}."},
                "reject": {"llm_name": "b", "answer": f"A poor answer to {i}."},
            }
        )
    for i in range(n_bon):
        rows.append(
            {
                "bon_uid": f"b{i}",
                "category_path": "BoN_set/Helpfulness/Chat/Open QA",
                "conversation_input": [{"role": "user", "content": f"Task {i}?"}],
                "bon_best": {"llm_name": "a", "answer": f"best {i}"},
                "loser_list": [
                    {"llm_name": f"l{k}", "answer": f"loser {k} of {i}"} for k in range(losers)
                ],
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def judge_for(srv: Any, **options: Any) -> Judge:
    os.environ.setdefault(KEY_ENV, "sk-faults-loopback")
    opts = replace(JudgeOptions(**options), base_url=srv.openai_base_url, api_key_env=KEY_ENV)
    return build_judge(f"openai:{MODEL}", opts)


def answers(srv: Any) -> dict[str, int]:
    """Successful answers per request key, as the server counted them (what is paid for)."""
    return dict(srv.stats()["answers"])


def rmb_run(srv: Any, data: Path, tmp: Path, *extra: str, cache: str = "cache") -> list[str]:
    """Through the console script (what a user types), 200 resamples."""
    return rmb_run_cmd(
        srv,
        data,
        tmp,
        *extra,
        model=MODEL,
        key_env=KEY_ENV,
        prog=(RMB,),
        cache=cache,
        bootstrap=200,
    )


def env() -> dict[str, str]:
    return {**os.environ, KEY_ENV: "sk-faults-loopback"}


def _without_cached(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_cached(v) for k, v in value.items() if k != "cached"}
    if isinstance(value, list):
        return [_without_cached(v) for v in value]
    return value


def scores_of(run_dir: Path) -> dict[str, Any]:
    """report.json without what tells one run's history from another's: the time, the
    manifest's counters, and how many answers came from the cache this time."""
    report = json.loads((run_dir / "report.json").read_text())
    return {
        k: _without_cached(v)
        for k, v in report.items()
        if k not in ("generated_at", "manifest", "label")
    }


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two JSON values differ (for a readable assertion message)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}.{k}: only in one" for k in set(a) ^ set(b)]
        for k in set(a) & set(b):
            out += differences(a[k], b[k], f"{path}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in differences(x, y, f"{path}[{i}]")
        ]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def read_judged(run_dir: Path) -> list[JudgedComparison]:
    return [
        JudgedComparison.from_json(line)
        for line in (run_dir / COMPARISONS_FILE).read_text().splitlines()
    ]


# ---------------------------------------------------------------------------- 20% faults


@pytest.mark.slow
def test_5000_comparisons_under_20_percent_faults(
    loopback: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    loopback.configure(
        latency=0.002,
        latency_jitter=0.004,
        faults={**FAULTS, "unparseable": UNPARSEABLE},
        retry_after=0.05,
        hang_s=TIMEOUT_S + 4,
        seed=random.randrange(1 << 30),
    )
    data = write_items(tmp_path / "items.jsonl", 2500)
    judge = judge_for(loopback, concurrency=64, timeout_s=TIMEOUT_S, max_retries=10, backoff_s=0.02)

    async def main() -> RunResult:
        try:
            options = RunOptions(
                data=data, cache_dir=tmp_path / "cache", runs_dir=tmp_path / "runs", bootstrap=100
            )
            return await arun(options, judge=judge, progress=True, handle_signals=False)
        finally:
            await judge.aclose()

    result = asyncio.run(main())
    stats = loopback.stats()
    faults = stats["faults"]
    transient = sum(faults.get(k, 0) for k in FAULTS)
    assert transient > 500 and faults.get("unparseable", 0) > 50, faults  # the faults happened

    # every comparison ends answered or counted invalid
    assert result.status == "complete" and result.comparisons == 5000
    judged = read_judged(result.run_dir)
    assert len(judged) == 5000 and len({j.comparison.id for j in judged}) == 5000
    invalid = [j for j in judged if j.verdict.kind == "invalid"]
    assert all(j.verdict.kind == "choice" for j in judged if j.verdict.kind != "invalid")
    # exactly the unparseable answers are invalid (no retry ran out at this rate)
    assert len(invalid) == faults["unparseable"]
    assert all("no verdict" in j.verdict.reason for j in invalid), invalid[:3]
    assert result.failed == 0

    # no successful request paid twice; every request answered once
    paid = answers(loopback)
    assert len(paid) == 5000 and max(paid.values()) == 1

    # every transient fault was retried (a busy machine may add a few client timeouts of its
    # own), every retry reached the server, and the retries show in the numbers
    retries = judge.stats.retries
    assert transient <= retries <= transient * 1.1
    assert stats["requests"] == 5000 + retries
    assert sum(j.attempts for j in judged) == 5000 + retries
    out = capfd.readouterr()
    progress = out.err
    assert f"retries {retries}" in progress, progress[-500:]
    manifest = json.loads((result.run_dir / MANIFEST_FILE).read_text())
    assert manifest["counts"]["retries"] == retries
    report = json.loads((result.run_dir / "report.json").read_text())
    assert report["manifest"]["counts"]["retries"] == retries
    assert f"{transient:,} retries" in (result.run_dir / "report.md").read_text()


# ---------------------------------------------------------------------------- SIGKILL x5


@pytest.mark.slow
def test_five_sigkills_then_rerun_gives_the_uninterrupted_report(
    loopback: Any, tmp_path: Path
) -> None:
    loopback.configure(latency=0.004, latency_jitter=0.008)
    data = write_items(tmp_path / "items.jsonl", 150, n_bon=30)  # 300 + 180 comparisons
    total = 480
    ref = tmp_path / "ref"
    done = subprocess.run(
        rmb_run(loopback, data, ref, "--concurrency", "16"),
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (ref_dir,) = (ref / "runs").iterdir()
    expected = scores_of(ref_dir)
    assert len(answers(loopback)) == total
    loopback.reset()
    loopback.configure(latency=0.004, latency_jitter=0.008)

    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    # server answers at which to kill, as fractions of the run: early, middle, late, and one at
    # the very end (scoring and report writing)
    marks = [*sorted(rng.uniform(0.02, 0.97) for _ in range(4)), 1.0]
    cmd = rmb_run(loopback, data, tmp_path, "--concurrency", "16")
    kills = []
    for mark in marks:
        proc = subprocess.Popen(
            cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 120
        while (
            len(answers(loopback)) < mark * total
            and proc.poll() is None
            and time.monotonic() < deadline
        ):
            time.sleep(0.01)
        if mark == 1.0:
            time.sleep(rng.uniform(0.0, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        kills.append((mark, len(answers(loopback)), proc.returncode))
    assert sum(code == -signal.SIGKILL for _, _, code in kills) >= 4, (seed, kills)

    final = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, (seed, kills, final.stderr)
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name == ref_dir.name
    got = scores_of(run_dir)
    assert got == expected, (seed, kills, differences(got, expected)[:10])
    judged = read_judged(run_dir)
    assert len(judged) == total and all(j.verdict.kind == "choice" for j in judged)
    # a kill loses at most the answers in flight (16) plus those awaiting their commit
    paid = answers(loopback)
    assert len(paid) == total
    assert sum(paid.values()) <= total + 5 * 16, (seed, kills, sum(paid.values()))


# ---------------------------------------------------------------------------- bad cache


def _one_line_error(stderr: str, cache: Path) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("rmb: error: "), stderr
    assert "Traceback" not in stderr, stderr
    msg = lines[-1]
    assert str(cache / CACHE_FILE) in msg and "rmb cache check" in msg and "--cache-dir" in msg
    return msg


@pytest.fixture(scope="module")
def pristine(loopback_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One complete run (data, cache, run directory) that each damage test copies."""
    loopback_server.reset()
    base = tmp_path_factory.mktemp("pristine")
    data = write_items(base / "items.jsonl", 60)
    done = subprocess.run(
        rmb_run(loopback_server, data, base), env=env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return base


# one bad row in a sound file is no longer an error: it is a miss, asked again and reported
# (tests/test_cache_runs.py::test_a_bad_row_is_asked_again_and_reported)
@pytest.mark.slow
@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupted_cache_is_a_clear_error_with_a_way_out(
    pristine: Path, loopback: Any, tmp_path: Path, damage: str
) -> None:
    for part in ("cache", "runs"):
        shutil.copytree(pristine / part, tmp_path / part)
    cmd = rmb_run(loopback, pristine / "items.jsonl", tmp_path)
    (run_dir,) = (tmp_path / "runs").iterdir()
    expected = scores_of(run_dir)
    cache = tmp_path / "cache"
    db = cache / CACHE_FILE
    if damage == "garbage":
        db.write_bytes(os.urandom(64 * 1024))
    else:
        raw = db.read_bytes()
        db.write_bytes(raw[: len(raw) // 2])
    for p in cache.glob(CACHE_FILE + "-*"):
        p.unlink()
    (run_dir / "report.json").unlink()
    requests_before = loopback.stats()["requests"]

    again = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=120)
    assert again.returncode == 2, again.stderr
    _one_line_error(again.stderr, cache)
    assert not (run_dir / "report.json").exists()  # no report from a broken cache
    assert loopback.stats()["requests"] == requests_before  # nothing was sent

    # the way out, as the message says: `rmb cache check` names the problem ...
    check = subprocess.run(
        [RMB, "cache", "check", "--cache-dir", str(cache)], capture_output=True, text=True
    )
    assert check.returncode != 0 and "Traceback" not in check.stderr, check.stderr
    assert str(db) in check.stdout + check.stderr
    # ... and another --cache-dir runs afresh to the same report
    fresh = subprocess.run(
        rmb_run(loopback, pristine / "items.jsonl", tmp_path, cache="cache2"),
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert fresh.returncode == 0, fresh.stderr
    assert scores_of(run_dir) == expected
