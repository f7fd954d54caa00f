"""The HTML renderer: `report.html` and `compare.html`, each one self-contained page that works
offline (inline CSS and SVG, no scripts, no CDN), from the Jinja templates in templates/.

`report.html`: the RMB table, a chart of subsets and helpfulness tasks with their intervals,
consistency and invalid rates, and the worst scenarios with worked examples one click away.
`compare.html`: the runs' RMB table, then per pair of runs a forest plot of the paired
differences B − A with their 95% intervals, and the tables behind it, scenarios included."""

from __future__ import annotations

import functools
import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from benchmark.scoring import SUBSET_NAMES, Scores

from .analysis import Section
from .board import HEADER as BOARD_HEADER
from .board import NUMERIC, BoardGroup, board_cells, sort_keys
from .charts import Chart, bar_chart, forest_plot, goal_colour
from .compare import CompareResult, Difference, PairComparison
from .examples import ScenarioExamples, labels_for
from .facts import (
    KAPPA_HEADER,
    agreement_text,
    fmt_human,
    fmt_pct,
    kappa_rows,
    priced,
    run_facts,
    run_label,
)

MAX_TEXT = 6000  # characters of one answer or judge output shown before cutting


def _escape(value: Any) -> Any:
    """Every value a template prints, escaped as html.escape does (quotes included)."""
    return value if isinstance(value, Markup) else Markup(html.escape(str(value)))


def _cut(text: str) -> Markup:
    if len(text) <= MAX_TEXT:
        return Markup(html.escape(text))
    more = f"\n<em>… {len(text) - MAX_TEXT:,} more characters</em>"
    return Markup(html.escape(text[:MAX_TEXT]) + more)


@functools.cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        finalize=_escape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        cut=_cut,
        pct=fmt_pct,
        human=fmt_human,
        commas="{:,}".format,
        usd="{:,.4f}".format,
    )
    env.globals.update(
        subset_names=SUBSET_NAMES,
        labels_for=labels_for,
        agreement_text=agreement_text,
        kappa_rows=kappa_rows,
        kappa_header=KAPPA_HEADER,
    )
    return env


def _one_colour(colour: str) -> Callable[[str], str]:
    return lambda _name: colour


def report_charts(scores: Scores) -> list[Chart]:
    groups = [*scores.subsets.values(), scores.overall]
    charts = [
        bar_chart(
            [(g.name, g.accuracy, g.ci, g.items) for g in groups],
            chart_id="chart-subsets",
            title="Accuracy by subset (95% bootstrap interval)",
        )
    ]
    for subset in SUBSET_NAMES:
        tasks = [g for k, g in scores.tasks.items() if k.startswith(f"{subset} / ")]
        if tasks:
            charts.append(
                bar_chart(
                    [(g.name.split(" / ", 1)[1], g.accuracy, g.ci, g.items) for g in tasks],
                    chart_id=f"chart-tasks-{subset.split()[1].lower()}",
                    title=f"{subset}: accuracy by task",
                    colour_of=_one_colour(goal_colour(subset)),
                )
            )
    return charts


def render_html(
    scores: Scores,
    manifest: Mapping[str, Any] | None,
    examples: Sequence[ScenarioExamples] = (),
    sections: Sequence[Section] = (),
) -> str:
    return (
        _env()
        .get_template("report.html.j2")
        .render(
            scores=scores,
            label=run_label(manifest),
            facts=run_facts(scores, manifest),
            groups=[*scores.subsets.values(), scores.overall],
            priced=priced(manifest),
            charts=report_charts(scores),
            reasons=scores.overall.top_invalid_reasons,
            examples=examples,
            sections=sections,
        )
    )


@dataclass(frozen=True, slots=True)
class _PairView:
    pair: PairComparison
    head: list[Difference]  # subsets and Overall
    head_chart: Chart
    scenarios: list[Difference]  # by difference, the largest gains of B first
    scenario_chart: Chart
    changed: int  # scenarios whose difference counts


def _pair_view(p: PairComparison, n: int) -> _PairView:
    head = [*p.subsets, *([p.overall] if p.overall else [])]
    scenarios = sorted(p.scenarios, key=lambda d: (-d.diff, d.name))
    return _PairView(
        p,
        head,
        forest_plot(head, chart_id=f"chart-pair-{n}", title="B − A by subset"),
        scenarios,
        forest_plot(scenarios, chart_id=f"chart-pair-{n}-scenarios", title="B − A by scenario"),
        sum(d.significant for d in p.scenarios),
    )


def render_compare_html(result: CompareResult) -> str:
    pairs = [_pair_view(p, i + 1) for i, p in enumerate(result.pairs)]
    return _env().get_template("compare.html.j2").render(result=result, pairs=pairs)


@dataclass(frozen=True, slots=True)
class _BoardCell:
    text: str
    key: str  # what the column sorts by
    ci: str  # an accuracy's interval, printed smaller


def _board_rows(g: BoardGroup) -> list[list[_BoardCell]]:
    rows = []
    for rank, r in enumerate(g.rows, 1):
        cells = []
        for text, key in zip(board_cells(rank, r), sort_keys(rank, r), strict=True):
            value, _, ci = text.partition(" [")
            cells.append(_BoardCell(value, key, f"[{ci}" if ci else ""))
        rows.append(cells)
    return rows


def render_board_html(groups: Sequence[BoardGroup]) -> str:
    tables = [(g, _board_rows(g)) for g in groups]
    return (
        _env()
        .get_template("leaderboard.html.j2")
        .render(tables=tables, header=BOARD_HEADER, numeric=NUMERIC)
    )
