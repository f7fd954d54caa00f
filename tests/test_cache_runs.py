"""The cache as runs and reports meet it: a bad row is asked again and reported, a report never
creates a cache and reads one it cannot write."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from test_cache import rmb_cli
from test_runner import answered, read_judged, subprocess_cmd, write_items
from test_runner_cli import run_cli

from judges.cache import CACHE_FILE


def test_a_bad_row_is_asked_again_and_reported(loopback: Any, tmp_path: Path) -> None:
    data = write_items(tmp_path / "items.jsonl", 10)
    cmd = subprocess_cmd(loopback, data, tmp_path, "--run-id", "r")
    assert run_cli(cmd).returncode == 0
    key = read_judged(tmp_path / "runs" / "r")[3].key
    with sqlite3.connect(tmp_path / "cache" / CACHE_FILE) as db:
        db.execute("UPDATE completions SET completion = '{\"te' WHERE key = ?", (key,))
    again = run_cli(cmd)
    assert again.returncode == 0, again.stderr  # was: "the cache file is unusable ... delete"
    assert "do not decode" in again.stderr and "asked again" in again.stderr
    assert answered(loopback) == 21  # that one answer bought again, nothing else
    lines = read_judged(tmp_path / "runs" / "r")
    assert len(lines) == 20 and all(j.verdict.kind == "choice" for j in lines)
    third = run_cli(cmd)
    assert third.returncode == 0 and "decode" not in third.stderr and answered(loopback) == 21


def test_report_never_creates_a_cache(loopback: Any, tmp_path: Path) -> None:
    """Someone else's run directory: its manifest names a cache that is not there."""
    data = write_items(tmp_path / "items.jsonl", 5)
    assert run_cli(subprocess_cmd(loopback, data, tmp_path, "--run-id", "r")).returncode == 0
    (tmp_path / "cache" / CACHE_FILE).unlink()  # the cache dir stays, empty of answers
    for side in ("-wal", "-shm"):
        (tmp_path / "cache" / (CACHE_FILE + side)).unlink(missing_ok=True)
    r = rmb_cli("report", str(tmp_path / "runs" / "r"), "--bootstrap", "20")
    assert r.returncode == 0, r.stderr
    assert list((tmp_path / "cache").iterdir()) == []  # was: a new completions.sqlite


def test_report_reads_a_cache_it_cannot_write(loopback: Any, tmp_path: Path) -> None:
    data = write_items(tmp_path / "items.jsonl", 5)
    assert run_cli(subprocess_cmd(loopback, data, tmp_path, "--run-id", "r")).returncode == 0
    shutil.copytree(tmp_path / "cache", tmp_path / "ro")  # no -wal/-shm left open
    for p in [tmp_path / "ro", *(tmp_path / "ro").iterdir()]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        run_dir = str(tmp_path / "runs" / "r")
        r = rmb_cli("report", run_dir, "--cache-dir", str(tmp_path / "ro"), reader=True)
        assert r.returncode == 0, r.stderr
        assert "10 answers re-read from the cache" in r.stdout + r.stderr
        report = json.loads((tmp_path / "runs" / "r" / "report.json").read_text())
        assert report
    finally:
        (tmp_path / "ro").chmod(0o755)
