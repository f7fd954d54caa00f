"""Do two runs agree? Cohen's kappa between two runs' verdicts on the comparisons both judged
(same item, same answers in the same order, same variant), after each run's vote over samples.
A verdict's category is the answer it picked (by candidate id, so the order does not matter),
"tie", or a pointwise rating; comparisons either run got no valid verdict for are left out and
counted. kappa = (p_o − p_e) / (1 − p_e): 1 is full agreement, 0 what chance alone gives."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from benchmark.data import Category
from benchmark.results import JudgedComparison
from benchmark.scoring import Voted, scenario_name, vote_all


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    """Unweighted Cohen's kappa of two raters' labels; None when empty or when chance
    agreement is already 1 (both raters used one and the same label throughout)."""
    if len(a) != len(b):
        raise ValueError("kappa needs the two raters' labels for the same units")
    n = len(a)
    if n == 0:
        return None
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    expected = sum(ca[k] * cb[k] for k in ca) / n**2
    if expected >= 1:
        return None
    return (observed - expected) / (1 - expected)


@dataclass(frozen=True, slots=True)
class Kappa:
    name: str
    comparisons: int
    observed: float | None
    kappa: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "comparisons": self.comparisons,
            "observed": self.observed,
            "kappa": self.kappa,
        }


@dataclass(frozen=True, slots=True)
class Agreement:
    overall: Kappa
    scenarios: list[Kappa]
    # comparisons both judged where either verdict was invalid (left out)
    invalid: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "overall": self.overall.to_dict(),
            "scenarios": [k.to_dict() for k in self.scenarios],
            "invalid": self.invalid,
        }


def label(v: Voted) -> str | None:
    """The verdict's category, None when it has none (invalid)."""
    if v.pick is not None:
        return v.pick
    if v.verdict.kind == "score" and v.verdict.score is not None:
        return f"rating {v.verdict.score:g}"
    return None


def _labels(voted: Mapping[str, Sequence[Voted]]) -> dict[tuple[Any, ...], str | None]:
    out: dict[tuple[Any, ...], str | None] = {}
    for vs in voted.values():
        for v in vs:
            c = v.comparison
            out[(c.item_uid, c.kind, c.shown, c.variant)] = label(v)
    return out


def _kappa(name: str, pairs: Sequence[tuple[str, str]]) -> Kappa:
    a = [x for x, _ in pairs]
    b = [y for _, y in pairs]
    observed = sum(x == y for x, y in pairs) / len(pairs) if pairs else None
    return Kappa(name, len(pairs), observed, cohen_kappa(a, b))


def agreement(
    a: Mapping[str, Sequence[Voted]],
    b: Mapping[str, Sequence[Voted]],
    categories: Mapping[str, Category],
) -> Agreement:
    """Kappa overall and per scenario (`categories`: item uid → category)."""
    la, lb = _labels(a), _labels(b)
    pairs: list[tuple[str, str]] = []
    by_scenario: dict[str, list[tuple[str, str]]] = defaultdict(list)
    invalid = 0
    for key in la.keys() & lb.keys():
        x, y = la[key], lb[key]
        if x is None or y is None:
            invalid += 1
            continue
        pairs.append((x, y))
        cat = categories.get(key[0])
        if cat is not None:
            by_scenario[scenario_name(cat)].append((x, y))
    return Agreement(
        _kappa("Overall", pairs),
        [_kappa(k, v) for k, v in sorted(by_scenario.items())],
        invalid,
    )


def runs_agreement(
    a: Sequence[JudgedComparison],
    b: Sequence[JudgedComparison],
    categories: Mapping[str, Category],
) -> Agreement:
    """`agreement` of two runs' comparisons.jsonl lines, each run voted over its samples."""
    return agreement(vote_all(a)[0], vote_all(b)[0], categories)
