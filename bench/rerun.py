"""`rmb run` as a user runs it, timed as a subprocess (process start included): a cached rerun
of 1,000 comparisons, and the full shared RMB (all pairwise + BoN, both orders) answered from a
warm cache, with its peak RSS. The cache is warmed once against the loopback server with zero
latency, in a temporary directory.

    .venv/bin/python bench/rerun.py [--skip-full]"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from data_load import DEFAULT as RMB_DIR  # noqa: E402
from throughput import KEY_ENV, MODEL  # noqa: E402

RMB = str(Path(sys.executable).with_name("rmb"))


@dataclass
class Timed:
    wall_s: float
    peak_rss_mb: float
    cpu_s: float
    code: int
    stderr: str


# A child's ru_maxrss starts at its parent's: Linux carries the old memory's high-water mark
# across fork and exec, so an `rmb run` started from this process (which holds the loaded RMB
# when `make bench` runs) would report this process's peak. It is started from a fresh small
# interpreter instead, which reports the child's wall time, peak RSS and CPU (wait4).
_SPAWN = """
import os, sys, time
t = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    os.execv(sys.argv[1], sys.argv[1:])
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - t
print(wall, ru.ru_maxrss, ru.ru_utime + ru.ru_stime, os.waitstatus_to_exitcode(status))
"""


def timed(cmd: list[str]) -> Timed:
    """Run cmd; its wall time, peak RSS and CPU (that child alone)."""
    env = {**os.environ, KEY_ENV: "sk-bench-loopback"}
    # as a user's shell runs it: Python caches its bytecode (the warming run writes it). Some
    # sandboxes set PYTHONDONTWRITEBYTECODE, which compiles the package afresh at every start
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryFile("w+") as err:
        out = subprocess.run(
            [sys.executable, "-S", "-c", _SPAWN, *cmd],
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            cwd=REPO,
            text=True,
            check=True,
        ).stdout.split()
        err.seek(0)
        wall, maxrss_kb, cpu, code = float(out[0]), int(out[1]), float(out[2]), int(out[3])
        return Timed(wall, maxrss_kb / 1024, cpu, code, err.read()[-2000:])


def rmb_run(base_url: str, work: Path, *selection: str, concurrency: int = 64) -> list[str]:
    return [
        RMB,
        "run",
        "--judge",
        f"openai:{MODEL}",
        "--base-url",
        base_url,
        "--api-key-env",
        KEY_ENV,
        "--data",
        str(RMB_DIR),
        "--cache-dir",
        str(work / "cache"),
        "--runs-dir",
        str(work / "runs"),
        "--concurrency",
        str(concurrency),
        "--quiet",
        *selection,
    ]


def warm_then_rerun(srv: Any, work: Path, *selection: str) -> dict[str, Any]:
    """Run once against the zero-latency server (warming the cache), then time the rerun."""
    cmd = rmb_run(srv.openai_base_url, work, *selection)
    warm = timed(cmd)
    if warm.code != 0:
        raise RuntimeError(f"warming run failed ({warm.code}): {warm.stderr}")
    sent_before = srv.stats()["requests"]
    rerun = timed(cmd)
    if rerun.code != 0:
        raise RuntimeError(f"cached rerun failed ({rerun.code}): {rerun.stderr}")
    (run_dir,) = (work / "runs").iterdir()
    counts = json.loads((run_dir / "manifest.json").read_text())["counts"]
    return {
        "comparisons": counts["comparisons"],
        "distinct_requests": counts["requests"],
        "sent_by_rerun": srv.stats()["requests"] - sent_before,
        "warm_wall_s": round(warm.wall_s, 1),
        "wall_s": round(rerun.wall_s, 3),
        "cpu_s": round(rerun.cpu_s, 3),
        "peak_rss_mb": round(rerun.peak_rss_mb, 1),
    }


def measure(srv: Any, *, full: bool = True, keep: Path | None = None) -> dict[str, Any]:
    """`keep`: leave the caches and runs there (to profile a rerun), not in a temp dir."""
    with tempfile.TemporaryDirectory(prefix="rmb-bench-") as tmp:
        work = keep or Path(tmp)
        out = {
            "cached_1000": warm_then_rerun(
                srv, work / "small", "--set", "pairwise", "--limit", "500"
            )
        }
        if full:
            out["full_rmb"] = warm_then_rerun(srv, work / "full")
    return out


def main() -> int:
    from support.loopback_server import running_server

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--skip-full", action="store_true", help="only the 1,000-comparison rerun")
    p.add_argument("--keep", type=Path, metavar="DIR", help="keep caches and runs in DIR")
    a = p.parse_args()
    with running_server(latency=0.0) as srv:
        print(json.dumps(measure(srv, full=not a.skip_full, keep=a.keep), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
