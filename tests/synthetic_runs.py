"""Small synthetic runs for the analysis tests: items whose answers have chosen lengths and
writers, judged by a policy through the real planner, as comparisons.jsonl lines."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from benchmark.data import Category, Item, PairwiseItem, Response
from benchmark.plan import Comparison, Orders, plan
from benchmark.results import JudgedComparison
from judges.base import Message
from prompts.parsers import Verdict

Policy = Callable[[Item, Comparison], Verdict]


def item(
    uid: str,
    chosen: int = 100,
    rejected: int = 100,
    *,
    models: tuple[str, str] = ("model-x", "model-y"),
    scenario: str = "S1",
) -> PairwiseItem:
    """A harmlessness pairwise item whose chosen/rejected answers are that many characters."""
    return PairwiseItem(
        f"pair:{uid}",
        Category.parse(f"Pairwise_set/Harmlessness/{scenario}"),
        (Message("user", f"question {uid}"),),
        Response(models[0], "c" * chosen),
        Response(models[1], "r" * rejected),
    )


def judge(
    items: Sequence[Item], policy: Policy, *, orders: Orders = "both", samples: int = 1
) -> list[JudgedComparison]:
    by_uid = {it.uid: it for it in items}
    return [
        JudgedComparison(c, f"key:{c.id}", policy(by_uid[c.item_uid], c), "stop")
        for c in plan(items, "pairwise", orders=orders, samples=samples)
    ]


def pick(c: Comparison, cid: str, probs: tuple[float, ...] | None = None) -> Verdict:
    """The verdict that picks candidate `cid` as shown in `c`."""
    return Verdict("choice", choice=c.shown.index(cid), probs=probs)


def always_longer(it: Item, c: Comparison) -> Verdict:
    answers = it.candidates()
    return pick(c, max(c.shown, key=lambda cid: len(answers[cid].text)))


def always_first(it: Item, c: Comparison) -> Verdict:
    return Verdict("choice", choice=0)
