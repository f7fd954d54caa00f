"""Scoring the whole RMB: every real item through the planner (both orders), a judge that always
picks the first answer shown, 1,000 bootstrap resamples; the time `score` takes (moved here from
tests/test_scoring.py, which keeps the exact scores).

    .venv/bin/python bench/scoring.py"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from data_load import DEFAULT as RMB_DIR  # noqa: E402

from benchmark.data import load  # noqa: E402
from benchmark.plan import plan  # noqa: E402
from benchmark.results import JudgedComparison  # noqa: E402
from benchmark.scoring import score  # noqa: E402
from prompts.parsers import Verdict  # noqa: E402


def measure(bootstrap: int = 1000) -> dict[str, Any]:
    items = load(RMB_DIR)
    first = Verdict("choice", choice=0)
    judged = [JudgedComparison(c, "k", first, "stop") for c in plan(items, "pairwise")]
    t0 = time.perf_counter()
    s = score(items, judged, bootstrap=bootstrap)
    seconds = time.perf_counter() - t0
    assert s.overall.accuracy == 0.5, s.overall.accuracy  # the always-first judge, both orders
    return {"comparisons": len(judged), "items": len(items), "seconds": round(seconds, 2)}


if __name__ == "__main__":
    print(json.dumps(measure(), indent=1))
