"""`--timeout` is a deadline on every attempt on every transport, named in the reason; a key a
server echoes inside a normal answer is redacted before the answer is cached or shown."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from support.loopback_server import LoopbackServer
from test_judges_http import SECRET, Make, ask, judge, transport  # noqa: F401 (fixtures)
from test_runner import subprocess_cmd, write_items
from test_runner_cli import run_cli

from judges.cache import CACHE_FILE


@pytest.mark.parametrize("api", ["openai", "anthropic"])
async def test_a_body_dripped_a_byte_a_second_meets_the_deadline(
    loopback: LoopbackServer,
    judge: Make,  # noqa: F811
    api: str,
) -> None:
    """The SDKs' timeout is per read: each byte resets it, so a --timeout 3 request lived for
    minutes; the lean transport stopped but called it 'connection failed: CancelledError'."""
    loopback.configure(faults={"drip": 1.0}, drip_s=0.3)
    j = judge(api, timeout_s=1.5, max_retries=0)
    t = time.monotonic()
    c = await j.complete(ask(j))
    took = time.monotonic() - t
    assert took < 10, took  # the whole body would take a minute and more
    assert c.finish_reason == "error" and c.error is not None
    assert "no answer within 1.5 s" in c.error, c.error


async def test_a_hang_is_named_on_every_transport(
    loopback: LoopbackServer,
    judge: Make,  # noqa: F811
) -> None:
    loopback.configure(faults={"hang": 1.0}, hang_s=30)
    j = judge(timeout_s=1.0, max_retries=1)
    c = await j.complete(ask(j))
    assert c.error is not None and "no answer within 1 s" in c.error and "2 attempts" in c.error


@pytest.mark.parametrize("api", ["openai", "anthropic"])
async def test_a_key_echoed_in_an_answer_is_redacted(
    loopback: LoopbackServer,
    judge: Make,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    api: str,
) -> None:
    loopback.configure(expected_key=SECRET, policy=f"fixed:My key is {SECRET}. [[A]]")
    monkeypatch.setenv("RMB_TEST_KEY", SECRET)
    j = judge(api, api_key_env="RMB_TEST_KEY")
    c = await j.complete(ask(j))
    assert c.is_answer and SECRET not in c.text and "[redacted]" in c.text


def test_an_echoed_key_reaches_neither_cache_nor_reports(loopback: Any, tmp_path: Path) -> None:
    loopback.configure(
        expected_key="sk-loopback-echo-123456", policy="fixed:key sk-loopback-echo-123456 [[A]]"
    )
    data = write_items(tmp_path / "items.jsonl", 5)
    r = run_cli(
        subprocess_cmd(loopback, data, tmp_path, "--run-id", "r"),
        LOOPBACK_KEY="sk-loopback-echo-123456",
    )
    assert r.returncode == 0, r.stderr
    cache = (tmp_path / "cache" / CACHE_FILE).read_bytes()
    assert b"sk-loopback-echo" not in cache and b"[redacted]" in cache
    for p in (tmp_path / "runs" / "r").iterdir():
        assert "sk-loopback-echo" not in p.read_text(errors="replace"), p
    assert "sk-loopback-echo" not in r.stdout + r.stderr
    assert json.loads((tmp_path / "runs" / "r" / "report.json").read_text())
