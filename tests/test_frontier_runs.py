"""`rmb run` with today's frontier judges, as a user types it, against the test server that
answers the way the providers document (tests/loopback_server.py): default options complete
with valid verdicts; a request shape rejected on every item stops early and resumes; an
unpriced remote model says "cost unknown"."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.commands import rmb_run_cmd
from support.loopback_server import LoopbackServer

REPO = Path(__file__).resolve().parent.parent
KEY_ENV = "LOOPBACK_KEY"
# 20 real RMB pairwise items (both orders: 40 comparisons)
SELECTION = ("--set", "pairwise", "--goal", "helpfulness", "--task", "Code", "--limit", "20")


def rmb_run(
    judge: str, base_url: str, tmp: Path, rmb_dir: Path, *extra: str, quiet: bool = True
) -> subprocess.CompletedProcess[str]:
    cmd = rmb_run_cmd(
        None,
        rmb_dir,
        tmp,
        *SELECTION,
        *extra,
        model="",
        key_env=KEY_ENV,
        judge=judge,
        base_url=base_url,
        bootstrap=20,
        quiet=quiet,
    )
    env = {**os.environ, KEY_ENV: "sk-loopback"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


def verdicts(tmp: Path) -> list[dict[str, Any]]:
    (run_dir,) = (tmp / "runs").iterdir()
    lines = (run_dir / "comparisons.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def valid_share(tmp: Path) -> float:
    got = verdicts(tmp)
    return sum(1 for v in got if v["verdict"]["kind"] != "invalid") / len(got)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("judge", "extra"),
    [
        ("openai:gpt-4.1", ()),
        ("openai:gpt-5", ()),
        ("openai:gpt-5.6-sol", ()),
        ("openai:gpt-5.1", ("--template", "pairwise-logprob")),
        ("anthropic:claude-sonnet-4-5", ("--transport", "sdk")),
        ("anthropic:claude-sonnet-4-5", ("--transport", "lean")),
        ("anthropic:claude-opus-5", ()),
    ],
)
def test_frontier_judges_complete_with_default_options(
    loopback: LoopbackServer, rmb_dir: Path, tmp_path: Path, judge: str, extra: tuple[str, ...]
) -> None:
    url = loopback.anthropic_base_url if judge.startswith("anthropic") else loopback.openai_base_url
    done = rmb_run(judge, url, tmp_path, rmb_dir, *extra)
    assert done.returncode == 0, done.stderr
    share = valid_share(tmp_path)
    assert share >= 0.9, (share, done.stderr)
    stats = loopback.stats()
    assert set(stats["status"]) == {"200"}, stats["status"]  # not one request rejected
    print(f"{judge} {' '.join(extra)}: {stats['requests']} requests, {share:.0%} valid")


@pytest.mark.slow
def test_a_judge_rejected_on_every_request_stops_early_and_resumes(
    loopback: LoopbackServer, rmb_dir: Path, tmp_path: Path
) -> None:
    # 12 answers, then the server rejects every request (an nginx 400 page: a shape the API
    # refuses for every item looks the same from here)
    loopback.configure(script=["ok"] * 12, faults={"html": 1.0})
    stopped = rmb_run("openai:gpt-4.1", loopback.openai_base_url, tmp_path, rmb_dir)
    assert stopped.returncode == 2, stopped.stderr
    message = stopped.stderr.strip().splitlines()[-1]
    assert "same rejection on 5 requests in a row" in message and "400 Bad Request" in message
    stats = loopback.stats()
    rejected = stats["status"].get("400", 0)
    assert stats["status"].get("200") == 12 and 5 <= rejected <= 20, stats["status"]
    print(f"stopped after {rejected} rejected requests: {message}")
    # fixed (here: the server answers again); the rerun resumes from the cache
    loopback.configure(faults={})
    before = stats["requests"]
    resumed = rmb_run("openai:gpt-4.1", loopback.openai_base_url, tmp_path, rmb_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert loopback.stats()["requests"] - before == 40 - 12  # nothing answered is asked again
    assert valid_share(tmp_path) == 1.0


@pytest.mark.slow
def test_an_unpriced_remote_model_says_cost_unknown(
    loopback: LoopbackServer, rmb_dir: Path, tmp_path: Path
) -> None:
    # the same server under an address that is not this machine's loopback name: a remote
    # OpenAI-compatible server whose model no price table knows
    remote = f"http://[::ffff:127.0.0.1]:{loopback.port}/v1"
    refused = rmb_run("openai:my-finetune", remote, tmp_path, rmb_dir, "--max-cost", "5")
    assert refused.returncode == 2 and loopback.stats()["requests"] == 0
    assert "--max-cost: no price is known for openai:my-finetune" in refused.stderr
    dry = rmb_run("openai:my-finetune", remote, tmp_path, rmb_dir, "--dry-run")
    assert dry.returncode == 0 and re.search(r"^cost +unknown", dry.stdout, re.M), dry.stdout
    done = rmb_run("openai:my-finetune", remote, tmp_path, rmb_dir, quiet=False)
    assert done.returncode == 0, done.stderr
    summary = next(line for line in done.stdout.splitlines() if "distinct requests" in line)
    print(summary)
    assert "cost unknown" in done.stdout and "$0.0000" not in done.stdout
    (run_dir,) = (tmp_path / "runs").iterdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["counts"]["spent_usd"] is None
    assert "cost unknown" in (run_dir / "report.md").read_text()


def test_rmb_prices_shows_rates_their_source_and_what_is_sent(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from benchmark.cli import main

    assert main(["prices", "anthropic:claude-opus-4-7", "openai:gpt-5.1", "openai:o3"]) == 0
    out = capsys.readouterr().out.splitlines()
    # the list price (the old hand table charged $15/$75 by the claude-opus-4 prefix)
    assert out[0].startswith("anthropic:claude-opus-4-7: input $5,") and "output $25" in out[0]
    assert (
        "[genai-prices " in out[0] and out[1] == "  sends: temperature not sent, token limit 1,024"
    )
    assert out[3] == "  sends: temperature 0, token limit 1,024, reasoning effort none"
    assert out[5] == "  sends: temperature not sent, token limit 16,384 (room to reason)"
    assert main(["prices", "openai:my-model", "--base-url", "https://my.example/v1"]) == 0
    assert "cost unknown" in capsys.readouterr().out


def test_reasoning_controls_come_from_flags_config_and_front_matter(tmp_path: Path) -> None:
    from benchmark.commands.flags import from_values
    from judges.base import DEFAULT
    from prompts import load_template

    o = from_values(
        {
            "reasoning_effort": "low",
            "thinking": "adaptive",
            "chat_template_kwargs": {"enable_thinking": False},  # a TOML table in a config
            "extra_body": {"top_k": 20},
            "api_version": "2023-06-01",
        }
    ).judge_options()
    assert (o.reasoning_effort, o.thinking, o.api_version) == ("low", "adaptive", "2023-06-01")
    assert o.chat_template_kwargs == {"enable_thinking": False} and o.extra_body == {"top_k": 20}
    assert o.temperature == DEFAULT and o.max_tokens is None  # the family decides
    # on the command line: a JSON object, checked by argparse
    from benchmark.cli import build_parser
    from benchmark.commands.run import merged_options

    args = build_parser().parse_args(
        ["run", "--chat-template-kwargs", '{"enable_thinking": false}']
    )
    assert merged_options(args).chat_template_kwargs == {"enable_thinking": False}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--extra-body", "[1]"])
    custom = tmp_path / "qwen-pairwise.j2"
    builtin = load_template("pairwise").source
    custom.write_text(
        builtin.replace(
            'version = "1"',
            'version = "1"\nreasoning_effort = "none"\nchat_template_kwargs = {enable_thinking = false}',
        )
    )
    t = load_template(str(custom))
    assert t.reasoning == {
        "reasoning_effort": "none",
        "chat_template_kwargs": {"enable_thinking": False},
    }
    # the user's flag wins over the template's
    assert o.with_defaults(t.reasoning).reasoning_effort == "low"
