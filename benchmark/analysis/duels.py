"""The two-answer comparisons of a run (pairwise items, and Best-of-N best-vs-loser duels),
after the vote over samples, joined with their items' facts: what length, position and
generator analyses count."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from benchmark.analysis.facts import ItemFacts
from benchmark.scoring import Voted

DUEL_KINDS = frozenset({"pairwise", "bon-pairwise"})


@dataclass(frozen=True, slots=True)
class Duel:
    item: ItemFacts
    # candidate ids in display order
    first: str
    second: str
    # the candidate id the judge preferred, "tie", or None (invalid)
    pick: str | None
    # the probability the verdict gave the first-shown answer (logprob templates)
    p_first: float | None = None

    @property
    def other(self) -> str:
        """The shown answer that is not the preferred one."""
        return self.second if self.first == self.item.preferred else self.first

    @property
    def chose(self) -> bool:
        """A valid choice of one answer (not a tie, not invalid)."""
        return self.pick is not None and self.pick != "tie"

    def chars(self, cid: str) -> int:
        return self.item.answers[cid].chars

    @property
    def longer(self) -> str | None:
        """The longer of the two answers, None when they are equally long."""
        a, b = self.chars(self.first), self.chars(self.second)
        return None if a == b else self.first if a > b else self.second

    def score(self, tie: float) -> float:
        """1 if the judge preferred the preferred answer, `tie` for a tie, 0 otherwise."""
        return 1.0 if self.pick == self.item.preferred else tie if self.pick == "tie" else 0.0


def duels(voted: Mapping[str, Sequence[Voted]], facts: Mapping[str, ItemFacts]) -> list[Duel]:
    """Every two-answer comparison of an item in `facts`, in the run's order."""
    out = []
    for uid, vs in voted.items():
        item = facts.get(uid)
        if item is None:
            continue
        for v in vs:
            c = v.comparison
            if c.kind not in DUEL_KINDS or len(c.shown) != 2:
                continue
            probs = v.verdict.probs
            p_first = probs[0] if probs is not None and len(probs) == 2 else None
            out.append(Duel(item, c.shown[0], c.shown[1], v.pick, p_first))
    return out


def ratio(a: int, b: int) -> float:
    """a / b for two lengths; an empty b makes any non-empty a infinitely longer."""
    if b == 0:
        return 1.0 if a == 0 else float("inf")
    return a / b


# length ratio bins, symmetric on a log scale around 1 (equal length)
RATIO_EDGES = (0.5, 0.8, 1.25, 2.0)
RATIO_BINS = ("< 0.5", "0.5–0.8", "0.8–1.25", "1.25–2", "≥ 2")


def ratio_bin(r: float) -> str:
    return RATIO_BINS[bisect_right(RATIO_EDGES, r)]
