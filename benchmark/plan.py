"""Items to comparisons: which candidates a judge sees, in which order, how many samples.

`plan` decides what is shown; `render_comparison` is the one way what is shown becomes the
messages a judge reads (the runner, `rmb templates render`, the report's examples and the
benchmarks all call it). Turning those into requests and cache keys is the runner's job."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import permutations as all_orders
from math import factorial
from typing import Literal

from judges.base import Message
from judges.errors import UserError
from prompts.templates import Template

from .data import BoNItem, Item, PairwiseItem

ComparisonKind = Literal["pairwise", "bon-pairwise", "listwise", "pointwise"]
TemplateMode = Literal["pairwise", "listwise", "pointwise"]
Orders = Literal["both", "random", "fixed"]
BonStrategy = Literal["pairwise", "listwise", "pointwise"]
ORDERS: tuple[Orders, ...] = ("both", "random", "fixed")
BON_STRATEGIES: tuple[BonStrategy, ...] = ("pairwise", "listwise", "pointwise")


@dataclass(frozen=True, slots=True)
class Comparison:
    item_uid: str
    kind: ComparisonKind
    # candidate ids (see PairwiseItem/BoNItem.candidates) in display order
    shown: tuple[str, ...]
    # which order/permutation of the same candidates this is (0, 1, ...)
    variant: int = 0
    sample_index: int = 0

    @property
    def id(self) -> str:
        return f"{self.item_uid}|{self.kind}|{','.join(self.shown)}|v{self.variant}|s{self.sample_index}"


class PlanError(UserError):
    """Options that do not fit together (template mode, BoN strategy, item kinds)."""


def _digest(seed: int, *parts: str) -> bytes:
    return hashlib.sha256(":".join((str(seed), *parts)).encode()).digest()


def _pair(
    uid: str, kind: ComparisonKind, first: str, second: str, orders: Orders, seed: int
) -> Iterator[Comparison]:
    """A two-candidate comparison under the orders rule; variant 0 shows `first` first."""
    if orders == "both":
        yield Comparison(uid, kind, (first, second), 0)
        yield Comparison(uid, kind, (second, first), 1)
    elif orders == "fixed":
        yield Comparison(uid, kind, (first, second), 0)
    else:  # random: one seeded coin per comparison, stable when other items come and go
        flip = _digest(seed, uid, first, second)[0] & 1
        yield Comparison(uid, kind, (second, first) if flip else (first, second), flip)


def _shuffles(uid: str, ids: tuple[str, ...], k: int, seed: int) -> Iterator[Comparison]:
    """k distinct seeded orders of all candidates (fewer when there are not k distinct ones)."""
    rng = random.Random(_digest(seed, uid, "listwise"))
    k = min(k, factorial(len(ids)))
    seen: list[tuple[str, ...]]
    if k == factorial(len(ids)) and k <= 24:
        orders = list(all_orders(ids))
        rng.shuffle(orders)
        seen = orders[:k]
    else:
        seen = []
        while len(seen) < k:
            shuffled = list(ids)
            rng.shuffle(shuffled)
            if tuple(shuffled) not in seen:
                seen.append(tuple(shuffled))
    for v, order in enumerate(seen):
        yield Comparison(uid, "listwise", tuple(order), v)


def resolve_bon_strategy(
    template_mode: TemplateMode, bon_strategy: BonStrategy | None
) -> BonStrategy:
    """The BoN strategy follows the template's mode unless given; a mismatch is an error."""
    if bon_strategy is None:
        return template_mode
    if bon_strategy != template_mode:
        raise PlanError(
            f"--bon-strategy {bon_strategy} needs a {bon_strategy} template, but the template is "
            f"{template_mode}; pick a {bon_strategy} template (e.g. --template {bon_strategy}) or "
            f"--bon-strategy {template_mode}"
        )
    return bon_strategy


def plan(
    items: Iterable[Item],
    template_mode: TemplateMode,
    *,
    orders: Orders = "both",
    bon_strategy: BonStrategy | None = None,
    permutations: int = 1,
    samples: int = 1,
    seed: int = 0,
) -> list[Comparison]:
    """Comparisons for every item, in item order, each repeated for sample 0..samples-1.

    - pairwise template: pairwise items -> "pairwise" (chosen vs rejected); BoN items ->
      "bon-pairwise" (best vs each loser); both under `orders`.
    - listwise template: BoN items -> "listwise", `permutations` distinct seeded shuffles.
      Pairwise items are refused (select --set bon).
    - pointwise template: every candidate of every item rated alone ("pointwise").
    """
    if orders not in ORDERS:
        raise PlanError(f"--orders must be one of {', '.join(ORDERS)}, not {orders!r}")
    if samples < 1 or permutations < 1:
        raise PlanError("--samples and --permutations must be at least 1")
    strategy = resolve_bon_strategy(template_mode, bon_strategy)
    out: list[Comparison] = []
    for it in items:
        uid = it.uid
        ids = tuple(it.candidates())
        base: Iterable[Comparison]
        if strategy == "pointwise":
            base = (Comparison(uid, "pointwise", (c,), 0) for c in ids)
        elif isinstance(it, PairwiseItem):
            if strategy == "listwise":
                raise PlanError(
                    f"item {uid}: a listwise template judges Best-of-N items only; select them "
                    "with --set bon, or use a pairwise template"
                )
            base = _pair(uid, "pairwise", "chosen", "rejected", orders, seed)
        elif isinstance(it, BoNItem):
            if strategy == "listwise":
                base = _shuffles(uid, ids, permutations, seed)
            else:
                base = (
                    c
                    for loser in ids[1:]
                    for c in _pair(uid, "bon-pairwise", ids[0], loser, orders, seed)
                )
        else:  # pragma: no cover - Item is a closed union
            raise TypeError(f"not an item: {it!r}")
        for c in base:
            out.extend(
                Comparison(c.item_uid, c.kind, c.shown, c.variant, s) for s in range(samples)
            )
    return out


def render_comparison(template: Template, item: Item, shown: Sequence[str]) -> tuple[Message, ...]:
    """The messages a judge reads for `item` with the candidates `shown` (ids, in display
    order) under `template`."""
    cands = item.candidates()
    return template.render(
        conversation=item.conversation,
        responses=[cands[cid].text for cid in shown],
        goal=item.category.goal,
        category=item.category,
    )
