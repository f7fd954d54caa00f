"""Every number a user can give is range-checked before anything runs; prices are finite and
non-negative; a small --max-cost is spent, not abandoned."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from support.runs import answered, make_judge
from test_runner import PricedAs, subprocess_cmd, write_items
from test_runner_cli import rmb

from benchmark.api import RunResult, arun
from benchmark.options import RunOptions
from judges.base import JudgeOptions
from judges.errors import UserError
from judges.pricing import reset_prices, set_prices

BAD = [
    ("--max-cost", "nan"),
    ("--max-cost", "-1"),
    ("--max-cost", "inf"),
    ("--tpm", "-1"),
    ("--tpm", "0"),
    ("--timeout", "0"),
    ("--timeout", "nan"),
    ("--timeout", "-3"),
    ("--temperature", "nan"),
    ("--temperature", "-0.5"),
    ("--temperature", "1e308"),
    ("--seed", "-1"),
    ("--seed", str(2**70)),
    ("--rps", "0"),
    ("--rps", "inf"),
    ("--concurrency", "0"),
    ("--max-tokens", "0"),
    ("--max-retries", "-1"),
    ("--bootstrap", "-5"),
    ("--limit", "0"),
]


@pytest.mark.parametrize(("flag", "value"), BAD)
def test_a_bad_number_stops_before_anything_runs(
    loopback: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    flag: str,
    value: str,
) -> None:
    monkeypatch.setenv("LOOPBACK_KEY", "sk-loopback")
    data = write_items(tmp_path / "items.jsonl", 3)
    argv = subprocess_cmd(loopback, data, tmp_path)[3:]
    with pytest.raises(SystemExit) as e:  # argparse: usage and one line naming the flag
        rmb(capsys, *argv, f"{flag}={value}")
    err = capsys.readouterr().err
    assert e.value.code == 2 and flag in err and "Traceback" not in err, err
    assert loopback.stats()["requests"] == 0 and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("key", "value"),
    [("rps", "0"), ("seed", "-1"), ("timeout", "nan"), ("temperature", "nan"), ("tpm", "-1")],
)
def test_a_bad_number_in_a_config_is_one_line(
    loopback: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: str
) -> None:
    cfg = tmp_path / "run.toml"
    cfg.write_text(f"{key} = {value}\n")
    data = write_items(tmp_path / "items.jsonl", 3)
    argv = subprocess_cmd(loopback, data, tmp_path)[3:]
    code, _, err = rmb(capsys, *argv, "--config", str(cfg))
    assert code == 2 and f"--{key}" in err and len(err.strip().splitlines()) == 1, err
    assert loopback.stats()["requests"] == 0


def test_run_options_check_in_python() -> None:
    with pytest.raises(UserError, match="--seed must be at most"):
        RunOptions(seed=2**70).check()
    with pytest.raises(UserError, match="--timeout must be a finite number"):
        RunOptions(timeout=float("inf")).check()


@pytest.mark.parametrize(
    "entry",
    [
        {"input": "nan", "output": 1},
        {"input": 1, "output": -2},
        {"input": float("inf"), "output": 1},
    ],
)
def test_prices_are_finite_and_not_negative(entry: dict[str, Any], tmp_path: Path) -> None:
    try:
        with pytest.raises(UserError, match="finite numbers from 0"):
            set_prices({"my-model": entry}, where="prices.json")
        p = tmp_path / "prices.json"
        p.write_text(json.dumps({"gpt-4o": entry}))
        from judges.base import JudgeIdentity
        from judges.pricing import load_prices, rates_of

        gpt4o = JudgeIdentity("openai", "gpt-4o")
        before = rates_of(gpt4o)
        with pytest.raises(UserError):
            load_prices(p)
        assert rates_of(gpt4o) == before  # a bad table changes nothing
    finally:
        reset_prices()


def test_a_small_budget_is_spent_not_abandoned(loopback: Any, tmp_path: Path) -> None:
    """Reservations start at the worst case (max_tokens): with 8 in flight a $0.05 budget was
    full of reservations after 4 requests, and the run stopped with 0.6% of it spent."""
    data = write_items(tmp_path / "items.jsonl", 100)

    async def main() -> RunResult:
        judge = PricedAs(make_judge(loopback.openai_base_url, JudgeOptions(concurrency=8)))
        try:
            options = RunOptions(
                data=data,
                concurrency=8,
                cache_dir=tmp_path / "c",
                runs_dir=tmp_path / "r",
                max_cost=0.05,
                bootstrap=20,
            )
            return await arun(options, judge=judge, handle_signals=False)
        finally:
            await judge.aclose()

    r = asyncio.run(main())
    assert r.status == "budget" and r.spent_usd <= 0.05
    assert r.spent_usd >= 0.8 * 0.05, (r.sent, r.spent_usd)
    assert answered(loopback) == r.sent
