"""One item's score under the RMB rules (see benchmark.scoring), and the counts that qualify it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from statistics import fmean
from typing import Any, Literal

from benchmark.data import PREFERRED, Category, Item
from judges.errors import UserError

from .votes import Voted

Ties = Literal["strict", "half"]
TIES: tuple[Ties, ...] = ("strict", "half")


class ScoringError(UserError):
    """Judged comparisons that cannot be scored against the items given."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Tally:
    """The counts every report column is summed from: one record for an item (ItemResult) and
    for a group of items (GroupScore), summed by `Tally.sum`."""

    comparisons: int = 0  # after voting
    ties: int = 0
    invalid_comparisons: int = 0
    # comparisons of the same candidates judged in several orders, and how many agreed
    swaps: int = 0
    swaps_consistent: int = 0
    # two-answer choices, and how many picked the answer shown first (position bias)
    two_way_choices: int = 0
    first_picks: int = 0
    # what the judge's answers cost: samples, tokens, USD, and answers read from the cache
    samples: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    cached: int = 0

    @staticmethod
    def sum(tallies: Sequence[Tally]) -> dict[str, Any]:
        """Field by field, as keyword arguments for a Tally (or a record built on it)."""
        return {f: sum(getattr(t, f) for t in tallies) for f in TALLY_FIELDS}


TALLY_FIELDS = tuple(f.name for f in fields(Tally))


@dataclass(frozen=True, slots=True)
class ItemResult(Tally):
    """One item's score and its counts."""

    uid: str
    category: Category
    kind: str
    score: float
    invalid: bool = False
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        # by hand (dataclasses.asdict deep-copies: a second on the full RMB); fields at their
        # default are left out, from_dict restores them
        d: dict[str, Any] = {"uid": self.uid, "category": self.category.path}
        for name, default in _ITEM_DEFAULTS.items():
            value = getattr(self, name)
            if value != default:
                d[name] = list(value) if isinstance(value, tuple) else value
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ItemResult:
        """Read back from a report.json; a value of the wrong kind (a tampered or damaged
        file) is a ValueError naming the item and the field, never a crash later on."""
        fields = dict(d)
        uid = d["uid"]
        fields["category"] = Category.parse(d["category"])
        fields["reasons"] = tuple(d.get("reasons", ()))
        for name, value in fields.items():
            if not _ITEM_KINDS.get(name, lambda v: True)(value):
                raise ValueError(f"item {str(uid)[:80]!r}: {name} = {str(value)[:80]!r}")
        return cls(**fields)


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**53


def _amount(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v < 1e15


# what each ItemResult field read from a file must be
_ITEM_KINDS: dict[str, Any] = {
    "uid": lambda v: isinstance(v, str),
    "kind": lambda v: isinstance(v, str),
    "score": lambda v: _amount(v) and v <= 1,
    "invalid": lambda v: isinstance(v, bool),
    "reasons": lambda v: all(isinstance(r, str) for r in v),
    **{name: _count for name in TALLY_FIELDS},
    "cost_usd": _amount,
}

# report.json's key order for an item (as it was before the counts became a Tally)
_ITEM_KEYS = ("kind", "score", "invalid", *TALLY_FIELDS[:3], "reasons", *TALLY_FIELDS[3:])
_ITEM_DEFAULTS: dict[str, Any] = {
    f.name: f.default if f.default is not MISSING else None
    for f in sorted(
        (f for f in fields(ItemResult) if f.name in _ITEM_KEYS),
        key=lambda f: _ITEM_KEYS.index(f.name),
    )
}


def _preferred(item: Item) -> str:
    return next(c for c in item.candidates() if c in PREFERRED)


def _usable(v: Voted) -> bool:
    if v.comparison.kind == "pointwise":
        return v.verdict.kind == "score" and v.verdict.score is not None
    return v.pick is not None


def _why_invalid(v: Voted) -> str:
    verdict = v.verdict
    if verdict.kind == "invalid":
        return verdict.reason or "invalid verdict"
    if verdict.kind == "choice":
        if verdict.choice is None:
            return "choice verdict without a position"
        return f"choice {verdict.choice} outside the {len(v.comparison.shown)} answers shown"
    return f"unexpected {verdict.kind} verdict for a {v.comparison.kind} comparison"


class _Invalid:
    """Invalid/missing bookkeeping shared by the per-kind rules."""

    def __init__(self) -> None:
        self.invalid = False
        self.reasons: list[str] = []

    def fail(self, reason: str) -> float:
        self.invalid = True
        self.reasons.append(reason)
        return 0.0


def _duel_score(item: Item, voted: list[Voted], tie: float, t: _Invalid) -> float:
    best = _preferred(item)
    opponents = [c for c in item.candidates() if c != best]
    per_opponent: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for v in voted:
        shown = v.comparison.shown
        if len(shown) != 2 or best not in shown:
            raise ScoringError(
                f"comparison {v.comparison.id}: a duel must show '{best}' and one other answer"
            )
        pick = v.pick
        s = (
            t.fail(_why_invalid(v))
            if pick is None
            else tie
            if pick == "tie"
            else float(pick == best)
        )
        per_opponent[shown[1 - shown.index(best)]].append((v.comparison.variant, s))
    # the k-th order is each opponent's k-th comparison by variant: under `--orders random` the
    # variant is a per-comparison coin, so one order mixes variants
    orders = max(len(cs) for cs in per_opponent.values())
    ranked = {o: [s for _, s in sorted(cs)] for o, cs in per_opponent.items()}
    order_scores = []
    for k in range(orders):
        order_scores.append(
            min(
                ranked[o][k]
                if k < len(ranked.get(o, ()))
                else t.fail(f"missing comparison {best} vs {o}")
                for o in opponents
            )
        )
    return fmean(order_scores)


def _listwise_score(item: Item, voted: list[Voted], ties: Ties, t: _Invalid) -> float:
    best = _preferred(item)
    scores = []
    for v in voted:
        pick = v.pick
        if pick is None:
            scores.append(t.fail(_why_invalid(v)))
        elif pick == "tie":
            scores.append(1 / len(v.comparison.shown) if ties == "half" else 0.0)
        else:
            scores.append(float(pick == best))
    return fmean(scores)


def rank_score(best: float, others: Sequence[float], ties: Ties) -> float:
    """1 if `best` is strictly above every other value; a shared top value gives 0 (strict) or
    1/k when k values share it (half); else 0. Pointwise ratings and reward models use this."""
    top = max(others)
    if best > top:
        return 1.0
    if best == top and ties == "half":
        return 1 / (1 + sum(1 for o in others if o == best))
    return 0.0


def _pointwise_score(item: Item, voted: list[Voted], ties: Ties, t: _Invalid) -> float:
    best = _preferred(item)
    candidates = list(item.candidates())
    by_variant: dict[int, dict[str, float | None]] = defaultdict(dict)
    for v in voted:
        (cand,) = v.comparison.shown
        ok = _usable(v)
        if not ok:
            t.fail(_why_invalid(v))
        by_variant[v.comparison.variant][cand] = v.verdict.score if ok else None
    scores = []
    for variant in sorted(by_variant):
        got = by_variant[variant]
        missing = [c for c in candidates if c not in got]
        for c in missing:
            t.fail(f"missing rating of {c}")
        ratings = [got.get(c) for c in candidates]
        if missing or any(r is None for r in ratings):
            scores.append(0.0)
            continue
        best_score = got[best]
        assert best_score is not None
        others = [r for c, r in got.items() if c != best and r is not None]
        scores.append(rank_score(best_score, others, ties))
    return fmean(scores)


def _consistency(voted: list[Voted]) -> tuple[int, int]:
    """Same candidates judged in several display orders: how many sets, how many agreed."""
    outcomes: dict[frozenset[str], dict[tuple[str, ...], str]] = defaultdict(dict)
    for v in voted:
        pick = v.pick
        if len(v.comparison.shown) > 1 and pick is not None:
            outcomes[frozenset(v.comparison.shown)][v.comparison.shown] = pick
    swapped = [o for o in outcomes.values() if len(o) > 1]
    return len(swapped), sum(1 for o in swapped if len(set(o.values())) == 1)


def score_item(
    item: Item, voted: list[Voted], ties: Ties, cost: Mapping[str, Any] | None = None
) -> ItemResult:
    """`cost`: what the item's judged lines cost (votes.COST_FIELDS, summed by vote_all)."""
    kind = _check(item, voted)
    t = _Invalid()
    if kind in ("pairwise", "bon-pairwise"):
        s = _duel_score(item, voted, 0.5 if ties == "half" else 0.0, t)
    elif kind == "listwise":
        s = _listwise_score(item, voted, ties, t)
    elif kind == "pointwise":
        s = _pointwise_score(item, voted, ties, t)
    else:
        raise ScoringError(f"item {item.uid}: unknown comparison kind {kind!r}")
    swaps, agreed = _consistency(voted)
    n_ties = n_invalid = two_way = firsts = 0
    for v in voted:
        n_ties += v.verdict.kind == "tie"
        n_invalid += not _usable(v)
        if len(v.comparison.shown) == 2 and v.verdict.kind == "choice":
            two_way += 1
            firsts += v.verdict.choice == 0
    return ItemResult(
        item.uid,
        item.category,
        kind,
        s,
        t.invalid,
        tuple(t.reasons),
        comparisons=len(voted),
        ties=n_ties,
        invalid_comparisons=n_invalid,
        swaps=swaps,
        swaps_consistent=agreed,
        two_way_choices=two_way,
        first_picks=firsts,
        **(cost or {}),
    )


def _check(item: Item, voted: list[Voted]) -> str:
    """The one comparison kind the item was judged with; the candidates shown are its own."""
    kinds = {v.comparison.kind for v in voted}
    if len(kinds) != 1:
        raise ScoringError(
            f"item {item.uid}: judged with several kinds {sorted(kinds)}; score one at a time"
        )
    (kind,) = kinds
    known = item.candidates()
    for v in voted:
        unknown = [c for c in v.comparison.shown if c not in known]
        if unknown or (kind == "pointwise" and len(v.comparison.shown) != 1):
            raise ScoringError(
                f"comparison {v.comparison.id}: "
                + (
                    f"item {item.uid} has no candidate {unknown[0]!r} (was the dataset changed?)"
                    if unknown
                    else "a pointwise comparison shows exactly one answer"
                )
            )
    return kind
