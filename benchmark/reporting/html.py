"""`report.html`: one self-contained file that works offline (inline CSS and SVG, no scripts,
no CDN). The RMB table, a chart of subsets and helpfulness tasks with their intervals,
consistency and invalid rates, and the worst scenarios with worked examples one click away."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from benchmark.data import Item
from benchmark.results import JudgedComparison
from benchmark.scoring.items import SUBSET_NAMES, GroupScore, ItemResult, Scores
from benchmark.scoring.stats import Interval
from judges.base import Completion, Message
from judges.errors import UserError

log = logging.getLogger(__name__)

WORST_SCENARIOS = 5
EXAMPLES_PER_SCENARIO = 3
LINES_PER_EXAMPLE = 16
MAX_TEXT = 6000  # characters of one answer or judge output shown before cutting


# ---------------------------------------------------------------- examples


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


def _labels(n: int) -> list[str]:
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
        return f"chose {_labels(len(shown))[v.choice]} = {picked}", picked in ("best", "chosen")
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
    from benchmark.scoring.items import scenario_name

    by_uid: dict[str, list[JudgedComparison]] = defaultdict(list)
    for j in judged:
        by_uid[j.comparison.item_uid].append(j)
    picked: list[tuple[GroupScore, list[Any]]] = []
    for g in worst_scenarios(scores, worst):
        wrong = sorted(
            (r for r in scores.items if scenario_name(r.category) == g.name and r.score < 1),
            key=lambda r: (r.score, r.uid),
        )[:per_scenario]
        picked.append((g, wrong))
    by_item = items([r for _, rs in picked for r in rs])
    wanted = [j for _, rs in picked for r in rs for j in by_uid.get(r.uid, [])[:LINES_PER_EXAMPLE]]
    # answers not in `completions` (a run passes only those it received) come from the cache
    known = completions or {}
    completions = {j.key: known[j.key] for j in wanted if j.key in known}
    completions.update(_from_cache(cache_dir, [j.key for j in wanted if j.key not in known]))
    out = []
    for g, rs in picked:
        examples = []
        for r in rs:
            item = by_item.get(r.uid)
            comps = []
            for j in by_uid.get(r.uid, [])[:LINES_PER_EXAMPLE]:
                words, correct = describe(j)
                c = completions.get(j.key)
                prompt = _render(render, item, j.comparison.shown)
                comps.append(
                    ExampleComparison(
                        j.comparison.shown,
                        j.comparison.variant,
                        j.comparison.sample_index,
                        words,
                        correct,
                        c.text if c else None,
                        c.reasoning if c else None,
                        prompt,
                    )
                )
            examples.append(
                Example(
                    r.uid,
                    r.score,
                    item.conversation if item else (),
                    tuple((cid, resp.model, resp.text) for cid, resp in item.candidates().items())
                    if item
                    else (),
                    tuple(comps),
                )
            )
        out.append(ScenarioExamples(g, tuple(examples)))
    return out


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
        from prompts import load_template

        template = load_template(str(t["name"]))
    except (ImportError, UserError):  # a template by a path that moved, or no prompts package
        return None
    if t.get("text_hash") and template.text_hash() != t["text_hash"]:
        return None
    system = (manifest.get("judge_options") or {}).get("system_prompt")

    def render(item: Item, shown: tuple[str, ...]) -> tuple[Message, ...]:
        cands = item.candidates()
        messages = template.render(
            conversation=item.conversation,
            responses=[cands[c].text for c in shown],
            goal=item.category.goal,
            category=item.category,
        )
        if system and messages[0].role != "system":
            messages = (Message("system", str(system)), *messages)
        return messages

    return render


def _from_cache(cache_dir: Path | None, keys: Sequence[str]) -> Mapping[str, Completion]:
    if cache_dir is None or not keys or not cache_dir.is_dir():
        return {}
    from judges.cache import CacheStore

    try:
        with CacheStore(cache_dir) as store:
            return store.get_many(keys)
    except UserError as e:
        log.warning("examples go without the judge's answers: %s", e)
        return {}


# ---------------------------------------------------------------- charts

GOAL_COLOURS = {"Helpfulness": "#3b6fb6", "Harmlessness": "#c7662b", "Overall": "#555"}


def _colour(name: str) -> str:
    return next((c for k, c in GOAL_COLOURS.items() if name.startswith(k)), "#555")


def bar_chart(
    rows: Sequence[tuple[str, float | None, Interval | None, int]],
    *,
    chart_id: str,
    title: str,
    colour_of: Any = None,
) -> str:
    """Horizontal accuracy bars on a 0–1 axis with 95% interval whiskers."""
    # room for the longest label at ~7 px a character (12 px font)
    label_w = max(180, min(330, 24 + 7 * max((len(r[0]) for r in rows), default=10)))
    plot_w, row_h, top = 440, 24, 34
    width, height = label_w + plot_w + 110, top + row_h * len(rows) + 30

    def x(v: float) -> float:
        return label_w + max(0.0, min(1.0, v)) * plot_w

    out = [
        f'<svg class="chart" id="{escape(chart_id)}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}">',
        f'<text class="chart-title" x="{label_w}" y="18">{escape(title)}</text>',
    ]
    for t in (0, 0.25, 0.5, 0.75, 1):
        out.append(
            f'<line class="grid" x1="{x(t)}" y1="{top - 6}" x2="{x(t)}" '
            f'y2="{top + row_h * len(rows)}"/>'
            f'<text class="tick" x="{x(t)}" y="{top + row_h * len(rows) + 16}" '
            f'text-anchor="middle">{t:g}</text>'
        )
    for i, (name, acc, ci, n) in enumerate(rows):
        y = top + i * row_h
        mid = y + row_h / 2
        colour = (colour_of or _colour)(name)
        out.append(
            f'<text class="label" x="{label_w - 8}" y="{mid + 4}" text-anchor="end">'
            f"{escape(name)}</text>"
        )
        if acc is None:
            continue
        tip = f"{name}: {acc:.3f}" + (f" [{ci.low:.3f}, {ci.high:.3f}]" if ci else "") + f", n={n}"
        out.append(
            f'<rect class="bar" x="{label_w}" y="{y + 4}" width="{x(acc) - label_w:.1f}" '
            f'height="{row_h - 8}" fill="{colour}"><title>{escape(tip)}</title></rect>'
        )
        end = x(acc)
        if ci is not None:
            lo, hi = x(ci.low), x(ci.high)
            end = max(end, hi)
            out.append(
                f'<g class="ci"><line x1="{lo:.1f}" y1="{mid}" x2="{hi:.1f}" y2="{mid}"/>'
                f'<line x1="{lo:.1f}" y1="{mid - 5}" x2="{lo:.1f}" y2="{mid + 5}"/>'
                f'<line x1="{hi:.1f}" y1="{mid - 5}" x2="{hi:.1f}" y2="{mid + 5}"/></g>'
            )
        out.append(
            f'<text class="value" x="{end + 6:.1f}" y="{mid + 4}">{acc:.3f} '
            f'<tspan class="n">n={n}</tspan></text>'
        )
    out.append("</svg>")
    return "".join(out)


# ---------------------------------------------------------------- page

CSS = """
:root { --fg:#1d1f23; --muted:#666; --line:#ddd; --bg:#fff; --soft:#f5f6f8; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
  background: var(--bg); margin: 0 auto; padding: 24px; max-width: 1180px; }
h1 { font-size: 22px; margin: 0 0 8px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.facts { color: var(--muted); margin: 0 0 12px; padding-left: 18px; }
.warn { color: #a0341b; font-weight: 600; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; }
.scroll { overflow-x: auto; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 7px; text-align: right;
  vertical-align: top; white-space: nowrap; }
th { white-space: normal; }
th { background: var(--soft); font-weight: 600; }
th:first-child, td:first-child { text-align: left; white-space: normal; }
table.paper td { font-size: 15px; font-weight: 600; }
tr.overall td { font-weight: 600; border-top: 2px solid #999; }
.ci-text { color: var(--muted); font-weight: 400; font-size: 12px; }
.meter { display: inline-block; width: 44px; height: 8px; background: var(--soft);
  border: 1px solid var(--line); margin-left: 6px; vertical-align: middle; }
.meter > span { display: block; height: 100%; background: #3b6fb6; }
.meter.bad > span { background: #c0392b; }
svg.chart { display: block; max-width: 100%; height: auto; margin: 8px 0 16px; }
svg .chart-title { font-weight: 600; font-size: 13px; fill: var(--fg); }
svg .grid { stroke: #e3e3e3; } svg .tick, svg .n { fill: var(--muted); font-size: 11px; }
svg .label, svg .value { font-size: 12px; fill: var(--fg); }
svg .ci line { stroke: #111; stroke-width: 1.5; }
details { border: 1px solid var(--line); border-radius: 6px; margin: 6px 0; background: #fff; }
details > summary { cursor: pointer; padding: 7px 10px; background: var(--soft); }
details[open] > summary { border-bottom: 1px solid var(--line); }
details .body { padding: 8px 12px; }
.msg, .answer, .judge { white-space: pre-wrap; word-break: break-word; font-size: 13px;
  border-left: 3px solid var(--line); padding: 4px 10px; margin: 4px 0 10px; }
.role { font-weight: 600; color: var(--muted); font-size: 12px; text-transform: uppercase; }
.good { color: #1e7b34; } .bad { color: #b3261e; }
.reasoning { color: var(--muted); }
"""


def _acc_cell(g: GroupScore | None) -> str:
    if g is None or g.accuracy is None:
        return "<td>–</td>"
    ci = f' <span class="ci-text">[{g.ci.low:.3f}, {g.ci.high:.3f}]</span>' if g.ci else ""
    return f"<td>{g.accuracy:.3f}{ci}</td>"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _meter(x: float | None, bad: bool = False) -> str:
    if x is None:
        return "–"
    cls = "meter bad" if bad else "meter"
    return f'{_pct(x)}<span class="{cls}"><span style="width:{100 * x:.1f}%"></span></span>'


def _human(n: int) -> str:
    """12,345,678 → 12.3M (exact counts are in report.json)."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:.3g}{suffix}"
    return str(n)


def _truncate(text: str) -> str:
    if len(text) <= MAX_TEXT:
        return escape(text)
    return escape(text[:MAX_TEXT]) + f"\n<em>… {len(text) - MAX_TEXT:,} more characters</em>"


def _example_html(e: Example) -> str:
    parts = [
        f'<details class="example"><summary>{escape(e.uid)} — item score {e.score:g}</summary>'
        '<div class="body">'
    ]
    if e.conversation:
        parts.append("<h4>Conversation</h4>")
        for m in e.conversation:
            parts.append(
                f'<div class="role">{escape(m.role)}</div><div class="msg">{_truncate(m.content)}</div>'
            )
    else:
        parts.append("<p><em>The dataset was not available: conversation not shown.</em></p>")
    for cid, model, text in e.candidates:
        parts.append(
            f'<details class="candidate"><summary>answer <b>{escape(cid)}</b> '
            f"({escape(model or 'unknown model')})</summary>"
            f'<div class="body answer">{_truncate(text)}</div></details>'
        )
    parts.append("<h4>Judge</h4>")
    for c in e.comparisons:
        mark = "" if c.correct is None else ("good" if c.correct else "bad")
        order = " · ".join(
            f"{label}={cid}" for label, cid in zip(_labels(len(c.shown)), c.shown, strict=True)
        )
        head = (
            f'<span class="{mark}">{escape(c.verdict)}</span> — shown {escape(order)}'
            f" (variant {c.variant}, sample {c.sample})"
        )
        body = (
            f'<div class="judge">{_truncate(c.answer)}</div>'
            if c.answer is not None
            else "<p><em>raw answer not in the cache (an error, or the cache was pruned)</em></p>"
        )
        if c.reasoning:
            body = f'<div class="judge reasoning">{_truncate(c.reasoning)}</div>' + body
        if c.prompt:
            sent = "".join(
                f'<div class="role">{escape(m.role)}</div><div class="msg">{_truncate(m.content)}</div>'
                for m in c.prompt
            )
            body = (
                f'<details class="prompt"><summary>prompt sent to the judge</summary>'
                f'<div class="body">{sent}</div></details>' + body
            )
        parts.append(
            f'<details class="comparison"><summary>{head}</summary><div class="body">{body}</div>'
            "</details>"
        )
    parts.append("</div></details>")
    return "".join(parts)


def render_html(
    scores: Scores,
    manifest: Mapping[str, Any] | None,
    examples: Sequence[ScenarioExamples] = (),
) -> str:
    from benchmark.reporting.report import run_facts, run_label

    label = run_label(manifest)
    groups = [*scores.subsets.values(), scores.overall]
    facts = "".join(
        ('<li class="warn">' if "**" in f else "<li>")
        + escape(f.removeprefix("- ").replace("**", "").replace("`", ""))
        + "</li>"
        for f in run_facts(scores, manifest)
    )
    paper = (
        '<table class="paper" id="rmb-table"><thead><tr><th>Judge × template</th>'
        + "".join(f"<th>{escape(n)}</th>" for n in SUBSET_NAMES)
        + "<th>Overall</th></tr></thead><tbody><tr>"
        + f"<td>{escape(label)}</td>"
        + "".join(_acc_cell(scores.subsets.get(n)) for n in SUBSET_NAMES)
        + _acc_cell(scores.overall)
        + "</tr></tbody></table>"
    )
    rows = []
    for g in groups:
        cls = ' class="overall"' if g is scores.overall else ""
        rows.append(
            f"<tr{cls}><td>{escape(g.name)}</td><td>{g.items:,}</td>{_acc_cell(g)}"
            f"<td>{'–' if g.macro is None else f'{g.macro:.3f}'}</td>"
            f"<td>{_meter(g.consistency)}</td><td>{_pct(g.first_position_rate)}</td>"
            f"<td>{_pct(g.tie_rate)}</td><td>{_meter(g.invalid_rate, bad=True)}</td>"
            f"<td>{g.invalid_items:,}</td><td>{_human(g.input_tokens)} / {_human(g.output_tokens)}</td>"
            f"<td>${g.cost_usd:,.4f}</td><td>{g.cached:,}</td></tr>"
        )
    subsets_table = (
        '<table id="subsets-table"><thead><tr><th>Subset</th><th>Items</th><th>Accuracy [95% CI]</th>'
        "<th>Macro</th><th>Consistency</th><th>Picks A</th><th>Ties</th><th>Invalid</th>"
        "<th>Invalid items</th><th>Tokens in / out</th><th>Cost</th><th>Cache hits</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
    )
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
                    colour_of=lambda _n, s=subset: _colour(s),
                )
            )
    reasons = "".join(
        f"<li>{n:,} × {escape(r)}</li>" for r, n in scores.overall.top_invalid_reasons
    )
    worst = "".join(
        f'<details class="scenario"><summary><b>{escape(se.group.name)}</b> — accuracy '
        f"{se.group.accuracy:.3f} over {se.group.items:,} items, invalid "
        f"{_pct(se.group.invalid_rate)}, consistency {_pct(se.group.consistency)}</summary>"
        f'<div class="body">{"".join(_example_html(e) for e in se.examples) or "<p>No wrong items.</p>"}'
        "</div></details>"
        for se in examples
    )
    scenario_rows = "".join(
        f"<tr><td>{escape(k)}</td><td>{g.items:,}</td>{_acc_cell(g)}<td>{_pct(g.consistency)}</td>"
        f"<td>{_pct(g.tie_rate)}</td><td>{_pct(g.invalid_rate)}</td></tr>"
        for k, g in scores.scenarios.items()
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>RMB report: {escape(label)}</title><style>{CSS}</style></head><body>"
        f'<h1>RMB report: {escape(label)}</h1><ul class="facts">{facts}</ul>'
        f"<h2>Accuracy</h2>{paper}"
        f'<h2>Subsets</h2><div class="scroll">{subsets_table}</div>'
        f"<h2>Charts</h2>{''.join(charts)}"
        + (f"<h2>Invalid verdicts: top reasons</h2><ul>{reasons}</ul>" if reasons else "")
        + (f'<h2>Worst scenarios</h2><div id="worst">{worst}</div>' if worst else "")
        + '<h2>All scenarios</h2><details id="scenarios"><summary>'
        f'{len(scores.scenarios)} scenarios</summary><div class="body">'
        '<table id="scenarios-table"><thead><tr><th>Scenario</th><th>Items</th>'
        "<th>Accuracy [95% CI]</th><th>Consistency</th><th>Ties</th><th>Invalid</th></tr></thead>"
        f"<tbody>{scenario_rows}</tbody></table></div></details>"
        "</body></html>\n"
    )
