"""The `rmb run` command line the tests type: one builder for every test that runs the CLI
against the loopback server."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# `python -m benchmark.cli`: the checkout's code, whatever the venv's console script points at
PYTHON_RMB = (sys.executable, "-m", "benchmark.cli")


def rmb_run_cmd(
    srv: Any,
    data: Path,
    tmp: Path,
    *extra: str,
    model: str,
    key_env: str,
    prog: tuple[str, ...] = PYTHON_RMB,
    cache: str = "cache",
    concurrency: int | None = None,
    bootstrap: int = 50,
    judge: str | None = None,
    base_url: str | None = None,
    quiet: bool = True,
) -> list[str]:
    """`rmb run` with an OpenAI judge (or `judge`, a full spec, at `base_url`) at the loopback
    server, a cache and runs directory under `tmp`, quiet; `extra` flags last (they win)."""
    return [
        *prog,
        "run",
        "--judge",
        judge or f"openai:{model}",
        "--base-url",
        base_url or srv.openai_base_url,
        "--api-key-env",
        key_env,
        "--data",
        str(data),
        "--cache-dir",
        str(tmp / cache),
        "--runs-dir",
        str(tmp / "runs"),
        *(("--concurrency", str(concurrency)) if concurrency is not None else ()),
        "--bootstrap",
        str(bootstrap),
        *(("--quiet",) if quiet else ()),
        *extra,
    ]
