"""Shared fixtures: the real RMB data from ../shared."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.loopback_server import LoopbackServer, running_server

REPO = Path(__file__).resolve().parent.parent
RMB_DIR = Path(os.environ.get("RMB_DATA") or REPO.parent / "shared" / "rmb" / "RMB_dataset")


@pytest.fixture(scope="session")
def rmb_dir() -> Path:
    if not (RMB_DIR / "Pairwise_set").is_dir():
        pytest.fail(f"real RMB data not found at {RMB_DIR}; set RMB_DATA")
    return RMB_DIR


# The programmable OpenAI/Anthropic test server (tests/support/loopback_server.py), one process per
# session; `loopback` hands each test a server reset to its start-up configuration.
@pytest.fixture(scope="session")
def loopback_server() -> Iterator[LoopbackServer]:
    with running_server() as srv:
        yield srv


@pytest.fixture
def loopback(loopback_server: LoopbackServer) -> LoopbackServer:
    loopback_server.reset()
    return loopback_server
