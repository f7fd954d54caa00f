"""The markdown renderer: `report.md` (the paper's table first) and `compare.md`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from benchmark.scoring import SUBSET_NAMES, GroupScore, Scores

from .analysis import Section
from .board import HEADER as BOARD_HEADER
from .board import BoardGroup, board_cells
from .compare import CompareResult, Difference
from .escape import for_markdown
from .facts import (
    KAPPA_HEADER,
    Fact,
    agreement_text,
    fmt_acc,
    fmt_ci,
    fmt_cost,
    fmt_pct,
    kappa_rows,
    paper_row,
    priced,
    run_facts,
    run_label,
)

GROUP_HEADER = [
    "Subset",
    "Items",
    "Accuracy",
    "95% CI",
    "Macro",
    "Consistency",
    "Picks A",
    "Ties",
    "Invalid",
    "Invalid items",
    "Tokens in / out",
    "Cost",
    "Cache hits",
]
SHORT_HEADER = ["Items", "Accuracy", "95% CI", "Consistency", "Ties", "Invalid"]
DIFF_HEADER = ["Group", "Items", "A", "B", "B − A", "95% CI", "McNemar p", "A / B better"]


def _md_cell(text: object) -> str:
    return for_markdown(text)


def md_table(header: Sequence[str], rows: Iterable[Sequence[object]], right_from: int = 1) -> str:
    align = ["---" if i < right_from else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def paper_table(label: str, scores: Scores) -> str:
    """The RMB paper's row for one run: the four subsets and Overall, with 95% intervals."""
    return md_table(["Judge × template", *SUBSET_NAMES, "Overall"], [[label, *paper_row(scores)]])


def md_fact(f: Fact) -> str:
    return f"- **{f.text}**{f.tail}" if f.warn else f"- {f.text}{f.tail}"


def _group_row(g: GroupScore, known_cost: bool = True) -> list[object]:
    return [
        g.name,
        g.items,
        fmt_acc(g.accuracy),
        fmt_ci(g.ci),
        fmt_acc(g.macro) if g.macro is not None else "–",
        fmt_pct(g.consistency),
        fmt_pct(g.first_position_rate),
        fmt_pct(g.tie_rate),
        fmt_pct(g.invalid_rate),
        g.invalid_items,
        f"{g.input_tokens:,} / {g.output_tokens:,}",
        fmt_cost(g.cost_usd, known_cost),
        g.cached,
    ]


def _short_row(g: GroupScore, name: str) -> list[object]:
    return [
        name,
        g.items,
        fmt_acc(g.accuracy),
        fmt_ci(g.ci),
        fmt_pct(g.consistency),
        fmt_pct(g.tie_rate),
        fmt_pct(g.invalid_rate),
    ]


def analysis_markdown(sections: Sequence[Section]) -> list[str]:
    """The analysis sections: paragraphs (a warning in bold) and tables; charts are HTML's."""
    parts: list[str] = []
    for s in sections:
        parts += [f"## {s.title}", ""]
        for f in s.lines:
            parts += [f"**{f.text}**{f.tail}" if f.warn else f"{f.text}{f.tail}", ""]
        for t in s.tables:
            parts += [md_table(t.header, t.rows), ""]
    return parts


def markdown(
    scores: Scores,
    manifest: Mapping[str, Any] | None = None,
    sections: Sequence[Section] = (),
) -> str:
    label = run_label(manifest)
    o = scores.overall
    known = priced(manifest)
    parts = [
        f"# RMB report: {for_markdown(label)}",
        "",
        paper_table(label, scores),
        "",
        "Accuracy is micro over items with its 95% bootstrap interval; Overall is the mean of "
        "the subsets.",
        "",
        *map(md_fact, run_facts(scores, manifest)),
        "",
        "## Subsets",
        "",
        "Macro = mean over scenarios. Consistency = share of answer sets judged in both orders "
        "whose winner survives the swap. Picks A = share of two-answer choices that picked the "
        "answer shown first. Ties and Invalid are shares of comparisons (after majority vote). "
        "Tokens and Cost are those of every answer scored, cache hits included; Cache hits = "
        "answers this run read from the cache.",
        "",
        md_table(
            GROUP_HEADER,
            [_group_row(g, known) for g in scores.subsets.values()] + [_group_row(o, known)],
        ),
        "",
    ]
    if o.top_invalid_reasons:
        parts += ["## Invalid verdicts: top reasons", ""]
        parts += [f"- {n:,} × {_md_cell(r)}" for r, n in o.top_invalid_reasons]
        parts.append("")
    if scores.tasks:
        parts += ["## Helpfulness tasks", ""]
        parts.append(
            md_table(["Task", *SHORT_HEADER], [_short_row(g, k) for k, g in scores.tasks.items()])
        )
        parts.append("")
    parts += analysis_markdown(sections)
    parts += ["## Scenarios", ""]
    parts.append(
        md_table(
            ["Scenario", *SHORT_HEADER], [_short_row(g, k) for k, g in scores.scenarios.items()]
        )
    )
    parts.append("")
    return "\n".join(parts)


# ---------------------------------------------------------------- compare.md


def _report_cell(g: dict[str, Any] | None) -> str:
    """A group of a run's report.json: accuracy and interval."""
    if not g or g.get("accuracy") is None:
        return "–"
    ci = g.get("ci")
    return f"{g['accuracy']:.3f}" + (f" [{ci['low']:.3f}, {ci['high']:.3f}]" if ci else "")


def _diff_row(d: Difference) -> list[object]:
    ci = f"[{d.ci.low:+.3f}, {d.ci.high:+.3f}]" if d.ci else "–"
    return [
        d.name,
        f"{d.items:,}",
        f"{d.a:.3f}",
        f"{d.b:.3f}",
        f"{d.diff:+.3f}" + (" *" if d.significant else ""),
        ci,
        f"{d.mcnemar.p_value:.3g}",
        f"{d.mcnemar.a_better} / {d.mcnemar.b_better}",
    ]


def compare_markdown(result: CompareResult) -> str:
    rows = [
        [
            r.label,
            *(_report_cell(r.report.get("subsets", {}).get(n)) for n in SUBSET_NAMES),
            _report_cell(r.report.get("overall")),
            f"{len(r.items):,}",
        ]
        for r in result.runs
    ]
    out = [
        "# RMB comparison",
        "",
        md_table(["Judge × template", *SUBSET_NAMES, "Overall", "Items"], rows),
        "",
    ]
    out += [f"> warning: {for_markdown(w)}" for w in result.warnings]
    for p in result.pairs:
        out += [
            "",
            f"## {for_markdown(p.b)} − {for_markdown(p.a)}",
            "",
            f"Paired over the {p.common:,} items both judged: B − A with its 95% paired "
            "bootstrap interval (* = excludes 0), and McNemar's test on the item outcomes "
            "(A better / B better = discordant items).",
            "",
            md_table(
                DIFF_HEADER,
                [_diff_row(d) for d in [*p.subsets, *([p.overall] if p.overall else [])]],
            ),
            "",
            *([agreement_text(p.agreement), ""] if p.agreement else []),
            "### Scenarios",
            "",
            "Each scenario is a handful of items and there are dozens of them: * marks a "
            "difference whose interval excludes 0 and whose McNemar p stays below 0.05 after "
            "Holm's correction over all the scenarios.",
            "",
            md_table(
                ["Scenario", *DIFF_HEADER[1:], "Holm p"],
                [[*_diff_row(d), f"{d.holm_p:.3g}"] for d in p.scenarios],
            ),
        ]
        if p.agreement and p.agreement.scenarios:
            out += [
                "",
                "### Agreement by scenario",
                "",
                md_table(KAPPA_HEADER, kappa_rows(p.agreement)),
            ]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- leaderboard.md


def board_markdown(groups: Sequence[BoardGroup]) -> str:
    out = [
        "# RMB leaderboard",
        "",
        "Runs over the same items, ranked by Overall (the mean of the four subsets); accuracy "
        "with its 95% bootstrap interval. Runs over different items are in separate tables and "
        "never ranked together.",
    ]
    for g in groups:
        rows = [board_cells(i, r) for i, r in enumerate(g.rows, 1)]
        out += [
            "",
            f"## {g.description} · data {g.data[:12]}",
            "",
            md_table(BOARD_HEADER, rows, right_from=4),
        ]
    return "\n".join(out) + "\n"
