"""Item results to the scores of a run: per scenario, helpfulness task, subset (micro and macro)
and Overall, with seeded bootstrap intervals and the summed counts (see benchmark.scoring)."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from statistics import fmean
from typing import Any

import numpy as np

from benchmark.data import SUBSETS, BoNItem, Category, Item, PairwiseItem
from benchmark.results import JudgedComparison

from .items import TALLY_FIELDS, TIES, ItemResult, ScoringError, Tally, Ties, score_item
from .stats import Interval, bootstrap_means, percentile_interval, rng_for
from .votes import vote_all

# the paper's column order: Helpfulness BoN, Helpfulness Pairwise, Harmlessness BoN, ...
SUBSET_NAMES = tuple(Category(s, g, "", "").subset for g, s in SUBSETS)  # type: ignore[arg-type]
TOP_REASONS = 5


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


@dataclass(frozen=True, slots=True)
class GroupScore(Tally):
    """Accuracy of a set of items with its interval and the columns that qualify it (the
    items' tallies summed)."""

    name: str
    items: int
    accuracy: float | None
    ci: Interval | None = None
    # subsets only: the unweighted mean of their scenarios' accuracies
    macro: float | None = None
    macro_ci: Interval | None = None
    invalid_items: int = 0
    top_invalid_reasons: tuple[tuple[str, int], ...] = ()

    @property
    def consistency(self) -> float | None:
        return _rate(self.swaps_consistent, self.swaps)

    @property
    def tie_rate(self) -> float | None:
        return _rate(self.ties, self.comparisons)

    @property
    def invalid_rate(self) -> float | None:
        return _rate(self.invalid_comparisons, self.comparisons)

    @property
    def first_position_rate(self) -> float | None:
        return _rate(self.first_picks, self.two_way_choices)

    def to_dict(self) -> dict[str, Any]:
        own = {f.name: getattr(self, f.name) for f in fields(GroupScore)}
        # report.json's key order, as before the counts became a Tally
        d = {k: own[k] for k in _GROUP_KEYS}
        d["ci"] = self.ci.to_dict() if self.ci else None
        d["macro_ci"] = self.macro_ci.to_dict() if self.macro_ci else None
        d["top_invalid_reasons"] = [[r, n] for r, n in self.top_invalid_reasons]
        for k in ("consistency", "tie_rate", "invalid_rate", "first_position_rate"):
            d[k] = getattr(self, k)
        return d


_GROUP_KEYS = (
    *("name", "items", "accuracy", "ci", "macro", "macro_ci", "invalid_items"),
    *TALLY_FIELDS,
    "top_invalid_reasons",
)
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NUMBER = re.compile(r"\w*\d[\w.]*")  # a number, or a word holding one (an id, "503")


def reason_kind(reason: str) -> str:
    """A reason with its particulars blanked, so the report counts kinds of failure: "verdict
    '[[D]]' is not one of A, B" and "verdict '[[E]]' ..." are one line, as are two HTTP 503s
    with different request ids. Items keep their reasons verbatim."""
    return _NUMBER.sub("#", _QUOTED.sub("'…'", reason))[:120]


def summarize(
    name: str,
    results: Sequence[ItemResult],
    samples: np.ndarray,
    *,
    accuracy: float | None = None,
    macro: tuple[float, np.ndarray] | None = None,
) -> GroupScore:
    """Sum the counts of `results`; accuracy is their mean unless given (Overall)."""
    reasons = Counter(reason_kind(r) for res in results for r in res.reasons)
    return GroupScore(
        name=name,
        items=len(results),
        accuracy=accuracy
        if accuracy is not None
        else (fmean(r.score for r in results) if results else None),
        ci=percentile_interval(samples),
        macro=macro[0] if macro else None,
        macro_ci=percentile_interval(macro[1]) if macro else None,
        invalid_items=sum(r.invalid for r in results),
        top_invalid_reasons=tuple(reasons.most_common(TOP_REASONS)),
        **Tally.sum(results),
    )


def scenario_name(category: Category) -> str:
    """'Helpfulness BoN / Code / Data Management' or 'Harmlessness Pairwise / S3'."""
    if category.goal == "helpfulness":
        return f"{category.subset} / {category.task} / {category.scenario}"
    return f"{category.subset} / {category.scenario}"


def task_name(category: Category) -> str:
    return f"{category.subset} / {category.task}"


@dataclass
class Scores:
    ties: Ties
    bootstrap: int
    seed: int
    subsets: dict[str, GroupScore]
    overall: GroupScore
    tasks: dict[str, GroupScore]
    scenarios: dict[str, GroupScore]
    items: list[ItemResult]
    missing_subsets: list[str] = field(default_factory=list)
    # items given but with no judged comparison (a run in progress), per subset
    unjudged: dict[str, int] = field(default_factory=dict)
    # judged comparisons whose item is not among the items given
    unknown_comparisons: int = 0

    def to_dict(self, *, items: bool = True) -> dict[str, Any]:
        return {
            "options": {"ties": self.ties, "bootstrap": self.bootstrap, "seed": self.seed},
            "overall": self.overall.to_dict(),
            "subsets": {k: g.to_dict() for k, g in self.subsets.items()},
            "missing_subsets": self.missing_subsets,
            "tasks": {k: g.to_dict() for k, g in self.tasks.items()},
            "scenarios": {k: g.to_dict() for k, g in self.scenarios.items()},
            "unjudged": self.unjudged,
            "unknown_comparisons": self.unknown_comparisons,
            **({"items": [r.to_dict() for r in self.items]} if items else {}),
        }


def _subsets(
    by_subset: Mapping[str, Sequence[ItemResult]],
    scenarios: Mapping[str, GroupScore],
    scenario_samples: Mapping[str, np.ndarray],
    boot: Callable[[str, Sequence[ItemResult]], np.ndarray],
    resampled: bool,
) -> tuple[dict[str, GroupScore], dict[str, np.ndarray]]:
    """Each subset micro (over its items) and macro (over its scenarios; its interval from
    theirs), in the paper's order, with its bootstrap means."""
    subsets: dict[str, GroupScore] = {}
    subset_samples: dict[str, np.ndarray] = {}
    for name in SUBSET_NAMES:
        rs = by_subset.get(name)
        if not rs:
            continue
        subset_samples[name] = boot(name, rs)
        own = [k for k in scenarios if k.startswith(f"{name} / ")]
        macro_value = fmean(scenarios[k].accuracy or 0.0 for k in own)
        macro_samples = (
            np.mean([scenario_samples[k] for k in own], axis=0) if resampled else np.empty(0)
        )
        subsets[name] = summarize(
            name, rs, subset_samples[name], macro=(macro_value, macro_samples)
        )
    return subsets, subset_samples


def aggregate(
    results: Sequence[ItemResult],
    *,
    ties: Ties = "strict",
    bootstrap: int = 1000,
    seed: int = 0,
    unjudged: Mapping[str, int] | None = None,
    unknown_comparisons: int = 0,
) -> Scores:
    """Item results → scenario, task, subset and Overall scores with seeded bootstrap intervals.

    Subset macro intervals and the Overall interval resample items within each scenario or
    subset (stratified), reusing those groups' resamples."""

    def groups(key: Any) -> dict[str, list[ItemResult]]:
        out: dict[str, list[ItemResult]] = defaultdict(list)
        for r in results:
            out[key(r.category)].append(r)
        return dict(sorted(out.items()))

    def boot(name: str, rs: Sequence[ItemResult]) -> np.ndarray:
        return bootstrap_means([r.score for r in rs], bootstrap, rng_for(seed, name))

    by_scenario = groups(scenario_name)
    scenario_samples = {k: boot(k, rs) for k, rs in by_scenario.items()}
    scenarios = {k: summarize(k, rs, scenario_samples[k]) for k, rs in by_scenario.items()}

    by_task = groups(task_name)
    tasks = {
        k: summarize(k, rs, boot(k, rs))
        for k, rs in by_task.items()
        if rs[0].category.goal == "helpfulness"
    }

    subsets, subset_samples = _subsets(
        groups(lambda c: c.subset), scenarios, scenario_samples, boot, bootstrap > 0
    )
    overall_acc = fmean(g.accuracy or 0.0 for g in subsets.values()) if subsets else None
    overall_samples = (
        np.mean(list(subset_samples.values()), axis=0) if subsets and bootstrap > 0 else np.empty(0)
    )
    overall = summarize("Overall", results, overall_samples, accuracy=overall_acc)
    return Scores(
        ties=ties,
        bootstrap=bootstrap,
        seed=seed,
        subsets=subsets,
        overall=overall,
        tasks=tasks,
        scenarios=scenarios,
        items=list(results),
        missing_subsets=[n for n in SUBSET_NAMES if n not in subsets],
        unjudged=dict(unjudged or {}),
        unknown_comparisons=unknown_comparisons,
    )


def score(
    items: Iterable[Item],
    judged: Iterable[JudgedComparison],
    *,
    ties: Ties = "strict",
    bootstrap: int = 1000,
    seed: int = 0,
) -> Scores:
    """Score judged comparisons against their items (see the module docstring for the rules)."""
    if ties not in TIES:
        raise ScoringError(f"ties must be one of {', '.join(TIES)}, got {ties!r}")
    by_uid: dict[str, PairwiseItem | BoNItem] = {it.uid: it for it in items}
    voted, costs = vote_all(judged)
    unknown = sum(len(v) for uid, v in voted.items() if uid not in by_uid)
    results = []
    unjudged: Counter[str] = Counter()
    for uid, item in by_uid.items():
        if uid in voted:
            results.append(score_item(item, voted[uid], ties, costs[uid]))
        else:
            unjudged[item.category.subset] += 1
    return aggregate(
        results,
        ties=ties,
        bootstrap=bootstrap,
        seed=seed,
        unjudged=dict(unjudged),
        unknown_comparisons=unknown,
    )
