"""Every run side by side: one row per run (judge × template × plan) with the paper's five
columns and their intervals, consistency, invalid rate, cost and date, read from each run's
report.json (which carries its manifest). Runs are grouped by the data they judged (the hash of
the selected items): only runs over the same items are ranked against each other, by Overall."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from benchmark.scoring import SUBSET_NAMES
from benchmark.scoring.stats import Interval

from .facts import fmt_pct


@dataclass(frozen=True, slots=True)
class Cell:
    accuracy: float | None
    ci: Interval | None

    @classmethod
    def of(cls, group: Mapping[str, Any] | None) -> Cell:
        g = group or {}
        ci = g.get("ci")
        return cls(g.get("accuracy"), Interval(ci["low"], ci["high"]) if ci else None)

    def to_dict(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "ci": self.ci.to_dict() if self.ci else None}


@dataclass(frozen=True, slots=True)
class BoardRow:
    run: str
    judge: str
    template: str
    plan: str
    subsets: dict[str, Cell]
    overall: Cell
    consistency: float | None
    invalid_rate: float | None
    cost_usd: float
    items: int
    date: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "judge": self.judge,
            "template": self.template,
            "plan": self.plan,
            "subsets": {k: c.to_dict() for k, c in self.subsets.items()},
            "overall": self.overall.to_dict(),
            "consistency": self.consistency,
            "invalid_rate": self.invalid_rate,
            "cost_usd": self.cost_usd,
            "items": self.items,
            "date": self.date,
        }


@dataclass(frozen=True, slots=True)
class BoardGroup:
    # what the runs of this group judged: the items' hash and a description of the selection
    data: str
    description: str
    rows: list[BoardRow]

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": self.data,
            "description": self.description,
            "rows": [r.to_dict() for r in self.rows],
        }


def plan_text(plan: Mapping[str, Any]) -> str:
    """'orders both · BoN pairwise · 3 samples' from a manifest's plan options."""
    parts = []
    if plan.get("orders"):
        parts.append(f"orders {plan['orders']}")
    if plan.get("bon_strategy"):
        parts.append(f"BoN {plan['bon_strategy']}")
    if (plan.get("permutations") or 1) > 1:
        parts.append(f"{plan['permutations']} permutations")
    if (plan.get("samples") or 1) > 1:
        parts.append(f"{plan['samples']} samples")
    return " · ".join(parts) or "–"


def selection_text(manifest: Mapping[str, Any], items: int) -> str:
    sel = manifest.get("selection") or {}
    chosen = [
        f"{k}={v}"
        for k, v in sorted(sel.items())
        if v not in (None, (), [], "") and not (k == "seed" and v == 0)
    ]
    return f"{items:,} items" + (f" ({', '.join(chosen)})" if chosen else "")


def board_row(run: str, report: Mapping[str, Any]) -> BoardRow:
    m = report.get("manifest") or {}
    template = m.get("template")
    overall = report.get("overall") or {}
    return BoardRow(
        run=run,
        judge=str(m.get("judge") or report.get("label") or run),
        template=str(template.get("name") if isinstance(template, dict) else template or "–"),
        plan=plan_text(m.get("plan") or {}),
        subsets={n: Cell.of((report.get("subsets") or {}).get(n)) for n in SUBSET_NAMES},
        overall=Cell.of(overall),
        consistency=overall.get("consistency"),
        invalid_rate=overall.get("invalid_rate"),
        cost_usd=float(overall.get("cost_usd") or 0.0),
        items=int(overall.get("items") or 0),
        date=str(m.get("finished_at") or m.get("started_at") or report.get("generated_at") or ""),
    )


def _rank_key(r: BoardRow) -> tuple[bool, float, str]:
    # best Overall first; a run with no Overall last; then by name for a stable order
    acc = r.overall.accuracy
    return (acc is None, -(acc or 0.0), r.run)


def leaderboard(reports: Sequence[tuple[str, Mapping[str, Any]]]) -> list[BoardGroup]:
    """(run name, report.json) pairs → groups of runs over the same items, each sorted by
    Overall; the groups with the most runs first."""
    groups: dict[str, list[tuple[BoardRow, str]]] = defaultdict(list)
    for run, report in reports:
        m = report.get("manifest") or {}
        data = m.get("data") or {}
        row = board_row(run, report)
        # runs from before items were hashed: the same selection of the same number of items
        key = (
            str(data.get("items_hash") or "")
            or "selection-"
            + hashlib.sha256(
                json.dumps(
                    [data.get("items"), m.get("selection")], sort_keys=True, default=str
                ).encode()
            ).hexdigest()
        )
        groups[key].append((row, selection_text(m, int(data.get("items") or row.items))))
    out = [
        BoardGroup(key, rows[0][1], sorted((r for r, _ in rows), key=_rank_key))
        for key, rows in groups.items()
    ]
    return sorted(out, key=lambda g: (-len(g.rows), g.description))


# ---------------------------------------------------------------- the table's cells

HEADER = [
    "#",
    "Judge",
    "Template",
    "Plan",
    *SUBSET_NAMES,
    "Overall",
    "Consistency",
    "Invalid",
    "Cost",
    "Items",
    "Date",
    "Run",
]
# the columns that sort as numbers
NUMERIC = frozenset({0, *range(4, 4 + len(SUBSET_NAMES) + 5)})


def _acc(c: Cell) -> str:
    if c.accuracy is None:
        return "–"
    return f"{c.accuracy:.3f}" + (f" [{c.ci.low:.3f}, {c.ci.high:.3f}]" if c.ci else "")


def board_cells(rank: int, r: BoardRow) -> list[str]:
    return [
        str(rank),
        r.judge,
        r.template,
        r.plan,
        *(_acc(r.subsets[n]) for n in SUBSET_NAMES),
        _acc(r.overall),
        fmt_pct(r.consistency),
        fmt_pct(r.invalid_rate),
        f"${r.cost_usd:,.4f}",
        f"{r.items:,}",
        r.date[:10],
        r.run,
    ]


# sort keys per column: numbers where the column is one, the text otherwise
def sort_keys(rank: int, r: BoardRow) -> list[str]:
    def num(x: float | None) -> str:
        return "" if x is None else repr(x)

    return [
        str(rank),
        r.judge,
        r.template,
        r.plan,
        *(num(r.subsets[n].accuracy) for n in SUBSET_NAMES),
        num(r.overall.accuracy),
        num(r.consistency),
        num(r.invalid_rate),
        repr(r.cost_usd),
        str(r.items),
        r.date,
        r.run,
    ]
