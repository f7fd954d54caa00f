"""Answers to judged comparisons: each distinct answer parsed once, one line per comparison."""

from __future__ import annotations

import itertools

from benchmark.results import JudgedComparison, read_answers
from judges.base import JudgeIdentity
from judges.cache import CacheStore
from judges.errors import UserError
from prompts.parsers import Verdict

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
    reasons: dict[str, str] = {}  # one shared string per finish reason

    def n_shown(key: str) -> int:
        return len(prepared.comparisons[prepared.first[key]].shown)

    answers = itertools.chain(outcome.answers.items(), store.stream(outcome.from_cache))
    for key, verdict, c in read_answers(parser, answers, n_shown):
        u = c.usage
        answered[key] = (
            verdict,
            reasons.setdefault(c.finish_reason, c.finish_reason),
            u.input_tokens,
            u.output_tokens,
            cost_of(identity, u),
            c.latency_s,
            c.attempts,
        )
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
