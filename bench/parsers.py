"""Parser throughput on hostile 1 MB judge answers (tests/hostile_answers.py): every parser on
every pattern, CPU time (best of 3, the machine is shared), in MB/s."""

from __future__ import annotations

import statistics
import time

from support.hostile_answers import HOSTILE

from judges.base import Completion
from prompts.parsers import PARSERS, parse

SIZE = 1_000_000


def measure(size: int = SIZE, repeat: int = 3) -> dict[str, object]:
    rates: dict[tuple[str, str], float] = {}
    for family, make in HOSTILE.items():
        completion = Completion(make(size))
        for parser in PARSERS:
            best = float("inf")
            for _ in range(repeat):
                t = time.process_time()
                parse(parser, completion, 3 if parser == "verdict-index" else 2)
                best = min(best, time.process_time() - t)
            rates[family, parser] = size / 1e6 / max(best, 1e-6)
    (slow_family, slow_parser), slowest = min(rates.items(), key=lambda kv: kv[1])
    return {
        "slowest_mb_s": slowest,
        "slowest": f"{slow_parser} on {slow_family!r}",
        "median_mb_s": statistics.median(rates.values()),
        "answers": len(HOSTILE),
        "parsers": len(PARSERS),
    }


if __name__ == "__main__":
    print(measure())
