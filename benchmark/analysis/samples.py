"""Does voting help? With `--samples K` every comparison was asked K times; the accuracy of the
majority of the first k samples, for k = 1..K, scored exactly as a run with `--samples k`
would be (same vote, same rules, same seeded intervals). An even k can split: a tie."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmark.data import Item
from benchmark.results import JudgedComparison
from benchmark.scoring import Ties, score
from benchmark.scoring.stats import Interval


@dataclass(frozen=True, slots=True)
class SamplesPoint:
    k: int
    accuracy: float | None
    ci: Interval | None
    # subset name → accuracy
    subsets: dict[str, float | None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "accuracy": self.accuracy,
            "ci": self.ci.to_dict() if self.ci else None,
            "subsets": self.subsets,
        }


def samples_taken(judged: Iterable[JudgedComparison]) -> int:
    return 1 + max((j.comparison.sample_index for j in judged), default=0)


def majority_curve(
    items: Sequence[Item],
    judged: Sequence[JudgedComparison],
    *,
    ties: Ties = "strict",
    bootstrap: int = 1000,
    seed: int = 0,
) -> list[SamplesPoint]:
    """One point per k = 1..K; empty when the run took one sample."""
    k_max = samples_taken(judged)
    if k_max < 2:
        return []
    out = []
    for k in range(1, k_max + 1):
        s = score(
            items,
            [j for j in judged if j.comparison.sample_index < k],
            ties=ties,
            bootstrap=bootstrap,
            seed=seed,
        )
        out.append(
            SamplesPoint(
                k,
                s.overall.accuracy,
                s.overall.ci,
                {name: g.accuracy for name, g in s.subsets.items()},
            )
        )
    return out
