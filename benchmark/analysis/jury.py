"""A jury: several runs' verdicts (judges or templates) combined per comparison into the lines
of a new run, which is then scored and reported like any other.

- `majority`: each member's verdict (after its own vote over samples) is one vote, counted as
  `scoring.vote` counts samples: invalid verdicts do not vote, a split is a tie.
- `mean-prob`: the members' probabilities for each shown answer are averaged and the most
  probable answer wins (equal: a tie); it needs verdicts with probabilities (logprob templates).

The members must have judged the same comparisons (same items, same answers shown in the same
orders): otherwise the jury is refused with the reason, or, with `shared`, restricted to the
comparisons all of them judged, with a warning."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import fmean
from typing import Literal

from benchmark.plan import Comparison
from benchmark.results import JudgedComparison
from benchmark.scoring import Voted, vote, vote_all
from judges.errors import UserError
from prompts.parsers import Verdict

JuryRule = Literal["majority", "mean-prob"]
JURY_RULES: tuple[JuryRule, ...] = ("majority", "mean-prob")
Key = tuple[str, str, tuple[str, ...], int]


class JuryError(UserError):
    """Runs that cannot sit on one jury."""


@dataclass(frozen=True, slots=True)
class Member:
    label: str
    judged: Sequence[JudgedComparison]


@dataclass
class Verdicts:
    judged: list[JudgedComparison]
    warnings: list[str] = field(default_factory=list)


def _key(c: Comparison) -> Key:
    return (c.item_uid, c.kind, c.shown, c.variant)


def _voted(judged: Sequence[JudgedComparison]) -> dict[Key, Voted]:
    by_item, _ = vote_all(judged)
    return {_key(v.comparison): v for vs in by_item.values() for v in vs}


def _difference(members: Sequence[Member], keys: Sequence[set[Key]], common: set[Key]) -> str:
    parts = []
    for m, ks in zip(members, keys, strict=True):
        extra = ks - common
        if extra:
            uid, kind, shown, _ = min(extra)
            parts.append(
                f"{m.label} has {len(extra):,} comparisons not in every other run "
                f"(e.g. item {uid}, {kind} {' vs '.join(shown)})"
            )
    return "; ".join(parts)


def _mean_prob(votes: Sequence[Verdict]) -> Verdict:
    probs = [v.probs for v in votes if v.kind == "choice" and v.probs is not None]
    if not probs:
        return Verdict("invalid", reason="no member gave probabilities")
    if len({len(p) for p in probs}) > 1:
        return Verdict("invalid", reason="members gave probabilities for different answer counts")
    mean = tuple(fmean(col) for col in zip(*probs, strict=True))
    top = max(mean)
    if sum(p == top for p in mean) > 1:
        return Verdict("tie", probs=mean, reason=f"mean of {len(probs)} members' probabilities")
    return Verdict(
        "choice",
        choice=mean.index(top),
        probs=mean,
        reason=f"mean of {len(probs)} members' probabilities",
    )


def jury(
    members: Sequence[Member], rule: JuryRule = "majority", *, shared: bool = False
) -> Verdicts:
    """The jury's judged comparisons (one sample each, in the first member's order)."""
    if rule not in JURY_RULES:
        raise JuryError(f"--rule must be one of {', '.join(JURY_RULES)}, not {rule!r}")
    if len(members) < 2:
        raise JuryError("a jury needs at least two runs")
    voted = [_voted(m.judged) for m in members]
    if rule == "mean-prob":
        for m, vs in zip(members, voted, strict=True):
            if not any(v.verdict.probs is not None for v in vs.values()):
                raise JuryError(
                    f"--rule mean-prob needs probabilities, and {m.label}'s verdicts carry none "
                    "(a logprob template such as pairwise-logprob, one sample: the vote over "
                    "samples keeps no probability; or use --rule "
                    "majority)"
                )
    keys = [set(vs) for vs in voted]
    common = set.intersection(*keys)
    out = Verdicts([])
    if any(ks != common for ks in keys):
        why = _difference(members, keys, common)
        if not shared:
            raise JuryError(
                f"the runs did not judge the same comparisons (different items or plans): {why}. "
                f"Pass --shared to keep the {len(common):,} comparisons they all judged"
            )
        out.warnings.append(f"restricted to the {len(common):,} comparisons all runs judged: {why}")
    if not common:
        raise JuryError("the runs have no comparison in common")
    lines: dict[Key, list[JudgedComparison]] = defaultdict(list)
    for m in members:
        for j in m.judged:
            lines[_key(j.comparison)].append(j)
    order = dict.fromkeys(_key(j.comparison) for j in members[0].judged)
    for key in (k for k in order if k in common):
        votes = [vs[key].verdict for vs in voted]
        if rule == "majority":
            verdict = vote(votes)
            picks = ", ".join(
                f"{m.label}: {vs[key].pick or 'invalid'}"
                for m, vs in zip(members, voted, strict=True)
            )
            verdict = Verdict(verdict.kind, verdict.choice, verdict.score, None, f"jury: {picks}")
        else:
            verdict = _mean_prob(votes)
        paid = lines[key]
        out.judged.append(
            JudgedComparison(
                comparison=Comparison(key[0], key[1], key[2], key[3]),  # type: ignore[arg-type]
                key="jury:"
                + hashlib.sha256("\n".join(sorted(j.key for j in paid)).encode()).hexdigest(),
                verdict=verdict,
                finish_reason="stop",
                input_tokens=sum(j.input_tokens for j in paid),
                output_tokens=sum(j.output_tokens for j in paid),
                cost_usd=sum(j.cost_usd for j in paid),
                cached=True,
            )
        )
    return out
