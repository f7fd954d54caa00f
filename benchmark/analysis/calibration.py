"""Can the judge's confidence be trusted? For verdicts that carry a probability
(`pairwise-logprob`: P(A), P(B) from the verdict token's top logprobs) the confidence of a
comparison is the probability of the answer it chose, and it is right when that is the preferred
answer. Over those comparisons:

- reliability diagram: equal-width confidence bins from 1/2 (a two-way choice is never less
  sure than that) to 1, each with its mean confidence and accuracy;
- ECE = Σ_b (n_b / N) · |accuracy_b − confidence_b|;
- Brier score = mean (confidence − right)², with its bootstrap interval;
- AUROC of confidence for being right (Mann–Whitney; tied confidences count one half);
- selective accuracy: the accuracy of the most confident 50% / 80% of the comparisons (a
  confidence shared across the cut counts with its group's mean accuracy, so the answer does not
  depend on the order of ties).

A pointwise rating is no probability, so a rating template gets only the measures that need a
ranking, not a probability: its confidence in an item is the gap between its top rating and the
runner-up's (the answer it "chose" is the one rated highest), it is right when that is the
preferred answer alone, and AUROC and selective accuracy are computed on that gap."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from benchmark.analysis.duels import Duel
from benchmark.analysis.estimate import Estimate, estimate
from benchmark.analysis.facts import ItemFacts
from benchmark.scoring import Voted

COVERAGES = (0.5, 0.8)


@dataclass(frozen=True, slots=True)
class ReliabilityBin:
    low: float
    high: float
    n: int
    confidence: float
    accuracy: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "low": self.low,
            "high": self.high,
            "n": self.n,
            "confidence": self.confidence,
            "accuracy": self.accuracy,
        }


@dataclass(frozen=True, slots=True)
class Calibration:
    comparisons: int
    accuracy: float
    mean_confidence: float
    bins: list[ReliabilityBin]
    ece: float
    brier: Estimate
    # None when every comparison is right, or every one wrong
    auroc: float | None
    # coverage (0.5, 0.8) → accuracy of that most confident share
    selective: dict[float, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "comparisons": self.comparisons,
            "accuracy": self.accuracy,
            "mean_confidence": self.mean_confidence,
            "bins": [b.to_dict() for b in self.bins],
            "ece": self.ece,
            "brier": self.brier.to_dict(),
            "auroc": self.auroc,
            "selective": {f"{c:g}": a for c, a in self.selective.items()},
        }


def reliability(
    conf: np.ndarray, right: np.ndarray, bins: int = 10, low: float = 0.5
) -> list[ReliabilityBin]:
    edges = np.linspace(low, 1.0, bins + 1)
    # the top edge belongs to the last bin; a confidence under `low` to the first
    idx = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, bins - 1)
    out = []
    for b in range(bins):
        mask = idx == b
        if mask.any():
            out.append(
                ReliabilityBin(
                    float(edges[b]),
                    float(edges[b + 1]),
                    int(mask.sum()),
                    float(conf[mask].mean()),
                    float(right[mask].mean()),
                )
            )
    return out


def auroc(conf: np.ndarray, right: np.ndarray) -> float | None:
    """P(a right comparison is more confident than a wrong one), ties one half."""
    pos, neg = int(right.sum()), int((~right).sum())
    if pos == 0 or neg == 0:
        return None
    # mid-ranks: tied confidences share the mean of their ranks
    _, inverse, counts = np.unique(conf, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    mid = upper - (counts - 1) / 2
    rank_sum = float(mid[inverse][right].sum())
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def selective_accuracy(conf: np.ndarray, right: np.ndarray, coverage: float) -> float:
    """Accuracy of the round(coverage · N) most confident comparisons (at least one)."""
    k = max(1, round(coverage * len(conf)))
    order = np.argsort(-conf, kind="stable")
    threshold = conf[order[k - 1]]
    above = conf > threshold
    at = conf == threshold
    taken_at = k - int(above.sum())
    return (float(right[above].sum()) + taken_at * float(right[at].mean())) / k


def calibration(
    confidence: Sequence[float],
    right: Sequence[bool],
    *,
    bins: int = 10,
    low: float = 0.5,
    bootstrap: int = 1000,
    seed: int = 0,
) -> Calibration | None:
    """The calibration of `confidence` (of the choice made) for being `right`; None if empty."""
    if not confidence:
        return None
    c = np.asarray(confidence, dtype=float)
    r = np.asarray(right, dtype=bool)
    table = reliability(c, r, bins, low)
    n = len(c)
    ece = sum(b.n / n * abs(b.accuracy - b.confidence) for b in table)
    sq = (c - r) ** 2
    # the bootstrap draws counts per distinct value (stats.py): squared errors of free
    # probabilities are all distinct, so the interval is drawn from them rounded to 0.001 (an
    # error far below the interval's width; the point value is exact)
    brier = estimate(np.round(sq, 3).tolist(), "calibration/brier", bootstrap, seed)
    return Calibration(
        comparisons=n,
        accuracy=float(r.mean()),
        mean_confidence=float(c.mean()),
        bins=table,
        ece=float(ece),
        brier=replace(brier, value=float(sq.mean())),
        auroc=auroc(c, r),
        selective={cov: selective_accuracy(c, r, cov) for cov in COVERAGES},
    )


def duel_calibration(
    duels: Sequence[Duel], *, bootstrap: int = 1000, seed: int = 0
) -> Calibration | None:
    """Calibration of the two-answer comparisons whose verdict gave probabilities."""
    conf: list[float] = []
    right: list[bool] = []
    for d in duels:
        if d.p_first is None or not d.chose or math.isnan(d.p_first):
            continue
        p_pick = d.p_first if d.pick == d.first else 1 - d.p_first
        conf.append(p_pick)
        right.append(d.pick == d.item.preferred)
    return calibration(conf, right, bootstrap=bootstrap, seed=seed)


@dataclass(frozen=True, slots=True)
class MarginRanking:
    """How well a rating judge's margin ranks its right items above its wrong ones."""

    items: int  # item × variant rated in full
    accuracy: float
    auroc: float | None
    selective: dict[float, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "accuracy": self.accuracy,
            "auroc": self.auroc,
            "selective": {f"{c:g}": a for c, a in self.selective.items()},
        }


def rating_margins(
    voted: Mapping[str, Sequence[Voted]], facts: Mapping[str, ItemFacts]
) -> tuple[list[float], list[bool]]:
    """Per item and variant whose every answer got a rating: the gap between the top rating
    and the runner-up's, and whether the preferred answer alone is on top."""
    gaps: list[float] = []
    right: list[bool] = []
    for uid, vs in voted.items():
        item = facts.get(uid)
        if item is None:
            continue
        by_variant: dict[int, dict[str, float]] = defaultdict(dict)
        for v in vs:
            c = v.comparison
            if c.kind == "pointwise" and v.verdict.kind == "score" and v.verdict.score is not None:
                by_variant[c.variant][c.shown[0]] = v.verdict.score
        for ratings in by_variant.values():
            if set(ratings) != set(item.answers):
                continue
            top, second = sorted(ratings.values(), reverse=True)[:2]
            gaps.append(top - second)
            right.append(ratings[item.preferred] == top > second)
    return gaps, right


def margin_ranking(gaps: Sequence[float], right: Sequence[bool]) -> MarginRanking | None:
    if not gaps:
        return None
    g = np.asarray(gaps, dtype=float)
    r = np.asarray(right, dtype=bool)
    return MarginRanking(
        len(g),
        float(r.mean()),
        auroc(g, r),
        {cov: selective_accuracy(g, r, cov) for cov in COVERAGES},
    )
