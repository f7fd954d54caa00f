"""`--base-url` is checked before any request; credentials inside it are refused, never echoed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from test_runner import subprocess_cmd, write_items
from test_runner_cli import run_cli

from judges.errors import UserError
from judges.urls import check_base_url, masked

BAD = [
    ("notaurl", "not an http\\(s\\) URL"),
    ("localhost:8000/v1", "not an http\\(s\\) URL"),
    ("ftp://127.0.0.1/v1", "not an http\\(s\\) URL"),
    ("http:///v1", "names no host"),
    ("http://127.0.0.1:99999/v1", "not a URL"),
    ("http://127.0.0.1:abc/v1", "not a URL"),
    ("http://127.0.0.1 :8000/v1", "spaces or control"),
    ("http://127.0.0.1:8000/v1\n", "spaces or control"),
    ("http://127.0.0.1:8000/v1#x", "fragment"),
]


@pytest.mark.parametrize(("url", "why"), BAD)
def test_not_a_url_is_one_line(url: str, why: str) -> None:
    with pytest.raises(UserError, match=why) as e:
        check_base_url(url)
    assert "\n" not in str(e.value)


SECRET = "sk-live-0123456789abcdef"
CREDENTIALED = [
    f"http://user:{SECRET}@127.0.0.1:8000/v1",
    f"http://{SECRET}@127.0.0.1:8000/v1",
    f"http://127.0.0.1:8000/v1?api_key={SECRET}",
    f"http://127.0.0.1:8000/v1?api-version=2024&key={SECRET}",
    f"http://127.0.0.1:8000/v1?token={SECRET}",
]


@pytest.mark.parametrize("url", CREDENTIALED)
def test_credentials_in_a_url_are_refused_and_masked(url: str) -> None:
    with pytest.raises(UserError, match=r"credential|--api-key-env") as e:
        check_base_url(url)
    assert SECRET not in str(e.value) and "***" in str(e.value)
    assert SECRET not in masked(url)


def test_a_good_url_passes() -> None:
    assert check_base_url("http://127.0.0.1:8000/v1/") == "http://127.0.0.1:8000/v1"
    assert check_base_url("https://x.openai.azure.com/v1?api-version=2024-10-21").endswith("21")


@pytest.mark.parametrize("url", ["notaurl", CREDENTIALED[0], CREDENTIALED[2]])
def test_rmb_run_fails_at_once_without_a_request(loopback: Any, tmp_path: Path, url: str) -> None:
    data = write_items(tmp_path / "items.jsonl", 5)
    cmd = subprocess_cmd(loopback, data, tmp_path)
    cmd[cmd.index("--base-url") + 1] = url
    t = time.monotonic()
    r = run_cli(cmd, LOOPBACK_KEY="sk-loopback")
    assert r.returncode == 2, r.stderr
    assert time.monotonic() - t < 20  # was 133 s of retries for `notaurl`
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert SECRET not in r.stderr + r.stdout
    assert loopback.stats()["requests"] == 0
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()
