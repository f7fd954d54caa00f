"""A rate with its seeded bootstrap interval: the one shape every analysis reports."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Any

from benchmark.scoring.stats import Interval, bootstrap_means, percentile_interval, rng_for


@dataclass(frozen=True, slots=True)
class Estimate:
    value: float | None
    ci: Interval | None
    n: int  # how many units (comparisons, items) the value is the mean of

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "ci": self.ci.to_dict() if self.ci else None, "n": self.n}


def estimate(values: Sequence[float], name: str, bootstrap: int, seed: int) -> Estimate:
    """Mean of `values` with the 95% percentile bootstrap interval drawn from (seed, name)."""
    if not values:
        return Estimate(None, None, 0)
    draws = bootstrap_means(values, bootstrap, rng_for(seed, name))
    return Estimate(fmean(values), percentile_interval(draws), len(values))
