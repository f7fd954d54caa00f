"""The worked examples of report.html: the worst scenarios and, in each, a few items the judge
got wrong, with what it was shown (the prompt rebuilt from the run's template) and its raw answers
(from the run, else from the cache). The texts are read again from the dataset, only the files
that hold the picked items (a run drops its texts once it has its answers: `data.outline`)."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.data import Item, dataset_root, load
from benchmark.plan import render_comparison
from benchmark.results import JudgedComparison
from benchmark.scoring import GroupScore, ItemResult, Scores, scenario_name
from judges.base import Completion, Message
from judges.cache import CACHE_FILE, CacheStore
from judges.errors import UserError
from prompts import load_template

log = logging.getLogger(__name__)

WORST_SCENARIOS = 5
EXAMPLES_PER_SCENARIO = 3
LINES_PER_EXAMPLE = 16


@dataclass(frozen=True, slots=True)
class ExampleComparison:
    shown: tuple[str, ...]
    variant: int
    sample: int
    verdict: str
    correct: bool | None  # None: invalid or not a choice
    answer: str | None  # the judge's raw answer, when the cache still holds it
    reasoning: str | None
    prompt: tuple[Message, ...] = ()  # the messages the judge received, when they can be rebuilt


@dataclass(frozen=True, slots=True)
class Example:
    uid: str
    score: float
    conversation: tuple[Message, ...]
    candidates: tuple[tuple[str, str, str], ...]  # (candidate id, model, text)
    comparisons: tuple[ExampleComparison, ...]


@dataclass(frozen=True, slots=True)
class ScenarioExamples:
    group: GroupScore
    examples: tuple[Example, ...]


def labels_for(n: int) -> list[str]:
    return ["A", "B"] if n == 2 else [str(i + 1) for i in range(n)]


def describe(j: JudgedComparison) -> tuple[str, bool | None]:
    """A verdict in words, against the candidates shown, and whether it favoured the better one."""
    v, shown = j.verdict, j.comparison.shown
    if v.kind == "score":
        return f"rated {shown[0]} {v.score:g}", None
    if v.kind == "tie":
        return "tie", None
    if v.kind == "choice" and v.choice is not None and 0 <= v.choice < len(shown):
        picked = shown[v.choice]
        return f"chose {labels_for(len(shown))[v.choice]} = {picked}", picked in ("best", "chosen")
    return f"invalid: {v.reason or v.kind}", None


def worst_scenarios(scores: Scores, n: int = WORST_SCENARIOS) -> list[GroupScore]:
    ranked = [g for g in scores.scenarios.values() if g.accuracy is not None]
    ranked.sort(key=lambda g: (g.accuracy or 0.0, -g.items, g.name))
    return ranked[:n]


def collect_examples(
    scores: Scores,
    judged: Iterable[JudgedComparison],
    *,
    items: Callable[[Sequence[ItemResult]], Mapping[str, Item]],
    completions: Mapping[str, Completion] | None = None,
    cache_dir: Path | None = None,
    render: Renderer | None = None,
    worst: int = WORST_SCENARIOS,
    per_scenario: int = EXAMPLES_PER_SCENARIO,
) -> list[ScenarioExamples]:
    """The worst scenarios and, in each, a few items the judge got wrong, with its answers
    (from `completions`, else from the cache in `cache_dir`). `items` gives the picked items
    by uid (their texts: conversation, candidates, prompt)."""
    by_uid: dict[str, list[JudgedComparison]] = defaultdict(list)
    for j in judged:
        if len(by_uid[j.comparison.item_uid]) < LINES_PER_EXAMPLE:
            by_uid[j.comparison.item_uid].append(j)
    picked = [
        (g, _wrong_items(scores, g.name, per_scenario)) for g in worst_scenarios(scores, worst)
    ]
    by_item = items([r for _, rs in picked for r in rs])
    wanted = [j for _, rs in picked for r in rs for j in by_uid.get(r.uid, [])]
    # answers not in `completions` (a run passes only those it received) come from the cache
    known = completions or {}
    answers = {j.key: known[j.key] for j in wanted if j.key in known}
    answers.update(_from_cache(cache_dir, [j.key for j in wanted if j.key not in known]))
    return [
        ScenarioExamples(
            g,
            tuple(
                _example(r, by_item.get(r.uid), by_uid.get(r.uid, []), answers, render) for r in rs
            ),
        )
        for g, rs in picked
    ]


def _wrong_items(scores: Scores, scenario: str, n: int) -> list[ItemResult]:
    """The scenario's `n` lowest-scored items the judge did not get right."""
    wrong = (r for r in scores.items if scenario_name(r.category) == scenario and r.score < 1)
    return sorted(wrong, key=lambda r: (r.score, r.uid))[:n]


def _example(
    r: ItemResult,
    item: Item | None,
    lines: Sequence[JudgedComparison],
    answers: Mapping[str, Completion],
    render: Renderer | None,
) -> Example:
    comps = []
    for j in lines:
        words, correct = describe(j)
        c = answers.get(j.key)
        comps.append(
            ExampleComparison(
                j.comparison.shown,
                j.comparison.variant,
                j.comparison.sample_index,
                words,
                correct,
                c.text if c else None,
                c.reasoning if c else None,
                _render(render, item, j.comparison.shown),
            )
        )
    if item is None:
        return Example(r.uid, r.score, (), (), tuple(comps))
    candidates = tuple((cid, resp.model, resp.text) for cid, resp in item.candidates().items())
    return Example(r.uid, r.score, item.conversation, candidates, tuple(comps))


Renderer = Callable[[Item, tuple[str, ...]], tuple[Message, ...]]


def _render(
    render: Renderer | None, item: Item | None, shown: tuple[str, ...]
) -> tuple[Message, ...]:
    if render is None or item is None:
        return ()
    try:
        return render(item, shown)
    except Exception as e:  # a report never fails for want of an example's prompt
        log.warning("cannot render the prompt of %s: %s", item.uid, e)
        return ()


def prompt_renderer(manifest: Mapping[str, Any]) -> Renderer | None:
    """Rebuild what the judge was sent: the run's template (only if its text is unchanged since
    the run) and the judge's system prompt."""
    t = manifest.get("template")
    if not isinstance(t, dict) or not t.get("name"):
        return None
    try:
        template = load_template(str(t["name"]))
    except UserError:  # a template by a path that moved
        return None
    if t.get("text_hash") and template.text_hash() != t["text_hash"]:
        return None
    system = (manifest.get("judge_options") or {}).get("system_prompt")

    def render(item: Item, shown: tuple[str, ...]) -> tuple[Message, ...]:
        messages = render_comparison(template, item, shown)
        if system and messages[0].role != "system":
            messages = (Message("system", str(system)), *messages)
        return messages

    return render


def _from_cache(cache_dir: Path | None, keys: Sequence[str]) -> Mapping[str, Completion]:
    if cache_dir is None or not keys or not (cache_dir / CACHE_FILE).is_file():
        return {}
    try:
        with CacheStore(cache_dir, read_only=True) as store:
            return store.get_many(keys)
    except UserError as e:
        log.warning("examples go without the judge's answers: %s", e)
        return {}


def items_by_uid(items: Iterable[Item], wanted: Sequence[ItemResult]) -> dict[str, Item]:
    uids = {r.uid for r in wanted}
    return {it.uid: it for it in items if it.uid in uids}


def recorded_source(manifest: Mapping[str, Any]) -> Path | None:
    """The dataset a run read, if it is still there."""
    recorded = (manifest.get("data") or {}).get("source")
    return Path(str(recorded)) if recorded and Path(str(recorded)).exists() else None


def example_items(source: Path | None, wanted: Sequence[ItemResult]) -> dict[str, Item]:
    """The `wanted` items read again from the dataset at `source`, parsing only the file where
    each one's category lives (a run drops its texts once it has its answers: `data.outline`)."""
    if not wanted or source is None or not source.exists():
        return {}
    files = {source}
    if source.is_dir():
        root = dataset_root(source)
        files = {root / f"{r.category.path}.json" for r in wanted}
    out: dict[str, Item] = {}
    try:
        for f in sorted(files):
            if f.is_file():
                out.update(items_by_uid(load(f), wanted))
    except UserError as e:  # the dataset changed since the run: examples go without texts
        log.warning("examples go without the conversations: %s", e)
    return out
