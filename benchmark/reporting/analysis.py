"""The analyses of a run as report sections: the same facts for report.md (tables) and
report.html (tables and inline SVG charts)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from benchmark.analysis.calibration import Calibration, MarginRanking
from benchmark.analysis.duels import RATIO_BINS
from benchmark.analysis.estimate import Estimate
from benchmark.analysis.generators import GeneratorAnalysis, family
from benchmark.analysis.length import UNIT, LengthAnalysis
from benchmark.analysis.position import PositionAnalysis
from benchmark.analysis.run import RunAnalysis
from benchmark.analysis.samples import SamplesPoint
from benchmark.scoring.stats import Interval

from .charts import Chart, bar_chart
from .facts import Fact, fmt_ci, fmt_pct
from .plots import Dot, DotChart, Point, XYChart, dot_chart, xy_chart


@dataclass
class Table:
    id: str
    header: list[str]
    rows: list[list[str]]
    # HTML: behind a click (long lists such as every scenario)
    collapsed: bool = False


@dataclass
class Section:
    id: str
    title: str
    # paragraphs; a `warn` one is stressed (bold in Markdown, red in HTML)
    lines: list[Fact] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    # HTML only
    bars: list[Chart] = field(default_factory=list)
    dots: list[DotChart] = field(default_factory=list)
    curves: list[XYChart] = field(default_factory=list)


def ci_text(ci: Interval | None, as_pct: bool = True) -> str:
    if ci is None or not as_pct:
        return fmt_ci(ci)
    return f"[{fmt_pct(ci.low)}, {fmt_pct(ci.high)}]"


def est_cells(e: Estimate, as_pct: bool = True) -> list[str]:
    value = (fmt_pct(e.value) if as_pct else f"{e.value:.3f}") if e.value is not None else "–"
    return [value, ci_text(e.ci, as_pct), f"{e.n:,}"]


def estimates_chart(named: Sequence[tuple[str, Estimate]], *, chart_id: str, title: str) -> Chart:
    """Bars of estimates on a 0–1 axis with their intervals."""
    return bar_chart(
        [(name, e.value, e.ci, e.n) for name, e in named], chart_id=chart_id, title=title
    )


def estimates_table(
    table_id: str,
    header: tuple[str, str, str],
    named: Sequence[tuple[str, Estimate]],
    collapsed: bool = False,
) -> Table:
    """Rows of name, estimate, interval and count (header: name, measure, units)."""
    name, measure, units = header
    return Table(
        table_id,
        [name, measure, "95% CI", units],
        [[k, *est_cells(e)] for k, e in named],
        collapsed,
    )


# ---------------------------------------------------------------- sections


def length_section(a: LengthAnalysis) -> Section:
    s = Section("length", f"Length ({UNIT})")
    pl = a.picks_longer
    s.lines.append(
        Fact(
            f"Over the {a.comparisons:,} two-answer comparisons (after the vote over samples); "
            f"{a.equal_length:,} showed two equally long answers. The dataset prefers the longer "
            f"answer in {fmt_pct(a.preferred_longer)} of the others; the judge picked it in "
            f"{fmt_pct(pl.value)} {ci_text(pl.ci)} of its choices. A judge blind to length is "
            "right as often when the preferred answer is the longer one as when it is the "
            "shorter one. Intervals: 95% bootstrap over comparisons."
        )
    )
    gap, ci = a.longer_gap, a.longer_gap_ci
    if gap is not None and ci is not None and (ci.low > 0 or ci.high < 0):
        side = "longer" if gap > 0 else "shorter"
        s.lines.append(
            Fact(
                f"The judge prefers the {side} answer: it is right in "
                f"{fmt_pct(a.accuracy_preferred_longer.value)} of the comparisons where the "
                f"preferred answer is the longer one and "
                f"{fmt_pct(a.accuracy_preferred_shorter.value)} where it is the shorter one "
                f"({100 * gap:+.1f} points [{100 * ci.low:+.1f}, {100 * ci.high:+.1f}]).",
                warn=True,
            )
        )
    s.tables.append(
        Table(
            "length-table",
            ["Measure", "Value", "95% CI", "Comparisons"],
            [
                ["Picks the longer answer", *est_cells(pl)],
                ["Accuracy, preferred answer longer", *est_cells(a.accuracy_preferred_longer)],
                ["Accuracy, preferred answer shorter", *est_cells(a.accuracy_preferred_shorter)],
                [
                    "Difference (longer − shorter)",
                    "–" if gap is None else f"{100 * gap:+.1f} points",
                    "–" if ci is None else f"[{100 * ci.low:+.1f}, {100 * ci.high:+.1f}]",
                    "",
                ],
            ],
        )
    )
    ratio = [(b, a.by_ratio[b]) for b in RATIO_BINS if b in a.by_ratio]
    s.tables.append(
        estimates_table(
            "length-ratio-table",
            ("chars(preferred) / chars(other)", "Accuracy", "Comparisons"),
            ratio,
        )
    )
    if a.picks_longer_by_subset:
        s.tables.append(
            estimates_table(
                "length-subsets-table",
                ("Subset", "Picks the longer answer", "Choices"),
                list(a.picks_longer_by_subset.items()),
            )
        )
    s.bars.append(
        estimates_chart(
            [("All comparisons", pl), *a.picks_longer_by_subset.items()],
            chart_id="chart-length-longer",
            title="Share of choices that went to the longer answer",
        )
    )
    s.bars.append(
        estimates_chart(
            [(f"ratio {b}", e) for b, e in ratio],
            chart_id="chart-length-ratio",
            title="Accuracy by chars(preferred) / chars(other)",
        )
    )
    return s


def position_section(p: PositionAnalysis) -> Section:
    s = Section("position", "Position")
    s.lines.append(
        Fact(
            f"Picks A: {fmt_pct(p.picks_first.value)} {ci_text(p.picks_first.ci)} of "
            f"{p.picks_first.n:,} two-answer choices went to the answer shown first. "
            f"The verdict flips with the order for {fmt_pct(p.flips.value)} {ci_text(p.flips.ci)} of "
            f"the {p.flips.n:,} items judged in several orders. By length ratio, a position bias "
            "stays flat; a length bias rises with chars(A) / chars(B)."
        )
    )
    by_length = [(b, p.by_length[b]) for b in RATIO_BINS if b in p.by_length]
    s.tables.append(
        estimates_table(
            "position-length-table", ("chars(A) / chars(B)", "Picks A", "Choices"), by_length
        )
    )
    s.tables.append(
        estimates_table(
            "position-scenarios-table",
            ("Scenario", "Picks A", "Choices"),
            list(p.by_scenario.items()),
            collapsed=True,
        )
    )
    s.bars.append(
        estimates_chart(
            [(f"ratio {b}", e) for b, e in by_length],
            chart_id="chart-position-length",
            title="Picks A by chars(A) / chars(B)",
        )
    )
    return s


def generators_section(g: GeneratorAnalysis) -> Section:
    s = Section("generators", "Generators")
    s.lines.append(
        Fact(
            "Each answer's writer (RMB's llm_name): how often the judge preferred its answers (a "
            "tie is half) against how often the dataset does, over the two-answer comparisons with a "
            "valid verdict. Intervals: 95% bootstrap over comparisons."
        )
    )
    sp = g.self_preference
    if sp is not None:
        line = (
            f"Self-preference ({sp.family} judge, {sp.comparisons:,} comparisons with exactly one "
            f"{sp.family} answer): the judge picks it in {fmt_pct(sp.judge_picks_own.value)} "
            f"{ci_text(sp.judge_picks_own.ci)}, the dataset prefers it in "
            f"{fmt_pct(sp.dataset_prefers_own)}; excess {100 * sp.excess:+.1f} points"
            + (
                f" [{100 * sp.excess_ci.low:+.1f}, {100 * sp.excess_ci.high:+.1f}]."
                if sp.excess_ci
                else "."
            )
        )
        s.lines.append(Fact(line, warn=sp.excess_ci is not None and sp.excess_ci.low > 0))
    elif g.judge_family:
        s.lines.append(
            Fact(f"No answer here was written by the judge's family ({g.judge_family}).")
        )
    s.tables.append(
        Table(
            "generators-table",
            ["Generator", "Family", "Judge win rate", "95% CI", "Comparisons", "Dataset win rate"],
            [
                [r.model, family(r.model), *est_cells(r.judge_wins), fmt_pct(r.dataset_wins)]
                for r in g.generators
            ],
        )
    )
    s.dots.append(
        dot_chart(
            [
                Dot(r.model, r.judge_wins.value, r.judge_wins.ci, r.dataset_wins, r.comparisons)
                for r in g.generators
            ],
            chart_id="chart-generators",
            title="Win rate of each generator's answers",
            legend="dot: under the judge (95% CI); bar: in the dataset",
        )
    )
    return s


def calibration_section(c: Calibration) -> Section:
    s = Section("calibration", "Calibration")
    sel = ", ".join(f"{fmt_pct(a)} at {cov:.0%} coverage" for cov, a in c.selective.items())
    s.lines.append(
        Fact(
            f"Over the {c.comparisons:,} comparisons whose verdict gave probabilities: confidence "
            f"(the probability of the chosen answer) {fmt_pct(c.mean_confidence)} on average, accuracy "
            f"{fmt_pct(c.accuracy)}. ECE {c.ece:.3f}; Brier score {c.brier.value:.3f} "
            f"{ci_text(c.brier.ci, as_pct=False)}; AUROC of confidence for being right "
            + (f"{c.auroc:.3f}" if c.auroc is not None else "– (all right or all wrong)")
            + f". Answering only the most confident: {sel}."
        )
    )
    s.tables.append(
        Table(
            "reliability-table",
            ["Confidence bin", "Comparisons", "Mean confidence", "Accuracy"],
            [
                [
                    f"{b.low:.2f}–{b.high:.2f}",
                    f"{b.n:,}",
                    fmt_pct(b.confidence),
                    fmt_pct(b.accuracy),
                ]
                for b in c.bins
            ],
        )
    )
    s.curves.append(
        xy_chart(
            [
                Point(
                    b.confidence,
                    b.accuracy,
                    n=b.n,
                    tip=f"{b.low:.2f}–{b.high:.2f}: confidence {b.confidence:.3f}, "
                    f"accuracy {b.accuracy:.3f}, n={b.n}",
                )
                for b in c.bins
            ],
            chart_id="chart-reliability",
            title="Reliability diagram (dashed: perfectly calibrated)",
            x_label="confidence of the chosen answer",
            y_label="accuracy",
            x_range=(0.5, 1.0),
            x_ticks=(0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
            diagonal=True,
        )
    )
    return s


def margin_section(m: MarginRanking) -> Section:
    s = Section("rating-margin", "Confidence of the ratings")
    sel = ", ".join(f"{fmt_pct(a)} at {cov:.0%} coverage" for cov, a in m.selective.items())
    s.lines.append(
        Fact(
            "A rating is no probability, so there is no reliability diagram; but the gap between an "
            "item's top rating and the runner-up's should be wider where the judge is right. Over "
            f"{m.items:,} items rated in full: accuracy {fmt_pct(m.accuracy)} (the preferred answer "
            "alone on top); AUROC of the gap for being right "
            + (f"{m.auroc:.3f}" if m.auroc is not None else "– (all right or all wrong)")
            + f"; answering only the widest gaps: {sel}."
        )
    )
    return s


def samples_section(points: Sequence[SamplesPoint]) -> Section:
    s = Section("samples", "Majority of samples")
    subsets = list(points[0].subsets)
    s.lines.append(
        Fact(
            "Accuracy (Overall) when each comparison is decided by the majority of its first k "
            "samples, scored as a run with --samples k would be; an even k can split into a tie."
        )
    )
    s.tables.append(
        Table(
            "samples-table",
            ["k", "Overall", "95% CI", *subsets],
            [
                [
                    str(p.k),
                    "–" if p.accuracy is None else f"{p.accuracy:.3f}",
                    ci_text(p.ci, as_pct=False),
                    *("–" if p.subsets.get(n) is None else f"{p.subsets[n]:.3f}" for n in subsets),
                ]
                for p in points
            ],
        )
    )
    s.curves.append(
        xy_chart(
            [
                Point(p.k, p.accuracy, p.ci, tip=f"k={p.k}: {p.accuracy:.3f}")
                for p in points
                if p.accuracy is not None
            ],
            chart_id="chart-samples",
            title="Overall accuracy by number of samples voted",
            x_label="samples voted (k)",
            y_label="Overall accuracy",
            x_range=(0.5, len(points) + 0.5),
            x_ticks=[p.k for p in points],
        )
    )
    return s


def analysis_sections(a: RunAnalysis) -> list[Section]:
    out = []
    if a.length is not None:
        out.append(length_section(a.length))
    if a.position is not None:
        out.append(position_section(a.position))
    if a.generators is not None and a.generators.generators:
        out.append(generators_section(a.generators))
    if a.calibration is not None:
        out.append(calibration_section(a.calibration))
    if a.rating_margin is not None:
        out.append(margin_section(a.rating_margin))
    if a.samples:
        out.append(samples_section(a.samples))
    return out
