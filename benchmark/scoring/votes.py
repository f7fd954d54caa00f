"""The K samples of one comparison majority-voted into one verdict (see benchmark.scoring)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Any

from benchmark.plan import Comparison
from benchmark.results import JudgedComparison
from prompts.parsers import Verdict

# what an item's answers cost, summed from its judged lines: the cost fields of scoring.Tally
COST_FIELDS = ("samples", "input_tokens", "output_tokens", "cost_usd", "cached")


@dataclass(frozen=True, slots=True)
class Voted:
    """One comparison after the vote over its samples, with what its samples cost."""

    comparison: Comparison
    verdict: Verdict
    samples: int = 1
    # the candidate id the verdict prefers, "tie", or None (see `picked`)
    pick: str | None = None


def picked(c: Comparison, v: Verdict) -> str | None:
    """The candidate id the judge preferred, "tie", or None when invalid/unreadable."""
    if v.kind == "tie":
        return "tie"
    if v.kind == "choice" and v.choice is not None and 0 <= v.choice < len(c.shown):
        return c.shown[v.choice]
    return None


def _voted(c: Comparison, v: Verdict, samples: int = 1) -> Voted:
    return Voted(c, v, samples, picked(c, v))


def vote(verdicts: Sequence[Verdict]) -> Verdict:
    """Majority vote over samples of one comparison."""
    if not verdicts:
        return Verdict("invalid", reason="no verdict")
    if len(verdicts) == 1:
        return verdicts[0]
    valid = [
        v for v in verdicts if v.kind != "invalid" and not (v.kind == "choice" and v.choice is None)
    ]
    if not valid:
        reason, _ = Counter(v.reason for v in verdicts).most_common(1)[0]
        return Verdict("invalid", reason=reason)
    kinds = {"score" if v.kind == "score" else "choice" for v in valid}
    if len(kinds) > 1:
        return Verdict("invalid", reason="samples mix ratings and choices")
    if kinds == {"score"}:
        scores = [v.score for v in valid if v.score is not None]
        if not scores:
            return Verdict("invalid", reason="rating without a score")
        return Verdict("score", score=fmean(scores), reason=f"mean of {len(scores)} ratings")
    tally = Counter(str(v.choice) if v.kind == "choice" else "tie" for v in valid).most_common()
    if len(tally) > 1 and tally[0][1] == tally[1][1]:
        return Verdict("tie", reason=f"samples split {tally[0][1]}-{tally[1][1]}")
    winner = tally[0][0]
    if winner == "tie":
        return Verdict("tie", reason=f"{tally[0][1]} of {len(verdicts)} samples")
    return Verdict("choice", choice=int(winner), reason=f"{tally[0][1]} of {len(verdicts)} samples")


def vote_all(
    judged: Iterable[JudgedComparison],
) -> tuple[dict[str, list[Voted]], dict[str, dict[str, Any]]]:
    """Group lines by comparison (all samples together), vote, and index by item uid; with what
    each item's lines cost (items.COST_FIELDS: samples, tokens, USD, cache hits)."""
    groups: dict[tuple[str, str, tuple[str, ...], int], list[JudgedComparison]] = defaultdict(list)
    for j in judged:
        c = j.comparison
        groups[(c.item_uid, c.kind, c.shown, c.variant)].append(j)
    by_item: dict[str, list[Voted]] = defaultdict(list)
    costs: dict[str, dict[str, Any]] = {}
    for (uid, _, _, _), lines in groups.items():
        cost = costs.setdefault(uid, dict.fromkeys(COST_FIELDS, 0))
        for j in lines:
            cost["samples"] += 1
            cost["input_tokens"] += j.input_tokens
            cost["output_tokens"] += j.output_tokens
            cost["cost_usd"] += j.cost_usd
            cost["cached"] += j.cached
        if len(lines) == 1:
            by_item[uid].append(_voted(lines[0].comparison, lines[0].verdict))
            continue
        lines.sort(key=lambda j: j.comparison.sample_index)
        # a resumed run may hold a sample twice: the last line written wins
        latest = {j.comparison.sample_index: j.verdict for j in lines}
        verdict = vote([latest[k] for k in sorted(latest)])
        by_item[uid].append(_voted(lines[0].comparison, verdict, len(latest)))
    return by_item, costs
