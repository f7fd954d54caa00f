"""Careless or hostile run set-ups: a run whose requests failed, run ids that are paths, a run
directory reused or shared, a runs dir that cannot be written, a disk that fills while the
reports are written, a tampered report.json. Each is one line and exit 2 (or 4), no traceback,
no request sent where none should be, no stale temporary file."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from test_cache import AS_READER
from test_runner import popen, read_judged, subprocess_cmd, write_items
from test_runner_cli import run_cli

from benchmark.rundir import RunLock

REPO = Path(__file__).resolve().parent.parent


def one_line_error(r: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert r.returncode == code, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    return r.stderr


def no_tmp_files(where: Path) -> None:
    assert not [p for p in where.rglob("*.tmp")], list(where.rglob("*.tmp"))


@pytest.mark.parametrize("server_down", [False, True])
def test_a_run_whose_requests_all_failed_exits_4_and_says_so(
    loopback: Any, tmp_path: Path, server_down: bool
) -> None:
    data = write_items(tmp_path / "items.jsonl", 5)
    cmd = subprocess_cmd(loopback, data, tmp_path, "--max-retries", "0")
    if server_down:
        cmd[cmd.index("--base-url") + 1] = "http://127.0.0.1:9/v1"  # nothing listens there
    else:
        loopback.configure(faults={"500": 1.0})
    err = one_line_error(run_cli(cmd), code=4)
    assert "10 of the 10 requests sent failed" in err, err
    assert ("500" in err or "server" in err.lower()) if not server_down else "conn" in err.lower()


def test_a_run_where_some_requests_failed_still_completes(loopback: Any, tmp_path: Path) -> None:
    loopback.configure(script=["500", "500"])
    data = write_items(tmp_path / "items.jsonl", 10)
    r = run_cli(subprocess_cmd(loopback, data, tmp_path, "--max-retries", "0"))
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(
    "run_id", ["../../x", "/tmp/rmb-escape", "a/b", "..", ".hidden", "x" * 200]
)
def test_a_run_id_is_one_folder_inside_runs_dir(loopback: Any, tmp_path: Path, run_id: str) -> None:
    data = write_items(tmp_path / "items.jsonl", 3)
    (tmp_path / "inner").mkdir()
    cmd = subprocess_cmd(loopback, data, tmp_path / "inner", "--run-id", run_id)
    err = one_line_error(run_cli(cmd))
    assert "--run-id" in err
    assert loopback.stats()["requests"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inner", "items.jsonl"]
    assert not Path("/tmp/rmb-escape").exists()


def test_a_run_id_from_a_shared_config_is_checked_too(loopback: Any, tmp_path: Path) -> None:
    cfg = tmp_path / "shared.toml"
    cfg.write_text('run_id = "../../escaped"\n')
    data = write_items(tmp_path / "items.jsonl", 3)
    (tmp_path / "w").mkdir()
    cmd = subprocess_cmd(loopback, data, tmp_path / "w", "--config", str(cfg))
    assert "--run-id" in one_line_error(run_cli(cmd))
    assert not (tmp_path / "escaped").exists() and not (tmp_path.parent / "escaped").exists()


def test_reusing_a_run_id_for_other_inputs_is_refused(loopback: Any, tmp_path: Path) -> None:
    data = write_items(tmp_path / "items.jsonl", 3)
    assert run_cli(subprocess_cmd(loopback, data, tmp_path, "--run-id", "mine")).returncode == 0
    manifest = (tmp_path / "runs" / "mine" / "manifest.json").read_text()
    other = subprocess_cmd(
        loopback, data, tmp_path, "--run-id", "mine", "--template", "pairwise-tie"
    )
    err = one_line_error(run_cli(other))
    assert "another run" in err and "--run-id" in err
    assert (tmp_path / "runs" / "mine" / "manifest.json").read_text() == manifest  # kept
    again = run_cli(subprocess_cmd(loopback, data, tmp_path, "--run-id", "mine"))
    assert again.returncode == 0  # the same inputs resume it


def test_a_run_directory_in_use_is_refused_at_once(loopback: Any, tmp_path: Path) -> None:
    data = write_items(tmp_path / "items.jsonl", 3)
    lock = RunLock(tmp_path / "runs" / "busy")
    try:
        cmd = subprocess_cmd(loopback, data, tmp_path, "--run-id", "busy")
        err = one_line_error(run_cli(cmd))
        assert "another rmb run (pid" in err
        assert loopback.stats()["requests"] == 0
    finally:
        lock.release()
    assert run_cli(cmd).returncode == 0  # free again


def test_the_same_command_twice_at_once_pays_each_request_once(
    loopback: Any, tmp_path: Path
) -> None:
    """Literally the same command: one run writes the directory, the other is refused at once
    or, if it starts after the first has finished, resumes from the cache. Nothing is paid
    twice either way."""
    loopback.configure(latency=0.05)
    data = write_items(tmp_path / "items.jsonl", 60)
    procs = [popen(subprocess_cmd(loopback, data, tmp_path, concurrency=8)) for _ in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes in ([0, 0], [0, 2]), outs
    if codes == [0, 2]:
        assert any("another rmb run" in e for _, e in outs)
    billed = Counter(loopback.stats()["answers"])
    assert len(billed) == 120 and set(billed.values()) == {1}
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert len(read_judged(run_dir)) == 120


def test_a_runs_dir_that_is_a_file_or_read_only(loopback: Any, tmp_path: Path) -> None:
    data = write_items(tmp_path / "items.jsonl", 3)
    (tmp_path / "afile").write_text("x")
    cmd = subprocess_cmd(loopback, data, tmp_path)
    cmd[cmd.index("--runs-dir") + 1] = str(tmp_path / "afile")
    assert "--runs-dir" in one_line_error(run_cli(cmd))
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    cmd[cmd.index("--runs-dir") + 1] = str(ro)
    cmd[cmd.index("--cache-dir") + 1] = str(tmp_path / "cache")
    r = subprocess.run(
        [*AS_READER, *cmd],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**__import__("os").environ, "LOOPBACK_KEY": "sk-loopback"},
        timeout=120,
    )
    assert "--runs-dir" in one_line_error(r)
    assert loopback.stats()["requests"] == 0


def _small_files() -> None:
    # a disk that fills: writes past 10 KB fail (EFBIG) instead of killing the process
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, 10_000))


def test_a_full_disk_while_writing_reports_is_one_line(loopback: Any, tmp_path: Path) -> None:
    data = write_items(tmp_path / "items.jsonl", 60)
    assert run_cli(subprocess_cmd(loopback, data, tmp_path, "--run-id", "r")).returncode == 0
    for p in (tmp_path / "runs" / "r").glob("report.*"):
        p.unlink()
    r = subprocess.run(
        [sys.executable, "-m", "benchmark.cli", "report", str(tmp_path / "runs" / "r")],
        capture_output=True,
        text=True,
        cwd=REPO,
        preexec_fn=_small_files,
        timeout=120,
    )
    err = one_line_error(r)
    assert "cannot write" in err and "rmb report" in err
    no_tmp_files(tmp_path)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda d: d["items"][0].update(score="abc"),
        lambda d: d["items"][0].update(ties=-1),
        lambda d: d["items"][0].update(category=5),
        lambda d: d.update(items="nope"),
        lambda d: d.update(label=["x"]),
        lambda d: d["items"].append({"uid": "z"}),
    ],
)
def test_a_tampered_report_json_for_compare_is_one_line(
    loopback: Any, tmp_path: Path, tamper: Any
) -> None:
    data = write_items(tmp_path / "items.jsonl", 5)
    for rid, tpl in (("a", "pairwise"), ("b", "pairwise-tie")):
        cmd = subprocess_cmd(loopback, data, tmp_path, "--run-id", rid, "--template", tpl)
        assert run_cli(cmd).returncode == 0
    report = tmp_path / "runs" / "b" / "report.json"
    d = json.loads(report.read_text())
    tamper(d)
    report.write_text(json.dumps(d))
    runs = [str(tmp_path / "runs" / x) for x in "ab"]
    r = run_cli([sys.executable, "-m", "benchmark.cli", "compare", *runs])
    assert str(report) in one_line_error(r)
