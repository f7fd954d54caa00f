"""Item factories the tests share: in-memory items and judged comparisons built by hand (for
rules checked against hand-computed answers), RMB-shaped JSONL files with short texts, and a
small real sample of RMB."""

from __future__ import annotations

import functools
import json
import random
from pathlib import Path

from benchmark.data import BoNItem, Category, Item, PairwiseItem, Response, Selection, load
from benchmark.plan import Comparison
from benchmark.results import JudgedComparison
from judges.base import Message
from prompts.parsers import Verdict

CONV = (Message("user", "question"),)
R = Response("m", "answer")


def pair(uid: str, scenario: str = "S1", goal: str = "harmlessness") -> PairwiseItem:
    path = (
        f"Pairwise_set/{goal.capitalize()}/" + ("Code/" if goal == "helpfulness" else "") + scenario
    )
    return PairwiseItem(f"pair:{uid}", Category.parse(path), CONV, R, R)


def bon(uid: str, losers: int = 3, scenario: str = "S1", goal: str = "harmlessness") -> BoNItem:
    path = f"BoN_set/{goal.capitalize()}/" + ("Code/" if goal == "helpfulness" else "") + scenario
    return BoNItem(f"bon:{uid}", Category.parse(path), CONV, R, (R,) * losers)


def choice(i: int) -> Verdict:
    return Verdict("choice", choice=i)


TIE = Verdict("tie")
BAD = Verdict("invalid", reason="no verdict found")


def jc(
    uid: str,
    kind: str,
    shown: tuple[str, ...],
    verdict: Verdict,
    variant: int = 0,
    sample: int = 0,
    **kw: object,
) -> JudgedComparison:
    c = Comparison(uid, kind, shown, variant, sample)  # type: ignore[arg-type]
    return JudgedComparison(c, "key", verdict, "stop", **kw)  # type: ignore[arg-type]


CR, RC = ("chosen", "rejected"), ("rejected", "chosen")


def write_items(path: Path, n_pair: int, n_bon: int = 0, losers: int = 3, seed: int = 0) -> Path:
    """RMB-shaped records (JSONL), short texts so the harness, not rendering, is measured."""
    rng = random.Random(seed)
    lines = []
    for i in range(n_pair):
        conv = [{"role": "user", "content": f"Question {i}: how do I sort {rng.random():.6f}?"}]
        lines.append(
            {
                "pair_uid": f"p{i}",
                "category_path": "Pairwise_set/Helpfulness/Code/Data Management",
                "conversation_input": conv,
                "chosen": {"llm_name": "a", "answer": f"Use sorted() ({i})."},
                "reject": {"llm_name": "b", "answer": f"Sorting is impossible ({i})."},
            }
        )
    for i in range(n_bon):
        conv = [{"role": "user", "content": f"Task {i}: write a haiku about {rng.random():.6f}"}]
        lines.append(
            {
                "bon_uid": f"b{i}",
                "category_path": "BoN_set/Helpfulness/Code/Data Management",
                "conversation_input": conv,
                "bon_best": {"llm_name": "a", "answer": f"best haiku {i}"},
                "loser_list": [
                    {"llm_name": f"l{k}", "answer": f"loser {k} of {i}"} for k in range(losers)
                ],
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


SELECTION = Selection(per_scenario=2, seed=0)


@functools.cache
def real_items(rmb_dir: Path) -> list[Item]:
    """Two items per scenario of the real dataset, loaded once per test session."""
    return SELECTION.apply(load(rmb_dir))
