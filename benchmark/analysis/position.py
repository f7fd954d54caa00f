"""Is the judge fooled by position? Picks A (the share of valid two-answer choices that went to
the answer shown first) overall, per scenario and by bin of chars(first) / chars(second) — which
separates a position bias (flat across bins) from a length bias (rising with the ratio) — and
the share of items whose verdict flips when the order changes. Intervals: seeded bootstrap over
comparisons (Picks A) and over items (flips)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from benchmark.analysis.duels import RATIO_BINS, Duel, ratio, ratio_bin
from benchmark.analysis.estimate import Estimate, estimate
from benchmark.scoring import ItemResult, scenario_name


@dataclass(frozen=True, slots=True)
class PositionAnalysis:
    picks_first: Estimate
    by_scenario: dict[str, Estimate]
    # Picks A by bin of chars(first) / chars(second), in RATIO_BINS order
    by_length: dict[str, Estimate]
    # items whose answers were judged in several orders: the share with a changed winner
    flips: Estimate

    def to_dict(self) -> dict[str, Any]:
        return {
            "picks_first": self.picks_first.to_dict(),
            "by_scenario": {k: e.to_dict() for k, e in self.by_scenario.items()},
            "by_length": {k: e.to_dict() for k, e in self.by_length.items()},
            "flips": self.flips.to_dict(),
        }


def position_analysis(
    duels: Sequence[Duel], results: Sequence[ItemResult], *, bootstrap: int = 1000, seed: int = 0
) -> PositionAnalysis:
    first: list[float] = []
    by_scenario: dict[str, list[float]] = defaultdict(list)
    by_length: dict[str, list[float]] = {b: [] for b in RATIO_BINS}
    for d in duels:
        if not d.chose:
            continue
        x = float(d.pick == d.first)
        first.append(x)
        by_scenario[scenario_name(d.item.category)].append(x)
        by_length[ratio_bin(ratio(d.chars(d.first), d.chars(d.second)))].append(x)
    # scoring already counts, per item, the answer sets judged in several orders and how many
    # kept their winner
    flips = [float(r.swaps_consistent < r.swaps) for r in results if r.swaps]

    def est(values: list[float], name: str) -> Estimate:
        return estimate(values, f"position/{name}", bootstrap, seed)

    return PositionAnalysis(
        picks_first=est(first, "picks first"),
        by_scenario={k: est(v, k) for k, v in sorted(by_scenario.items())},
        by_length={b: est(v, f"ratio {b}") for b, v in by_length.items() if v},
        flips=est(flips, "flips"),
    )
