"""Hosted judges at scale, against the batch test server (tests/support/batch_server.py) beside the
loopback judge:

- `costs()`: `rmb run --batch` over the full RMB (or `per_scenario` items of each scenario) for
  gpt-4.1 and claude-sonnet-4-5; the dollars come from the server's own usage count (input,
  prompt-cache reads and writes, output tokens) at list prices (judges/pricing.py): online
  (every token at list price; an online run sends the same requests and gets the same answers,
  tests/test_batch_kill.py checks the reports match), batch (50%), batch with the prefix cache
  credited (cached input at the model's discount, Anthropic's cache writes at 1.25x).
- `pacing()`: an online `rmb run` (concurrency 64) against the server rate-limited to 10x
  600 requests/min and 400k tokens/min, enforced over 1 s windows: the sustained rate of the
  binding limit (tokens: a request is charged its prompt and its max_tokens) as a fraction of
  it, and the share of requests answered 429.

    .venv/bin/python bench/hosted.py [--per-scenario N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from support.batch_server import running_batch_server  # noqa: E402
from support.loopback_server import running_server  # noqa: E402

from judges.base import JudgeIdentity, Usage  # noqa: E402
from judges.pricing import rates_of  # noqa: E402

MODELS = {"openai": "gpt-4.1", "anthropic": "claude-sonnet-4-5"}
FAST = {"validate_s": 0.1, "process_s": 0.1, "finalize_s": 0.1, "line_concurrency": 128}
SCALE = 10  # the rate limit, scaled up so the run is short
LIMIT = {"requests_per_min": 600 * SCALE, "tokens_per_min": 400_000 * SCALE, "burst_s": 1.0}


def rmb(args: list[str], data: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "benchmark.cli", "run", "--data", str(data), "--quiet", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr[-2000:]}")
    return done


def costs(data: Path, per_scenario: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    pick = ["--per-scenario", str(per_scenario)] if per_scenario else []
    with running_server() as lb, running_batch_server(lb.base_url, **FAST) as srv:
        for provider, model in MODELS.items():
            url = srv.openai_base_url if provider == "openai" else srv.anthropic_base_url
            with tempfile.TemporaryDirectory() as tmp:
                t = time.monotonic()
                rmb(
                    [
                        "--judge", f"{provider}:{model}", "--base-url", url, *pick,
                        "--cache-dir", f"{tmp}/cache", "--runs-dir", f"{tmp}/runs",
                        "--batch", "--poll", "0.5",
                    ],
                    data,
                )  # fmt: skip
                wall = time.monotonic() - t
            u = srv.stats()["usage"]["batch"][model]
            rates = rates_of(JudgeIdentity(provider, model))
            assert rates is not None
            plain = Usage(u["input"], u["output"])
            cached = Usage(
                u["input"],
                u["output"],
                cached_input_tokens=u.get("cached_input", 0),
                cache_write_tokens=u.get("cache_write", 0),
                batch=True,
            )
            out[model] = {
                "requests": u["requests"],
                "input_tokens": u["input"],
                "cached_input_tokens": u.get("cached_input", 0),
                "cache_write_tokens": u.get("cache_write", 0),
                "output_tokens": u["output"],
                "cached_share": u.get("cached_input", 0) / max(1, u["input"]),
                "online_usd": rates.cost(plain),
                "batch_usd": rates.cost(Usage(u["input"], u["output"], batch=True)),
                "batch_cached_usd": rates.cost(cached),
                "wall_s": wall,
            }
    return out


def pacing(data: Path, concurrency: int = 64) -> dict[str, Any]:
    with running_server() as lb, running_batch_server(lb.base_url, rate_limit=LIMIT) as srv:
        with tempfile.TemporaryDirectory() as tmp:
            t = time.monotonic()
            rmb(
                [
                    "--judge", "openai:gpt-4.1", "--base-url", srv.openai_base_url,
                    "--per-scenario", "2", "--concurrency", str(concurrency),
                    "--cache-dir", f"{tmp}/cache", "--runs-dir", f"{tmp}/runs",
                ],
                data,
            )  # fmt: skip
            wall = time.monotonic() - t
        st = srv.stats()
    admitted = sorted(st["admitted"])
    # steady state: past the first bucket's worth (the burst) to the last admission
    start = admitted[0][0] + 2 * LIMIT["burst_s"]
    steady = [(t, n) for t, n in admitted if t >= start]
    span = max(1e-9, steady[-1][0] - start)
    req_rate = len(steady) / span / (LIMIT["requests_per_min"] / 60)
    tok_rate = sum(n for _, n in steady) / span / (LIMIT["tokens_per_min"] / 60)
    tried = len(admitted) + st["limited"]
    return {
        "fraction_of_limit": max(req_rate, tok_rate),
        "binding": "tokens" if tok_rate >= req_rate else "requests",
        "requests_fraction": req_rate,
        "tokens_fraction": tok_rate,
        "share_429": st["limited"] / max(1, tried),
        "requests": len(admitted),
        "throttled": st["limited"],
        "steady_s": span,
        "wall_s": wall,
        "throttled_at_s": [round(t - admitted[0][0], 3) for t, _, _ in st["limited_at"]],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("RMB_DATA", REPO.parent / "shared/rmb/RMB_dataset")),
    )
    p.add_argument(
        "--per-scenario", type=int, default=None, help="a sample instead of the full RMB"
    )
    p.add_argument("--skip-costs", action="store_true")
    a = p.parse_args()
    print(json.dumps(pacing(a.data), indent=1))
    if not a.skip_costs:
        print(json.dumps(costs(a.data, a.per_scenario), indent=1))


if __name__ == "__main__":
    main()
