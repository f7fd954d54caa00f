"""The geometry of the pages' SVG charts (templates/charts.html.j2 draws it): accuracy bars on
a 0–1 axis with interval whiskers, and a forest plot of paired differences about 0."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from benchmark.scoring.stats import Interval

from .compare import Difference

GOAL_COLOURS = {"Helpfulness": "#3b6fb6", "Harmlessness": "#c7662b", "Overall": "#555"}
BETTER, WORSE, UNSURE = "#1e7b34", "#b3261e", "#8a8f98"
TOP = 34  # room for the title


def goal_colour(name: str) -> str:
    return next((c for k, c in GOAL_COLOURS.items() if name.startswith(k)), "#555")


@dataclass(frozen=True, slots=True)
class Tick:
    x: float
    text: str
    zero: bool = False


@dataclass(frozen=True, slots=True)
class Row:
    """One labelled row: a bar from the axis start (`bar`), or a dot at `x` (forest plot)."""

    name: str
    top: int  # the row's upper edge
    mid: float  # its vertical centre
    tip: str
    colour: str
    x: float | None  # the bar's end or the dot; None: nothing to draw
    ci: tuple[float, float] | None  # whisker ends
    value: str  # the number printed after the row, at value_x
    value_x: float
    n: int
    fill: str = ""  # the dot's fill (forest plot)


@dataclass(frozen=True, slots=True)
class Chart:
    chart_id: str
    title: str
    width: int
    height: int
    label_w: int
    plot_w: int
    row_h: int
    bottom: int  # the rows' lower edge
    ticks: tuple[Tick, ...]
    rows: tuple[Row, ...]
    bars_top: int = TOP  # the rows' upper edge


def _label_width(names: Sequence[str], widest: int) -> int:
    # room for the longest label at ~7 px a character (12 px font)
    return max(180, min(widest, 24 + 7 * max((len(n) for n in names), default=10)))


def bar_chart(
    rows: Sequence[tuple[str, float | None, Interval | None, int]],
    *,
    chart_id: str,
    title: str,
    colour_of: Callable[[str], str] = goal_colour,
) -> Chart:
    """Horizontal accuracy bars on a 0–1 axis with 95% interval whiskers."""
    label_w = _label_width([r[0] for r in rows], 330)
    plot_w, row_h = 440, 24

    def x(v: float) -> float:
        return label_w + max(0.0, min(1.0, v)) * plot_w

    out = []
    for i, (name, acc, ci, n) in enumerate(rows):
        top = TOP + i * row_h
        if acc is None:  # a label alone
            out.append(Row(name, top, top + row_h / 2, "", "", None, None, "", 0.0, n))
            continue
        whisker = (x(ci.low), x(ci.high)) if ci is not None else None
        out.append(
            Row(
                name,
                top,
                top + row_h / 2,
                f"{name}: {acc:.3f}"
                + (f" [{ci.low:.3f}, {ci.high:.3f}]" if ci else "")
                + f", n={n}",
                colour_of(name),
                x(acc),
                whisker,
                f"{acc:.3f}",
                max(x(acc), whisker[1] if whisker else 0.0) + 6,
                n,
            )
        )
    return Chart(
        chart_id,
        title,
        label_w + plot_w + 110,
        TOP + row_h * len(rows) + 30,
        label_w,
        plot_w,
        row_h,
        TOP + row_h * len(rows),
        tuple(Tick(x(t), f"{t:g}") for t in (0, 0.25, 0.5, 0.75, 1)),
        tuple(out),
    )


def forest_plot(rows: Sequence[Difference], *, chart_id: str, title: str) -> Chart:
    """A dot per group at B − A with its interval, on an axis symmetric about 0; a difference
    that counts (see Difference.significant) is solid and coloured by its sign."""
    label_w = _label_width([d.name for d in rows], 360)
    plot_w, row_h = 420, 22
    reach = max(
        [0.05]
        + [abs(v) for d in rows for v in ((d.ci.low, d.ci.high) if d.ci else (d.diff, d.diff))]
    )
    reach = min(1.0, reach * 1.1)

    def x(v: float) -> float:
        return label_w + (max(-reach, min(reach, v)) + reach) / (2 * reach) * plot_w

    out = []
    for i, d in enumerate(rows):
        colour = (BETTER if d.diff > 0 else WORSE) if d.significant else UNSURE
        ci = f" [{d.ci.low:+.3f}, {d.ci.high:+.3f}]" if d.ci else ""
        out.append(
            Row(
                d.name,
                TOP + i * row_h,
                TOP + i * row_h + row_h / 2,
                f"{d.name}: {d.diff:+.3f}{ci}, n={d.items}, McNemar p={d.mcnemar.p_value:.3g}",
                colour,
                x(d.diff),
                (x(d.ci.low), x(d.ci.high)) if d.ci is not None else None,
                f"{d.diff:+.3f}",
                label_w + plot_w + 8,
                d.items,
                colour if d.significant else "#fff",
            )
        )
    ticks = (-reach, -reach / 2, 0.0, reach / 2, reach)
    return Chart(
        chart_id,
        title,
        label_w + plot_w + 150,
        TOP + row_h * len(rows) + 30,
        label_w,
        plot_w,
        row_h,
        TOP + row_h * len(rows),
        tuple(Tick(x(t), f"{t:+.2f}", t == 0) for t in ticks),
        tuple(out),
    )
