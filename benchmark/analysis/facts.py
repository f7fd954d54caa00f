"""What the analyses need to know about the items: per candidate answer its writer and its
length. Length is counted in characters of the answer text: judge-independent (token counts
would depend on each judge's tokenizer) and available for every run, cached or not."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from benchmark.data import PREFERRED, Category, Item


@dataclass(frozen=True, slots=True)
class Answer:
    model: str
    chars: int


@dataclass(frozen=True, slots=True)
class ItemFacts:
    uid: str
    category: Category
    # the candidate id a correct judge prefers ("chosen" or "best")
    preferred: str
    answers: Mapping[str, Answer]


def item_facts(items: Iterable[Item]) -> dict[str, ItemFacts]:
    """uid → facts; call it before the texts are dropped (`data.outline`)."""
    out = {}
    for it in items:
        answers = {cid: Answer(r.model, len(r.text)) for cid, r in it.candidates().items()}
        preferred = next(c for c in answers if c in PREFERRED)
        out[it.uid] = ItemFacts(it.uid, it.category, preferred, answers)
    return out
