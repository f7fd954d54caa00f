"""Comparisons to cache keys: each comparison rendered to its request once, each distinct key
kept by its first comparison. A rerun with the same inputs reads the keys an earlier run saved
(keys.json, each beside its comparison's id) after a spot check re-renders a seeded sample."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmark.data import Item
from benchmark.plan import Comparison, render_comparison
from benchmark.rundir import write_json
from judges.base import ChatRequest, JudgeIdentity, JudgeOptions, Message, cache_key
from judges.registry import SCORES_LABELS
from prompts.parsers import FIRST_TOKEN_PARSERS
from prompts.templates import Template, display_labels

# the cache key of every comparison, so a rerun with the same inputs renders nothing
KEYS_FILE = "keys.json"
# comparisons rendered again on a rerun to prove the saved keys still hold
SPOT_CHECKS = 32


@dataclass(slots=True)
class Prepared:
    """Every comparison with its cache key; each distinct key once, by its first comparison.

    Requests are rendered again when they are sent rather than kept: holding every rendered
    prompt of the full RMB would cost hundreds of MB, and a cached rerun renders nothing."""

    comparisons: list[Comparison]
    keys: list[str]
    first: dict[str, int]  # distinct key -> index of its first comparison (plan order)
    render: Callable[[int], ChatRequest]
    # the template's verdict is its first token: an answer stopped at the token limit is complete
    cut_ok: bool = False
    # the keys are an earlier run's, which passed the spot check (nothing was rendered for them)
    keys_reused: bool = False

    def request(self, key: str) -> ChatRequest:
        return self.render(self.first[key])

    def release(self) -> None:
        """Nothing renders past execution: let go of the items (and texts) the renderer holds."""
        self.render = _released


def _released(i: int) -> ChatRequest:
    raise RuntimeError("a comparison was rendered after Prepared.release()")


def prepare(
    items: Sequence[Item],
    comparisons: Sequence[Comparison],
    template: Template,
    identity: JudgeIdentity,
    options: JudgeOptions,
    *,
    known_keys: Sequence[str] | None = None,
) -> Prepared:
    """Keys for all comparisons. `known_keys` (saved by an earlier run with the same inputs)
    skips rendering if a spot check of them holds; otherwise every comparison is rendered once
    here."""
    comparisons = list(comparisons)
    by_uid = {it.uid: it for it in items}
    memo: dict[tuple[str, tuple[str, ...]], tuple[Message, ...]] = {}
    # the template's reasoning settings fill what the user left unset; the judge's identity
    # names its model family, whose rules decide what each request sends
    options = options.with_defaults(template.reasoning)
    options.shaped(identity, max_tokens=template.max_tokens, top_logprobs=template.top_logprobs)

    def render(i: int) -> ChatRequest:
        c = comparisons[i]
        messages = memo.get((c.item_uid, c.shown))
        if messages is None:
            messages = render_comparison(template, by_uid[c.item_uid], c.shown)
            if c.sample_index == 0 and i + 1 < len(comparisons) and comparisons[i + 1].sample_index:
                # further samples of this comparison follow: keep its messages for them only
                memo.clear()
                memo[c.item_uid, c.shown] = messages
        return options.request(
            messages,
            identity,
            sample_index=c.sample_index,
            max_tokens=template.max_tokens,
            top_logprobs=template.top_logprobs,
            response_format=template.response_format,
            logprob_labels=tuple(display_labels(template.mode, len(c.shown)))
            if exact_labels
            else None,
        )

    # a verdict read from its first token's logprobs, by a judge that scores given tokens: ask
    # for the labels' logprobs exactly (only there, so other judges' keys stay as they were)
    exact_labels = (
        template.parser in FIRST_TOKEN_PARSERS
        and template.top_logprobs is not None
        and identity.provider in SCORES_LABELS
    )

    reused = known_keys is not None and _still_hold(known_keys, render, identity)
    if known_keys is not None and reused:
        keys = list(known_keys)
    else:
        keys = [cache_key(identity, render(i)) for i in range(len(comparisons))]
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    cut_ok = template.parser in FIRST_TOKEN_PARSERS
    return Prepared(comparisons, keys, first, render, cut_ok, reused)


def _still_hold(
    keys: Sequence[str], render: Callable[[int], ChatRequest], identity: JudgeIdentity
) -> bool:
    """Whether saved keys are still what the comparisons render to, by rendering a seeded sample
    of them again: a change to a template, Jinja, request building or the key shows here,
    wherever in the code it was made."""
    n = len(keys)
    picked = random.Random(f"{n}:{keys[0] if n else ''}").sample(range(n), min(n, SPOT_CHECKS))
    return all(cache_key(identity, render(i)) == keys[i] for i in picked)


def read_saved_keys(
    run_dir: Path, digest: str, comparisons: Sequence[Comparison]
) -> list[str] | None:
    """Keys an earlier run with the very same inputs computed, each checked against the id of
    the comparison it was saved beside (a rerun renders nothing but `prepare`'s spot check)."""
    try:
        saved = json.loads((run_dir / KEYS_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("inputs") != digest:
        return None
    pairs = saved.get("keys")
    if not isinstance(pairs, list) or len(pairs) != len(comparisons):
        return None
    # one string per distinct key (a full run's 46k lines name 31k keys)
    distinct: dict[str, str] = {}
    keys: list[str] = []
    for comparison, pair in zip(comparisons, pairs, strict=True):
        if not (isinstance(pair, list) and len(pair) == 2 and pair[0] == comparison.id):
            return None  # comparison i is no longer what it was when its key was saved
        keys.append(distinct.setdefault(pair[1], pair[1]))
    return keys


def save_keys(
    run_dir: Path, digest: str, comparisons: Sequence[Comparison], keys: Sequence[str]
) -> None:
    pairs = [[c.id, k] for c, k in zip(comparisons, keys, strict=True)]
    write_json(run_dir / KEYS_FILE, {"inputs": digest, "keys": pairs})
