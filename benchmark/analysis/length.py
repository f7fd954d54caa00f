"""Is the judge fooled by length? Over the two-answer comparisons (after the vote over
samples), lengths in characters:

- picks longer: the share of valid choices between two answers of different length that went
  to the longer one (an always-longer judge: 1.0; a length-blind one: near the dataset's own
  share, `preferred_longer`);
- accuracy when the preferred answer is the longer one vs when it is the shorter one, and their
  difference (`longer_gap`): a judge blind to length is as often right either way (0), one that
  prefers length is right more often when the preferred answer happens to be the longer one —
  this, not "picks longer" (which also moves with accuracy), is the test of a length bias;
- accuracy by bin of the ratio chars(preferred) / chars(other).

Accuracy counts a tie as `tie` (0 strict, 0.5 half) and an invalid verdict as 0, as the
headline does. Intervals: seeded bootstrap over comparisons."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Any

from benchmark.analysis.duels import RATIO_BINS, Duel, ratio, ratio_bin
from benchmark.analysis.estimate import Estimate, estimate
from benchmark.scoring.stats import Interval, bootstrap_means, percentile_interval, rng_for

UNIT = "characters"


@dataclass(frozen=True, slots=True)
class LengthAnalysis:
    comparisons: int
    # comparisons whose two answers are equally long (left out of the longer/shorter split)
    equal_length: int
    # share of comparisons (of different lengths) where the dataset prefers the longer answer
    preferred_longer: float | None
    picks_longer: Estimate
    accuracy_preferred_longer: Estimate
    accuracy_preferred_shorter: Estimate
    # accuracy(preferred longer) − accuracy(preferred shorter), its interval from the two
    # groups' independent bootstrap draws
    longer_gap: float | None
    longer_gap_ci: Interval | None
    # accuracy by bin of chars(preferred) / chars(other), in RATIO_BINS order
    by_ratio: dict[str, Estimate]
    # picks longer per subset
    picks_longer_by_subset: dict[str, Estimate]

    def to_dict(self) -> dict[str, Any]:
        return {
            "unit": UNIT,
            "comparisons": self.comparisons,
            "equal_length": self.equal_length,
            "preferred_longer": self.preferred_longer,
            "picks_longer": self.picks_longer.to_dict(),
            "accuracy_preferred_longer": self.accuracy_preferred_longer.to_dict(),
            "accuracy_preferred_shorter": self.accuracy_preferred_shorter.to_dict(),
            "longer_gap": self.longer_gap,
            "longer_gap_ci": self.longer_gap_ci.to_dict() if self.longer_gap_ci else None,
            "by_ratio": {k: e.to_dict() for k, e in self.by_ratio.items()},
            "picks_longer_by_subset": {
                k: e.to_dict() for k, e in self.picks_longer_by_subset.items()
            },
        }


def length_analysis(
    duels: Sequence[Duel], *, tie: float = 0.0, bootstrap: int = 1000, seed: int = 0
) -> LengthAnalysis:
    picks_longer: list[float] = []
    by_subset: dict[str, list[float]] = defaultdict(list)
    when_longer: list[float] = []
    when_shorter: list[float] = []
    by_ratio: dict[str, list[float]] = {b: [] for b in RATIO_BINS}
    equal = 0
    for d in duels:
        s = d.score(tie)
        pref, other = d.item.preferred, d.other
        by_ratio[ratio_bin(ratio(d.chars(pref), d.chars(other)))].append(s)
        longer = d.longer
        if longer is None:
            equal += 1
            continue
        (when_longer if longer == pref else when_shorter).append(s)
        if d.chose:
            picked_longer = float(d.pick == longer)
            picks_longer.append(picked_longer)
            by_subset[d.item.category.subset].append(picked_longer)

    def est(values: list[float], name: str) -> Estimate:
        return estimate(values, f"length/{name}", bootstrap, seed)

    differ = len(when_longer) + len(when_shorter)
    gap, gap_ci = None, None
    if when_longer and when_shorter:
        gap = fmean(when_longer) - fmean(when_shorter)
        draws = bootstrap_means(
            when_longer, bootstrap, rng_for(seed, "length/gap longer")
        ) - bootstrap_means(when_shorter, bootstrap, rng_for(seed, "length/gap shorter"))
        gap_ci = percentile_interval(draws)
    return LengthAnalysis(
        comparisons=len(duels),
        equal_length=equal,
        preferred_longer=len(when_longer) / differ if differ else None,
        picks_longer=est(picks_longer, "picks longer"),
        accuracy_preferred_longer=est(when_longer, "preferred longer"),
        accuracy_preferred_shorter=est(when_shorter, "preferred shorter"),
        longer_gap=gap,
        longer_gap_ci=gap_ci,
        by_ratio={b: est(v, f"ratio {b}") for b, v in by_ratio.items() if v},
        picks_longer_by_subset={k: est(v, k) for k, v in sorted(by_subset.items())},
    )
