"""Which items a run takes: set, goal, task and scenario filters, and seeded samples that do
not move when items are added or removed."""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from .items import Category, Goal, Item, SetName


def stable_rank(seed: int, uid: str) -> str:
    """A seeded order that does not move when items are added or removed."""
    return hashlib.sha256(f"{seed}:{uid}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Selection:
    sets: tuple[SetName, ...] = ("pairwise", "bon")
    goals: tuple[Goal, ...] = ("helpfulness", "harmlessness")
    tasks: tuple[str, ...] = ()  # glob patterns; empty = all
    scenarios: tuple[str, ...] = ()  # glob patterns; empty = all
    per_scenario: int | None = None
    limit: int | None = None
    seed: int = 0

    def wants(self, category: Category) -> bool:
        """Whether the set/goal/task/scenario filters keep items of this category."""

        def match(patterns: tuple[str, ...], value: str) -> bool:
            return not patterns or any(fnmatch.fnmatch(value.lower(), p.lower()) for p in patterns)

        return (
            category.set in self.sets
            and category.goal in self.goals
            and match(self.tasks, category.task)
            and match(self.scenarios, category.scenario)
        )

    def apply(self, items: Iterable[Item]) -> list[Item]:
        wanted: dict[Category, bool] = {}  # ~100 categories among 50k items: match each once

        def keep(category: Category) -> bool:
            if category not in wanted:
                wanted[category] = self.wants(category)
            return wanted[category]

        kept = [it for it in items if keep(it.category)]
        kept.sort(key=lambda it: stable_rank(self.seed, it.uid))
        if self.per_scenario is not None:
            counts: dict[tuple[str, str, str], int] = {}
            picked = []
            for it in kept:
                k = (it.category.set, it.category.goal, it.category.scenario)
                if counts.get(k, 0) < self.per_scenario:
                    counts[k] = counts.get(k, 0) + 1
                    picked.append(it)
            kept = picked
        if self.limit is not None:
            kept = kept[: self.limit]
        # back to dataset order: reports and plans read naturally
        kept.sort(key=lambda it: (it.category.path, it.uid))
        return kept
