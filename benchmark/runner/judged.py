"""Answers to judged comparisons: each distinct answer parsed once, one line per comparison."""

from __future__ import annotations

from typing import Any

from benchmark.results import JudgedComparison
from judges.base import Completion, JudgeIdentity
from judges.cache import CacheStore
from judges.errors import UserError
from prompts.parsers import Verdict, parse

from .costs import cost_of
from .execute import Outcome
from .prepare import Prepared


def judge_comparisons(
    prepared: Prepared,
    outcome: Outcome,
    store: CacheStore,
    parser: str,
    identity: JudgeIdentity,
) -> list[JudgedComparison]:
    """One JudgedComparison per answered comparison, in plan order. The first comparison of a
    key that was asked this run is the one that paid; the others read it as cached.

    Each distinct answer is parsed once and only what the lines need is kept: cached answers
    are streamed from the store, so a full-RMB rerun never holds 31k raw answers at once."""
    # key -> (verdict, finish_reason, input tokens, output tokens, cost, latency, attempts)
    answered: dict[str, tuple[Verdict, str, int, int, float, float, int]] = {}
    # most answers read the same ("choice 1"): one shared object per distinct verdict and
    # finish reason instead of one per answer
    shared: dict[Any, Any] = {}

    def digest(key: str, c: Completion) -> None:
        n = len(prepared.comparisons[prepared.first[key]].shown)
        # parse() turns failed, refused, cut-off and empty answers into invalid verdicts
        verdict = parse(parser, c, n)
        u = c.usage
        answered[key] = (
            shared.setdefault(verdict, verdict),
            shared.setdefault(c.finish_reason, c.finish_reason),
            u.input_tokens,
            u.output_tokens,
            cost_of(identity, u),
            c.latency_s,
            c.attempts,
        )

    for key, c in outcome.answers.items():
        digest(key, c)
    for key, c in store.stream(outcome.from_cache):
        digest(key, c)
    if gone := outcome.from_cache - answered.keys():
        raise UserError(
            f"{store.path}: {len(gone)} answers left the cache during the run (another process "
            "pruned it?); rerun to ask them again"
        )
    paid: set[str] = set()
    out: list[JudgedComparison] = []
    for comp, key in zip(prepared.comparisons, prepared.keys, strict=True):
        a = answered.get(key)
        if a is None:
            continue
        cached = key in outcome.from_cache or key in paid
        paid.add(key)
        out.append(JudgedComparison(comp, key, *a, cached=cached))
    return out
