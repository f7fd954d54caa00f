"""Shared fixtures: the real RMB data from ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RMB_DIR = Path(os.environ.get("RMB_DATA") or REPO.parent / "shared" / "rmb" / "RMB_dataset")


@pytest.fixture(scope="session")
def rmb_dir() -> Path:
    if not (RMB_DIR / "Pairwise_set").is_dir():
        pytest.fail(f"real RMB data not found at {RMB_DIR}; set RMB_DATA")
    return RMB_DIR
