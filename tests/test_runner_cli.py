"""`rmb run` and `rmb cache` as a user types them: config file vs flags, dry run, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_runner import MODEL, answered, subprocess_cmd, write_items

from benchmark.cli import build_parser
from benchmark.commands.run import merged_options
from judges.errors import UserError

REPO = Path(__file__).resolve().parent.parent


def parse(*argv: str) -> Any:
    return merged_options(build_parser().parse_args(["run", *argv]))


def test_config_file_then_flags_override(tmp_path: Path) -> None:
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        'judge = "openai:gpt-4o"\ntemplate = "pairwise-tie"\nset = ["bon"]\nper-scenario = 3\n'
        "concurrency = 5\nmax_cost = 2\ntemperature = 0.3\nquiet = true\n"
    )
    a = parse("--config", str(cfg), "--concurrency", "7", "--set", "pairwise")
    assert a.judge == "openai:gpt-4o" and a.template == "pairwise-tie"
    assert a.concurrency == 7 and a.sets == ["pairwise"]  # the command line wins
    assert a.per_scenario == 3 and a.max_cost == 2.0 and a.temperature == 0.3 and a.quiet
    assert a.seed == 0 and a.orders == "both" and a.samples == 1  # built-in defaults fill the rest
    b = parse()
    assert b.template == "pairwise" and b.concurrency == 16 and b.max_cost is None


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


def test_dry_run_then_run_then_cached_rerun(loopback: Any, tmp_path: Path) -> None:
    data = write_items(tmp_path / "items.jsonl", 100, n_bon=20, losers=2)
    cmd = subprocess_cmd(loopback, data, tmp_path, concurrency=16)
    dry = run_cli([*cmd, "--dry-run"])
    assert dry.returncode == 0, dry.stderr
    assert loopback.stats()["requests"] == 0
    out = {
        line[:18].strip(): line[18:].split()[0]
        for line in dry.stdout.splitlines()
        if line[18:].strip()
    }
    assert (
        out["comparisons"] == "280"
        and out["distinct requests"] == "280"
        and out["cache answers"] == "0"
    )

    first = run_cli([*cmd])
    assert first.returncode == 0, first.stderr
    assert answered(loopback) == 280
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert {"manifest.json", "comparisons.jsonl"} <= {p.name for p in run_dir.iterdir()}

    t = time.perf_counter()
    again = run_cli([*cmd])
    wall = time.perf_counter() - t
    assert again.returncode == 0, again.stderr
    assert loopback.stats()["requests"] == 280  # the rerun asked nothing
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [run_dir.name]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["counts"]["cache_hits"] == 280 and manifest["counts"]["sent"] == 0
    print(
        f"\ncached rerun through the CLI (process start included): {wall:.2f} s for 280 comparisons"
    )

    dry2 = run_cli([*cmd, "--dry-run"])
    assert "cache answers            280" in dry2.stdout

    stats = run_cli(
        [
            sys.executable,
            "-m",
            "benchmark.cli",
            "cache",
            "stats",
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    assert stats.returncode == 0 and "280 answers" in stats.stdout and MODEL in stats.stdout
    export = run_cli(
        [
            sys.executable,
            "-m",
            "benchmark.cli",
            "cache",
            "export",
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    assert len(export.stdout.splitlines()) == 280
    assert "sk-loopback" not in export.stdout
    check = run_cli(
        [
            sys.executable,
            "-m",
            "benchmark.cli",
            "cache",
            "check",
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    assert check.returncode == 0 and "ok, 280 answers" in check.stdout
    prune = run_cli(
        [
            sys.executable,
            "-m",
            "benchmark.cli",
            "cache",
            "prune",
            "--older-than",
            "1d",
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    assert prune.returncode == 0 and "deleted 0 answers" in prune.stdout


def test_bad_key_exits_2_with_the_reason(loopback: Any, tmp_path: Path) -> None:
    loopback.configure(expected_key="sk-right")
    data = write_items(tmp_path / "items.jsonl", 50)
    r = run_cli(subprocess_cmd(loopback, data, tmp_path), LOOPBACK_KEY="sk-wrong-key")
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("rmb: error:") and "sk-wrong-key" not in r.stderr
    assert loopback.stats()["requests"] <= 8


def test_listwise_template_on_pairwise_items_is_a_clear_error(
    loopback: Any, tmp_path: Path
) -> None:
    data = write_items(tmp_path / "items.jsonl", 5)
    r = run_cli([*subprocess_cmd(loopback, data, tmp_path), "--template", "listwise"])
    assert r.returncode == 2 and "--set bon" in r.stderr
    assert loopback.stats()["requests"] == 0
