"""All the analyses of one run, from what a run directory holds: its judged comparisons, the
item results scoring made of them, and the items' facts (lengths, writers)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from benchmark.analysis.calibration import (
    Calibration,
    MarginRanking,
    duel_calibration,
    margin_ranking,
    rating_margins,
)
from benchmark.analysis.duels import duels
from benchmark.analysis.facts import ItemFacts
from benchmark.analysis.generators import GeneratorAnalysis, generator_analysis
from benchmark.analysis.length import UNIT, LengthAnalysis, length_analysis
from benchmark.analysis.position import PositionAnalysis, position_analysis
from benchmark.analysis.samples import SamplesPoint, majority_curve
from benchmark.data import Item
from benchmark.results import JudgedComparison
from benchmark.scoring import Scores, vote_all


@dataclass(frozen=True, slots=True)
class RunAnalysis:
    # None when the run has no two-answer comparison (listwise, pointwise)
    length: LengthAnalysis | None
    position: PositionAnalysis | None
    generators: GeneratorAnalysis | None
    # None when no verdict carried probabilities
    calibration: Calibration | None
    # pointwise ratings: how well the rating gap ranks right items above wrong ones
    rating_margin: MarginRanking | None
    # empty unless the run took several samples per comparison
    samples: list[SamplesPoint]

    def to_dict(self) -> dict[str, Any]:
        def d(x: Any) -> Any:
            return x.to_dict() if x is not None else None

        return {
            "length_unit": UNIT,
            "length": d(self.length),
            "position": d(self.position),
            "generators": d(self.generators),
            "calibration": d(self.calibration),
            "rating_margin": d(self.rating_margin),
            "samples": [p.to_dict() for p in self.samples],
        }


def analyse_run(
    items: Sequence[Item],
    facts: Mapping[str, ItemFacts],
    judged: Sequence[JudgedComparison],
    scores: Scores,
    *,
    judge: str | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
) -> RunAnalysis:
    """`items` may be outlines (no texts): the lengths come from `facts`."""
    voted, _ = vote_all(judged)
    ds = duels(voted, facts)
    tie = 0.5 if scores.ties == "half" else 0.0
    return RunAnalysis(
        length=length_analysis(ds, tie=tie, bootstrap=bootstrap, seed=seed) if ds else None,
        position=position_analysis(ds, scores.items, bootstrap=bootstrap, seed=seed)
        if ds
        else None,
        generators=generator_analysis(ds, judge, bootstrap=bootstrap, seed=seed) if ds else None,
        calibration=duel_calibration(ds, bootstrap=bootstrap, seed=seed),
        rating_margin=margin_ranking(*rating_margins(voted, facts)),
        samples=majority_curve(items, judged, ties=scores.ties, bootstrap=bootstrap, seed=seed),
    )
