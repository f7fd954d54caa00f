"""Whose answers does the judge like? RMB's answers name the model that wrote them. Per
generator, over the two-answer comparisons with a valid verdict: the judge's win rate for its
answers (a tie is half a win) against the dataset's own (how often its answer is the preferred
one). Self-preference: in comparisons where exactly one answer comes from the judge's model
family, how much more often the judge picks that answer than the dataset prefers it (a paired
difference over those comparisons). Intervals: seeded bootstrap over comparisons."""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Any

from benchmark.analysis.duels import Duel
from benchmark.analysis.estimate import Estimate, estimate
from benchmark.scoring.stats import Interval, paired_bootstrap_diffs, percentile_interval, rng_for

# model name → family, first match wins; a name matching none is its own family
_FAMILIES = (
    ("gpt", r"\bgpt|chatgpt|^o\d\b|\bo\d-"),
    ("claude", r"claude"),
    ("gemini", r"gemini|gemma"),
    ("mistral", r"mistral|mixtral"),
    ("llama", r"llama"),
    ("qwen", r"qwen"),
    ("vicuna", r"vicuna"),
    ("smollm", r"smollm"),
)


@functools.lru_cache(maxsize=1024)  # a few dozen writers, met ~100k times in a full run
def family(model: str) -> str:
    """'gpt-4o-mini-2024-07-18' → 'gpt', 'Mixtral-8x7B-Instruct-v0.1' → 'mistral'; a judge
    spec ('openai:gpt-4o', 'local:/m/SmolLM2.gguf') is read by its model part."""
    name = model.split(":", 1)[-1].rsplit("/", 1)[-1].lower()
    if model in ("local", "") or name == "local":
        return "smollm"
    return next((fam for fam, rx in _FAMILIES if re.search(rx, name)), name)


@dataclass(frozen=True, slots=True)
class GeneratorRow:
    model: str
    comparisons: int
    judge_wins: Estimate
    dataset_wins: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "family": family(self.model),
            "comparisons": self.comparisons,
            "judge_wins": self.judge_wins.to_dict(),
            "dataset_wins": self.dataset_wins,
        }


@dataclass(frozen=True, slots=True)
class SelfPreference:
    family: str
    comparisons: int
    # how often the judge picked its family's answer, and how often the dataset prefers it
    judge_picks_own: Estimate
    dataset_prefers_own: float
    # judge − dataset, with its paired interval
    excess: float
    excess_ci: Interval | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "comparisons": self.comparisons,
            "judge_picks_own": self.judge_picks_own.to_dict(),
            "dataset_prefers_own": self.dataset_prefers_own,
            "excess": self.excess,
            "excess_ci": self.excess_ci.to_dict() if self.excess_ci else None,
        }


@dataclass(frozen=True, slots=True)
class GeneratorAnalysis:
    judge_family: str | None
    generators: list[GeneratorRow]
    # None when the judge's family wrote no answer in these comparisons
    self_preference: SelfPreference | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "judge_family": self.judge_family,
            "generators": [g.to_dict() for g in self.generators],
            "self_preference": self.self_preference.to_dict() if self.self_preference else None,
        }


def _won(d: Duel, cid: str) -> float:
    return 0.5 if d.pick == "tie" else float(d.pick == cid)


def generator_analysis(
    duels: Sequence[Duel], judge: str | None, *, bootstrap: int = 1000, seed: int = 0
) -> GeneratorAnalysis:
    """`judge`: the run's judge (spec or model name), for self-preference; None to skip it."""
    judged: dict[str, list[float]] = defaultdict(list)
    preferred: dict[str, list[float]] = defaultdict(list)
    own_family = family(judge) if judge else None
    own_judge: list[float] = []
    own_dataset: list[float] = []
    for d in duels:
        if d.pick is None:
            continue
        for cid in (d.first, d.second):
            model = d.item.answers[cid].model
            judged[model].append(_won(d, cid))
            preferred[model].append(float(cid == d.item.preferred))
        own = [c for c in (d.first, d.second) if family(d.item.answers[c].model) == own_family]
        if len(own) == 1:
            own_judge.append(_won(d, own[0]))
            own_dataset.append(float(own[0] == d.item.preferred))
    rows = [
        GeneratorRow(
            m,
            len(v),
            estimate(v, f"generator/{m}", bootstrap, seed),
            fmean(preferred[m]),
        )
        for m, v in sorted(judged.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    ]
    self_pref = None
    if own_family and own_judge:
        diffs = paired_bootstrap_diffs(
            own_dataset, own_judge, bootstrap, rng_for(seed, "self-preference")
        )
        self_pref = SelfPreference(
            own_family,
            len(own_judge),
            estimate(own_judge, "self-preference/judge", bootstrap, seed),
            fmean(own_dataset),
            fmean(own_judge) - fmean(own_dataset),
            percentile_interval(diffs),
        )
    return GeneratorAnalysis(own_family, rows, self_pref)
