"""What every report says, in words and numbers, before any format: the formatted accuracies
and intervals, a run's label, the paper's row, and the facts listed under a report's title.
The renderers (markdown.py, html.py) lay these out; none computes its own."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from benchmark.analysis.agreement import Agreement
from benchmark.scoring import SUBSET_NAMES, GroupScore, Scores
from benchmark.scoring.stats import Interval


def fmt_acc(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def fmt_ci(ci: Interval | None) -> str:
    return "–" if ci is None else f"[{ci.low:.3f}, {ci.high:.3f}]"


def fmt_pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def fmt_cost(x: float, priced: bool = True) -> str:
    if not priced:
        return "cost unknown"
    return f"${x:.4f}" if x < 1 else f"${x:,.2f}"


def priced(manifest: Mapping[str, Any] | None) -> bool:
    """Whether the run's judge had a price (the manifest's spent_usd is None when not)."""
    counts = (manifest or {}).get("counts") or {}
    return not ("spent_usd" in counts and counts["spent_usd"] is None)


def fmt_human(n: int) -> str:
    """12,345,678 → 12.3M (exact counts are in report.json)."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:.3g}{suffix}"
    return str(n)


def acc_with_ci(g: GroupScore | None) -> str:
    if g is None or g.accuracy is None:
        return "–"
    return f"{fmt_acc(g.accuracy)} {fmt_ci(g.ci)}" if g.ci else fmt_acc(g.accuracy)


def run_label(manifest: Mapping[str, Any] | None) -> str:
    """'judge × template', the row name of a run in every table."""
    m = manifest or {}
    judge = m.get("judge") or "judge"
    template = (
        (m.get("template") or {}).get("name") if isinstance(m.get("template"), dict) else None
    )
    return f"{judge} × {template}" if template else str(judge)


def paper_row(scores: Scores) -> list[str]:
    """The RMB table's cells: the four subsets (micro accuracy and interval) and Overall."""
    return [acc_with_ci(scores.subsets.get(n)) for n in SUBSET_NAMES] + [
        acc_with_ci(scores.overall)
    ]


@dataclass(frozen=True, slots=True)
class Fact:
    """One line under a report's title. `text` may hold `code` spans; a `warn` fact is one the
    reader must not miss (its `text` is stressed, its `tail` is not)."""

    text: str
    warn: bool = False
    tail: str = ""


def run_facts(scores: Scores, manifest: Mapping[str, Any] | None) -> list[Fact]:
    m = manifest or {}
    plan = m.get("plan") or {}
    data = m.get("data") or {}
    raw_template = m.get("template")
    template: dict[str, Any] = raw_template if isinstance(raw_template, dict) else {}
    facts = []
    if m.get("run_id"):
        facts.append(Fact(f"Run: `{m['run_id']}` ({m.get('status', 'unknown status')})"))
    if m.get("judge"):
        facts.append(
            Fact(
                f"Judge: `{m['judge']}`"
                + (f"; template: `{template['name']}`" if template.get("name") else "")
                + (f" (parser `{template['parser']}`)" if template.get("parser") else "")
            )
        )
    facts += [
        Fact(
            f"Items scored: {scores.overall.items:,}"
            + (f" of {data['items']:,} selected" if isinstance(data.get("items"), int) else "")
        ),
        Fact(
            f"Ties: `{scores.ties}`"
            + "".join(
                f"; {label}: `{plan[key]}`"
                for key, label in (
                    ("orders", "orders"),
                    ("bon_strategy", "BoN strategy"),
                    ("samples", "samples"),
                )
                if key in plan
            )
        ),
        Fact(
            f"Intervals: 95% percentile bootstrap over items, {scores.bootstrap:,} resamples, "
            f"seed {scores.seed}"
        ),
    ]
    if not priced(m):
        facts.append(
            Fact(
                "Cost unknown: no price is known for this judge (give one with --prices FILE; "
                "`rmb prices MODEL` shows what is known)",
                warn=True,
            )
        )
    if scores.missing_subsets:
        facts.append(
            Fact(
                f"Not in this run: {', '.join(scores.missing_subsets)} "
                "(Overall is the mean of the subsets present)"
            )
        )
    facts += _count_facts(scores, m.get("counts") or {})
    return facts


def _count_facts(scores: Scores, counts: Mapping[str, Any]) -> list[Fact]:
    facts = []
    if isinstance(counts.get("sent"), int):
        facts.append(
            Fact(
                f"Requests: {counts.get('requests', 0):,} distinct, "
                f"{counts.get('cache_hits', 0):,} from the cache, {counts['sent']:,} sent, "
                f"{counts.get('retries', 0):,} retries, {counts.get('failed', 0):,} failed"
            )
        )
    unjudged = sum(scores.unjudged.values())
    if unjudged:
        facts.append(
            Fact(f"{unjudged:,} selected items have no judged comparison yet", True, " (left out)")
        )
    if scores.unknown_comparisons:
        facts.append(
            Fact(
                f"{scores.unknown_comparisons:,} comparisons name items not in the dataset",
                True,
                " (ignored; was the dataset changed?)",
            )
        )
    return facts


# ---------------------------------------------------------------- rmb compare: agreement

KAPPA_HEADER = ["Scenario", "Comparisons", "Same verdict", "Cohen's kappa"]


def agreement_text(ag: Agreement) -> str:
    o = ag.overall
    kappa = "–" if o.kappa is None else f"{o.kappa:.3f}"
    return (
        f"Agreement: Cohen's kappa {kappa} over the {o.comparisons:,} comparisons both judged "
        f"(the same verdict on {fmt_pct(o.observed)}; 1 is full agreement, 0 what chance gives)"
        + (f"; {ag.invalid:,} left out for an invalid verdict" if ag.invalid else "")
        + "."
    )


def kappa_rows(ag: Agreement) -> list[list[str]]:
    return [
        [k.name, f"{k.comparisons:,}", fmt_pct(k.observed), fmt_acc(k.kappa)] for k in ag.scenarios
    ]
