"""`compare.html`: `rmb compare` as one self-contained page (inline CSS and SVG, no scripts).
The runs' RMB table, then per pair of runs a forest plot of the paired differences B − A with
their 95% intervals (a difference whose interval excludes zero is drawn solid), and the tables
behind it, scenarios included."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from benchmark.reporting.compare import CompareResult, Difference, PairComparison
from benchmark.reporting.html import CSS, GOAL_COLOURS
from benchmark.scoring.items import SUBSET_NAMES

BETTER, WORSE, UNSURE = "#1e7b34", "#b3261e", "#8a8f98"


def diff_chart(rows: Sequence[Difference], *, chart_id: str, title: str) -> str:
    """A forest plot on an axis symmetric about 0: a dot per group at B − A, its interval."""
    label_w = max(180, min(360, 24 + 7 * max((len(d.name) for d in rows), default=10)))
    plot_w, row_h, top = 420, 22, 34
    width, height = label_w + plot_w + 150, top + row_h * len(rows) + 30
    reach = max(
        [0.05]
        + [abs(v) for d in rows for v in ((d.ci.low, d.ci.high) if d.ci else (d.diff, d.diff))]
    )
    reach = min(1.0, reach * 1.1)

    def x(v: float) -> float:
        return label_w + (max(-reach, min(reach, v)) + reach) / (2 * reach) * plot_w

    out = [
        f'<svg class="chart" id="{escape(chart_id)}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}">',
        f'<text class="chart-title" x="{label_w}" y="18">{escape(title)}</text>',
    ]
    bottom = top + row_h * len(rows)
    for t in (-reach, -reach / 2, 0.0, reach / 2, reach):
        cls = "zero" if t == 0 else "grid"
        out.append(
            f'<line class="{cls}" x1="{x(t):.1f}" y1="{top - 6}" x2="{x(t):.1f}" y2="{bottom}"/>'
            f'<text class="tick" x="{x(t):.1f}" y="{bottom + 16}" text-anchor="middle">'
            f"{t:+.2f}</text>"
        )
    for i, d in enumerate(rows):
        mid = top + i * row_h + row_h / 2
        colour = (BETTER if d.diff > 0 else WORSE) if d.significant else UNSURE
        ci = f" [{d.ci.low:+.3f}, {d.ci.high:+.3f}]" if d.ci else ""
        tip = f"{d.name}: {d.diff:+.3f}{ci}, n={d.items}, McNemar p={d.mcnemar.p_value:.3g}"
        out.append(
            f'<text class="label" x="{label_w - 8}" y="{mid + 4}" text-anchor="end">'
            f"{escape(d.name)}</text>"
        )
        if d.ci is not None:
            out.append(
                f'<line x1="{x(d.ci.low):.1f}" y1="{mid}" x2="{x(d.ci.high):.1f}" y2="{mid}" '
                f'stroke="{colour}" stroke-width="2"/>'
            )
        fill = colour if d.significant else "#fff"
        out.append(
            f'<circle cx="{x(d.diff):.1f}" cy="{mid}" r="4.5" fill="{fill}" stroke="{colour}" '
            f'stroke-width="2"><title>{escape(tip)}</title></circle>'
            f'<text class="value" x="{label_w + plot_w + 8}" y="{mid + 4}">{d.diff:+.3f}'
            f'<tspan class="n"> n={d.items}</tspan></text>'
        )
    out.append("</svg>")
    return "".join(out)


def _cell(group: dict[str, Any] | None) -> str:
    if not group or group.get("accuracy") is None:
        return "<td>–</td>"
    ci = group.get("ci")
    text = f' <span class="ci-text">[{ci["low"]:.3f}, {ci["high"]:.3f}]</span>' if ci else ""
    return f"<td>{group['accuracy']:.3f}{text}</td>"


def _diff_rows(rows: Sequence[Difference]) -> str:
    out = []
    for d in rows:
        holm = "" if d.holm_p is None else f"<td>{d.holm_p:.3g}</td>"
        mark = (" good" if d.diff > 0 else " bad") if d.significant else ""
        ci = f"[{d.ci.low:+.3f}, {d.ci.high:+.3f}]" if d.ci else "–"
        out.append(
            f"<tr{' class=overall' if d.name == 'Overall' else ''}><td>{escape(d.name)}</td>"
            f"<td>{d.items:,}</td><td>{d.a:.3f}</td><td>{d.b:.3f}</td>"
            f'<td class="diff{mark}">{d.diff:+.3f}{" *" if d.significant else ""}</td>'
            f"<td>{ci}</td><td>{d.mcnemar.p_value:.3g}</td>"
            f"<td>{d.mcnemar.a_better:,} / {d.mcnemar.b_better:,}</td>{holm}</tr>"
        )
    return "".join(out)


_DIFF_HEAD = (
    "<thead><tr><th>Group</th><th>Items</th><th>A</th><th>B</th><th>B − A</th><th>95% CI</th>"
    "<th>McNemar p</th><th>A / B better</th>{}</tr></thead>"
)


def _diff_table(rows: Sequence[Difference], holm: bool = False) -> str:
    head = _DIFF_HEAD.format("<th>Holm p</th>" if holm else "")
    return f'<div class="scroll"><table class="diffs">{head}<tbody>{_diff_rows(rows)}</tbody></table></div>'


def _pair_html(p: PairComparison, n: int) -> str:
    head = [*p.subsets, *([p.overall] if p.overall else [])]
    # scenarios by difference, the largest gains of B first
    scenarios = sorted(p.scenarios, key=lambda d: (-d.diff, d.name))
    changed = sum(d.significant for d in p.scenarios)
    return (
        f'<section class="pair" id="pair-{n}"><h2>{escape(p.b)} − {escape(p.a)}</h2>'
        f'<p class="facts">Paired over the {p.common:,} items both judged: B − A with its 95% '
        "paired bootstrap interval (* and a solid dot: the interval excludes 0), and McNemar's "
        "test on the item outcomes (A better / B better: the discordant items).</p>"
        + diff_chart(head, chart_id=f"chart-pair-{n}", title="B − A by subset")
        + _diff_table(head)
        + f'<details class="scenarios"><summary>{len(scenarios)} scenarios: {changed} differ '
        f'after Holm\'s correction for {len(scenarios)} tests</summary><div class="body">'
        "<p>A scenario is a handful of items, and there are dozens: its difference counts "
        "(solid dot, *) when its interval excludes 0 and McNemar's p, adjusted over all the "
        "scenarios (Holm), is below 0.05.</p>"
        + diff_chart(scenarios, chart_id=f"chart-pair-{n}-scenarios", title="B − A by scenario")
        + _diff_table(scenarios, holm=True)
        + "</div></details></section>"
    )


def render_compare_html(result: CompareResult) -> str:
    runs = "".join(
        f"<tr><td>{escape(r.label)}</td>"
        + "".join(_cell(r.report.get("subsets", {}).get(name)) for name in SUBSET_NAMES)
        + _cell(r.report.get("overall"))
        + f"<td>{len(r.items):,}</td></tr>"
        for r in result.runs
    )
    warnings = "".join(f'<li class="warn">{escape(w)}</li>' for w in result.warnings)
    style = (
        CSS + "svg .zero { stroke: #555; stroke-width: 1.2; } .diff.good { color: #1e7b34; "
        "font-weight: 600; } .diff.bad { color: #b3261e; font-weight: 600; } "
        f"section.pair h2 {{ border-top: 2px solid {GOAL_COLOURS['Overall']}; padding-top: 10px; }}"
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>RMB comparison</title><style>{style}</style></head><body>"
        "<h1>RMB comparison</h1>"
        + (f'<ul class="facts">{warnings}</ul>' if warnings else "")
        + '<div class="scroll"><table class="paper" id="runs-table"><thead><tr>'
        "<th>Judge × template</th>"
        + "".join(f"<th>{escape(name)}</th>" for name in SUBSET_NAMES)
        + f"<th>Overall</th><th>Items</th></tr></thead><tbody>{runs}</tbody></table></div>"
        + "".join(_pair_html(p, i + 1) for i, p in enumerate(result.pairs))
        + "</body></html>\n"
    )
