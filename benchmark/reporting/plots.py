"""The geometry of the analysis charts (templates/charts.html.j2 draws it): points on x/y axes
with interval whiskers and a line through them (a reliability diagram, with its diagonal; an
accuracy curve), and a dot plot of estimates against a reference tick (a generator's win rate
under the judge against the dataset's)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from benchmark.scoring.stats import Interval

from .charts import TOP, Tick


@dataclass(frozen=True, slots=True)
class Point:
    x: float
    y: float
    ci: Interval | None = None
    # marker area grows with n (reliability bins); 0: the default size
    n: int = 0
    tip: str = ""


@dataclass(frozen=True, slots=True)
class Marker:
    """A point placed on the page: centre, radius, whisker ends (page y), tooltip."""

    x: float
    y: float
    r: float
    ci: tuple[float, float] | None
    tip: str


@dataclass(frozen=True, slots=True)
class XYChart:
    chart_id: str
    title: str
    width: int
    height: int
    left: int
    top: int
    plot_w: int
    plot_h: int
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]  # Tick.x holds the page y
    markers: tuple[Marker, ...]
    line: str  # the polyline's points; empty for one point
    diagonal: tuple[float, float, float, float] | None
    x_label: str
    y_label: str


def xy_chart(
    points: Sequence[Point],
    *,
    chart_id: str,
    title: str,
    x_label: str,
    y_label: str,
    x_range: tuple[float, float],
    x_ticks: Sequence[float],
    diagonal: bool = False,
) -> XYChart:
    """Points joined by a line on a y axis from 0 to 1, each with its interval whisker; the
    diagonal y = x when asked (a calibrated judge's points lie on it)."""
    left, plot_w, plot_h = 56, 360, 240
    x0, x1 = x_range
    span = (x1 - x0) or 1.0

    def px(v: float) -> float:
        return round(left + (v - x0) / span * plot_w, 1)

    def py(v: float) -> float:
        return round(TOP + (1 - max(0.0, min(1.0, v))) * plot_h, 1)

    biggest = max((p.n for p in points), default=0) or 1
    markers = tuple(
        Marker(
            px(p.x),
            py(p.y),
            round(3 + 6 * (p.n / biggest) ** 0.5, 1) if p.n else 4.0,
            (py(p.ci.low), py(p.ci.high)) if p.ci else None,
            p.tip,
        )
        for p in points
    )
    return XYChart(
        chart_id,
        title,
        left + plot_w + 30,
        TOP + plot_h + 50,
        left,
        TOP,
        plot_w,
        plot_h,
        tuple(Tick(px(t), f"{t:g}") for t in x_ticks),
        tuple(Tick(py(t), f"{t:g}") for t in (0, 0.25, 0.5, 0.75, 1)),
        markers,
        " ".join(f"{m.x},{m.y}" for m in markers) if len(markers) > 1 else "",
        (px(x0), py(x0), px(x1), py(x1)) if diagonal else None,
        x_label,
        y_label,
    )


@dataclass(frozen=True, slots=True)
class Dot:
    name: str
    value: float | None
    ci: Interval | None
    # a second value drawn as a tick on the same row (the dataset's own rate)
    reference: float | None = None
    n: int = 0


@dataclass(frozen=True, slots=True)
class DotRow:
    name: str
    mid: float
    x: float | None
    ci: tuple[float, float] | None
    ref_x: float | None
    tip: str


@dataclass(frozen=True, slots=True)
class DotChart:
    chart_id: str
    title: str
    width: int
    height: int
    label_w: int
    bottom: int
    ticks: tuple[Tick, ...]
    rows: tuple[DotRow, ...]
    legend: str
    bars_top: int = TOP


def dot_chart(rows: Sequence[Dot], *, chart_id: str, title: str, legend: str) -> DotChart:
    """One row per name on a 0–1 axis: the estimate as a dot with its interval, the reference
    as a dark tick."""
    label_w = max(160, min(330, 24 + 7 * max((len(r.name) for r in rows), default=10)))
    plot_w, row_h = 400, 22

    def x(v: float) -> float:
        return round(label_w + max(0.0, min(1.0, v)) * plot_w, 1)

    out = []
    for i, r in enumerate(rows):
        ci = f" [{r.ci.low:.3f}, {r.ci.high:.3f}]" if r.ci else ""
        out.append(
            DotRow(
                r.name,
                TOP + i * row_h + row_h / 2,
                x(r.value) if r.value is not None else None,
                (x(r.ci.low), x(r.ci.high)) if r.ci else None,
                x(r.reference) if r.reference is not None else None,
                f"{r.name}: {r.value:.3f}{ci}, n={r.n}" if r.value is not None else r.name,
            )
        )
    bottom = TOP + row_h * len(rows)
    return DotChart(
        chart_id,
        title,
        label_w + plot_w + 90,
        bottom + 44,
        label_w,
        bottom,
        tuple(Tick(x(t), f"{t:g}") for t in (0, 0.25, 0.5, 0.75, 1)),
        tuple(out),
        legend,
    )
