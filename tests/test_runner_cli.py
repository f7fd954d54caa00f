"""`rmb run` and `rmb cache` as a user types them: config file vs flags, dry run, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from support.items import write_items
from support.runs import MODEL, answered
from test_runner import subprocess_cmd

from benchmark.cli import build_parser, main
from benchmark.commands.run import merged_options
from judges.errors import UserError

REPO = Path(__file__).resolve().parent.parent


def parse(*argv: str) -> Any:
    return merged_options(build_parser().parse_args(["run", *argv]))


def test_config_file_then_flags_override(tmp_path: Path) -> None:
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        'judge = "openai:gpt-4o"\ntemplate = "pairwise-tie"\nset = ["bon"]\nper-scenario = 3\n'
        "concurrency = 5\nmax_cost = 2\ntemperature = 0.3\nquiet = true\ntransport = 'lean'\n"
    )
    a = parse("--config", str(cfg), "--concurrency", "7", "--set", "pairwise")
    assert a.judge == "openai:gpt-4o" and a.template == "pairwise-tie"
    assert a.concurrency == 7 and a.sets == ("pairwise",)  # the command line wins
    assert a.per_scenario == 3 and a.max_cost == 2.0 and a.temperature == 0.3 and a.quiet
    assert a.transport == "lean"
    assert a.seed == 0 and a.orders == "both" and a.samples == 1  # built-in defaults fill the rest
    b = parse()
    assert b.template == "pairwise" and b.in_flight == 16 and b.max_cost is None


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('api_key = "sk-123"', "api-key-env"),
        ("concurrency = 'many'", "'concurrency' must be a whole number"),
        ("set = [1, 2]", "list of strings"),
        ("judge = ", "not valid TOML"),
    ],
)
def test_bad_config_names_the_file_and_the_option(tmp_path: Path, text: str, needle: str) -> None:
    cfg = tmp_path / "run.toml"
    cfg.write_text(text + "\n")
    with pytest.raises(UserError) as e:
        parse("--config", str(cfg))
    assert str(cfg) in str(e.value) and needle in str(e.value)
    assert "sk-123" not in str(e.value)


def run_cli(cmd: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "LOOPBACK_KEY": "sk-loopback", **env}
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, cwd=REPO, timeout=300)


def rmb(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`rmb ARGV` in this process (the same main() the console script calls)."""
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_dry_run_then_run_then_cached_rerun(
    loopback: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOOPBACK_KEY", "sk-loopback")
    data = write_items(tmp_path / "items.jsonl", 100, n_bon=20, losers=2)
    cmd = subprocess_cmd(loopback, data, tmp_path, concurrency=16)
    argv = cmd[3:]  # after `python -m benchmark.cli`
    code, out, err = rmb(capsys, *argv, "--dry-run")
    assert code == 0, err
    assert loopback.stats()["requests"] == 0
    rows = {
        line[:18].strip(): line[18:].split()[0] for line in out.splitlines() if line[18:].strip()
    }
    assert (
        rows["comparisons"] == "280"
        and rows["distinct requests"] == "280"
        and rows["cache answers"] == "0"
    )

    code, out, err = rmb(capsys, *argv)
    assert code == 0, err
    assert answered(loopback) == 280
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert {"manifest.json", "comparisons.jsonl"} <= {p.name for p in run_dir.iterdir()}

    # the same command again, as a new process: nothing is asked
    t = time.perf_counter()
    again = run_cli(cmd)
    wall = time.perf_counter() - t
    assert again.returncode == 0, again.stderr
    assert loopback.stats()["requests"] == 280
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [run_dir.name]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["counts"]["cache_hits"] == 280 and manifest["counts"]["sent"] == 0
    print(
        f"\ncached rerun through the CLI (process start included): {wall:.2f} s for 280 comparisons"
    )

    code, out, _ = rmb(capsys, *argv, "--dry-run")
    rows = {
        line[:18].strip(): line[18:].split()[0] for line in out.splitlines() if line[18:].strip()
    }
    assert (rows["cache answers"], rows["to send"], rows["input tokens"]) == ("280", "0", "0")

    cache = ["--cache-dir", str(tmp_path / "cache")]
    code, out, _ = rmb(capsys, "cache", "stats", *cache)
    assert code == 0 and "280 answers" in out and MODEL in out
    code, out, _ = rmb(capsys, "cache", "export", *cache)
    assert code == 0 and len(out.splitlines()) == 280 and "sk-loopback" not in out
    code, out, _ = rmb(capsys, "cache", "check", *cache)
    assert code == 0 and "ok, 280 answers" in out
    code, out, _ = rmb(capsys, "cache", "prune", "--older-than", "1d", *cache)
    assert code == 0 and "deleted 0 answers" in out
    code, _, err = rmb(capsys, "cache", "prune", *cache)
    assert code == 2 and "--judge" in err


def test_bad_key_exits_2_with_the_reason(
    loopback: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loopback.configure(expected_key="sk-right")
    monkeypatch.setenv("LOOPBACK_KEY", "sk-wrong-key")
    data = write_items(tmp_path / "items.jsonl", 50)
    code, _, err = rmb(capsys, *subprocess_cmd(loopback, data, tmp_path)[3:])
    assert code == 2, err
    assert err.startswith("rmb: error:") and "sk-wrong-key" not in err
    assert loopback.stats()["requests"] <= 8


def test_listwise_template_on_pairwise_items_is_a_clear_error(
    loopback: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_items(tmp_path / "items.jsonl", 5)
    code, _, err = rmb(
        capsys, *subprocess_cmd(loopback, data, tmp_path)[3:], "--template", "listwise"
    )
    assert code == 2 and "--set bon" in err
    assert loopback.stats()["requests"] == 0


def test_max_cost_needs_a_price_and_prices_file_gives_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from judges.pricing import reset_prices

    monkeypatch.setenv("LOOPBACK_KEY", "sk-loopback")
    data = write_items(tmp_path / "items.jsonl", 10)
    # a server that is not on this machine and a model the price table does not know;
    # nothing is sent in either case (a refusal up front, then a dry run)
    argv = [
        "run", "--judge", "openai:mystery-judge", "--base-url", "http://192.0.2.1/v1",
        "--api-key-env", "LOOPBACK_KEY", "--data", str(data), "--cache-dir", str(tmp_path / "c"),
        "--runs-dir", str(tmp_path / "r"), "--max-cost", "1", "--dry-run",
    ]  # fmt: skip
    code, _, err = rmb(capsys, *argv)
    assert code == 2 and "no price is known" in err and "--prices" in err
    prices = tmp_path / "prices.toml"
    prices.write_text("[mystery-judge]\ninput = 1.0\noutput = 4.0\n")
    try:
        code, out, err = rmb(capsys, *argv, "--prices", str(prices))
    finally:
        reset_prices()
    assert code == 0, err
    cost = next(line for line in out.splitlines() if line.startswith("cost"))
    tokens = int(
        next(line for line in out.splitlines() if line.startswith("input tokens"))
        .split()[2]
        .replace(",", "")
    )
    assert f"${tokens / 1e6:.4f} (input alone)" in cost
