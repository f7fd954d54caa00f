"""`rmb compare RUN RUN...`: judges or templates side by side. One row per run, then for each
pair of runs, over the items both judged, the paired bootstrap interval of the accuracy
difference per subset, Overall and scenario, and McNemar's test on the paired item outcomes.
This is how a user decides whether template B really beats template A."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from itertools import combinations
from pathlib import Path
from statistics import fmean
from typing import Any

import numpy as np

from benchmark.analysis.agreement import Agreement, runs_agreement
from benchmark.results import JudgedComparison
from benchmark.rundir import COMPARISONS_FILE, read_judged, read_manifest
from benchmark.scoring import SUBSET_NAMES, ItemResult, scenario_name
from benchmark.scoring.stats import (
    Interval,
    McNemar,
    holm,
    mcnemar_paired,
    paired_bootstrap_diffs,
    percentile_interval,
    rng_for,
)
from judges.errors import UserError

from .facts import run_label


@dataclass(frozen=True, slots=True)
class RunData:
    path: Path
    label: str
    report: dict[str, Any]
    items: dict[str, ItemResult]
    # comparisons.jsonl (empty for a report with none, e.g. a reward model's): for kappa
    judged: list[JudgedComparison] = field(default_factory=list)


def load_run(path: Path) -> RunData:
    """A run's report.json (`rmb compare` rebuilds the missing ones first)."""
    report_file = path / "report.json"
    if not path.is_dir():
        raise UserError(f"{path}: no such run directory")
    try:
        report = json.loads(report_file.read_text())
        items = {d["uid"]: ItemResult.from_dict(d) for d in report["items"]}
        label = report.get("label") or run_label(read_manifest(path))
        if not isinstance(label, str):
            raise ValueError(f"label = {label!r}")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise UserError(
            f"{report_file}: not a report this version can read ({type(e).__name__}: "
            f"{str(e)[:200]}); `rmb report {path}` writes it again from the run"
        ) from None
    judged = read_judged(path) if (path / COMPARISONS_FILE).is_file() else []
    return RunData(path, label, report, items, judged)


@dataclass(frozen=True, slots=True)
class Difference:
    """B − A over the items both runs judged in one group."""

    name: str
    items: int
    a: float
    b: float
    diff: float
    ci: Interval | None
    mcnemar: McNemar
    # McNemar's p adjusted over the pair's scenarios (Holm), for scenario rows
    holm_p: float | None = None

    @property
    def significant(self) -> bool:
        """Subsets and Overall: the 95% interval excludes zero. Scenarios (dozens of tests, a few
        items each): McNemar's p after Holm's correction is below 0.05 as well, or a pair of
        runs would show a handful of "significant" scenarios by chance alone."""
        excludes_zero = self.ci is not None and (self.ci.low > 0 or self.ci.high < 0)
        return excludes_zero and (self.holm_p is None or self.holm_p < 0.05)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "items": self.items,
            "a": self.a,
            "b": self.b,
            "diff": self.diff,
            "ci": self.ci.to_dict() if self.ci else None,
            "significant": self.significant,
            "mcnemar": self.mcnemar.to_dict(),
            "holm_p": self.holm_p,
        }


@dataclass
class PairComparison:
    a: str
    b: str
    common: int
    only_a: int
    only_b: int
    subsets: list[Difference]
    overall: Difference | None
    scenarios: list[Difference]
    # Cohen's kappa of the two runs' verdicts on the comparisons both judged
    agreement: Agreement | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "common_items": self.common,
            "only_a": self.only_a,
            "only_b": self.only_b,
            "subsets": [d.to_dict() for d in self.subsets],
            "overall": self.overall.to_dict() if self.overall else None,
            "scenarios": [d.to_dict() for d in self.scenarios],
            "agreement": self.agreement.to_dict() if self.agreement else None,
        }


def _difference(
    name: str, pairs: Sequence[tuple[float, float]], bootstrap: int, seed: int
) -> tuple[Difference, np.ndarray]:
    a = [x for x, _ in pairs]
    b = [y for _, y in pairs]
    samples = paired_bootstrap_diffs(a, b, bootstrap, rng_for(seed, name))
    d = Difference(
        name,
        len(pairs),
        fmean(a),
        fmean(b),
        fmean(b) - fmean(a),
        percentile_interval(samples),
        mcnemar_paired(a, b),
    )
    return d, samples


def compare_pair(a: RunData, b: RunData, *, bootstrap: int = 1000, seed: int = 0) -> PairComparison:
    common = sorted(a.items.keys() & b.items.keys())
    by_subset: dict[str, list[tuple[float, float]]] = defaultdict(list)
    by_scenario: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for uid in common:
        ra, rb = a.items[uid], b.items[uid]
        by_subset[ra.category.subset].append((ra.score, rb.score))
        by_scenario[scenario_name(ra.category)].append((ra.score, rb.score))
    subsets, samples = [], []
    for name in SUBSET_NAMES:
        if name in by_subset:
            d, s = _difference(name, by_subset[name], bootstrap, seed)
            subsets.append(d)
            samples.append(s)
    overall = None
    if subsets:
        # Overall is the mean of the subsets, so its difference is too; subsets resample apart
        all_pairs = [p for name in SUBSET_NAMES for p in by_subset.get(name, [])]
        stacked = np.mean(samples, axis=0) if bootstrap > 0 else np.empty(0)
        overall = Difference(
            "Overall",
            len(common),
            fmean(d.a for d in subsets),
            fmean(d.b for d in subsets),
            fmean(d.diff for d in subsets),
            percentile_interval(stacked),
            mcnemar_paired([x for x, _ in all_pairs], [y for _, y in all_pairs]),
        )
    scenarios = [
        _difference(name, pairs, bootstrap, seed)[0] for name, pairs in sorted(by_scenario.items())
    ]
    adjusted = holm([d.mcnemar.p_value for d in scenarios])
    scenarios = [replace(d, holm_p=p) for d, p in zip(scenarios, adjusted, strict=True)]
    agreement = None
    if a.judged and b.judged:
        categories = {uid: r.category for uid, r in a.items.items()}
        agreement = runs_agreement(a.judged, b.judged, categories)
    return PairComparison(
        a.label,
        b.label,
        len(common),
        len(a.items.keys() - b.items.keys()),
        len(b.items.keys() - a.items.keys()),
        subsets,
        overall,
        scenarios,
        agreement,
    )


@dataclass
class CompareResult:
    runs: list[RunData]
    pairs: list[PairComparison]
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": [
                {
                    "label": r.label,
                    "path": str(r.path),
                    "items": len(r.items),
                    "subsets": {
                        k: {"accuracy": g["accuracy"], "ci": g["ci"], "items": g["items"]}
                        for k, g in r.report.get("subsets", {}).items()
                    },
                    "overall": {
                        "accuracy": r.report["overall"]["accuracy"],
                        "ci": r.report["overall"]["ci"],
                    },
                }
                for r in self.runs
            ],
            "pairs": [p.to_dict() for p in self.pairs],
            "warnings": self.warnings,
        }


def compare_runs(paths: Sequence[Path], *, bootstrap: int = 1000, seed: int = 0) -> CompareResult:
    if len(paths) < 2:
        raise UserError("compare needs at least two run directories")
    runs = [load_run(Path(p)) for p in paths]
    # two runs of the same judge × template: tell them apart by directory
    seen = Counter(r.label for r in runs)
    runs = [
        replace(r, label=f"{r.label} ({r.path.name})") if seen[r.label] > 1 else r for r in runs
    ]
    result = CompareResult(runs, [])
    rules = {r.label: (r.report.get("options") or {}).get("ties") for r in runs}
    if len(set(rules.values())) > 1:
        result.warnings.append(
            "the runs were scored under different tie rules ("
            + ", ".join(f"{k}: {v}" for k, v in rules.items())
            + "); rebuild them alike with `rmb report RUN --ties strict|half`"
        )
    for a, b in combinations(runs, 2):
        pc = compare_pair(a, b, bootstrap=bootstrap, seed=seed)
        if pc.only_a or pc.only_b:
            result.warnings.append(
                f"{a.label} and {b.label} cover different items ({pc.only_a:,} only in the "
                f"first, {pc.only_b:,} only in the second); compared on the {pc.common:,} in common"
            )
        if pc.common == 0:
            result.warnings.append(f"{a.label} and {b.label} have no item in common")
        result.pairs.append(pc)
    return result
