"""Inline SVG for the analyses (offline, no scripts): a reliability diagram or an accuracy
curve on x/y axes with interval whiskers, and a dot plot of estimates against a reference
(a generator's win rate under the judge against the dataset's)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from benchmark.scoring.stats import Interval


@dataclass(frozen=True, slots=True)
class Point:
    x: float
    y: float
    ci: Interval | None = None
    # marker area grows with n (reliability bins); 0 draws the default size
    n: int = 0
    tip: str = ""


def _svg_open(chart_id: str, title: str, width: int, height: int) -> str:
    return (
        f'<svg class="chart" id="{escape(chart_id)}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}">'
    )


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
) -> str:
    """Points joined by a line on a y axis from 0 to 1, each with its interval whisker; the
    diagonal y = x when asked (a calibrated judge's points lie on it)."""
    left, top, plot_w, plot_h = 56, 30, 360, 240
    width, height = left + plot_w + 30, top + plot_h + 50
    x0, x1 = x_range
    span = (x1 - x0) or 1.0

    def px(v: float) -> float:
        return left + (v - x0) / span * plot_w

    def py(v: float) -> float:
        return top + (1 - max(0.0, min(1.0, v))) * plot_h

    out = [_svg_open(chart_id, title, width, height)]
    out.append(f'<text class="chart-title" x="{left}" y="18">{escape(title)}</text>')
    for t in (0, 0.25, 0.5, 0.75, 1):
        out.append(
            f'<line class="grid" x1="{left}" y1="{py(t):.1f}" x2="{left + plot_w}" '
            f'y2="{py(t):.1f}"/><text class="tick" x="{left - 6}" y="{py(t) + 4:.1f}" '
            f'text-anchor="end">{t:g}</text>'
        )
    for t in x_ticks:
        out.append(
            f'<text class="tick" x="{px(t):.1f}" y="{top + plot_h + 16}" '
            f'text-anchor="middle">{t:g}</text>'
        )
    if diagonal:
        out.append(
            f'<line class="diagonal" x1="{px(x0):.1f}" y1="{py(x0):.1f}" x2="{px(x1):.1f}" '
            f'y2="{py(x1):.1f}" stroke="#999" stroke-dasharray="4 3"/>'
        )
    if len(points) > 1:
        path = " ".join(f"{px(p.x):.1f},{py(p.y):.1f}" for p in points)
        out.append(f'<polyline class="curve" points="{path}" fill="none" stroke="#3b6fb6"/>')
    biggest = max((p.n for p in points), default=0) or 1
    for p in points:
        x, y = px(p.x), py(p.y)
        if p.ci is not None:
            lo, hi = py(p.ci.low), py(p.ci.high)
            out.append(
                f'<g class="ci"><line x1="{x:.1f}" y1="{lo:.1f}" x2="{x:.1f}" y2="{hi:.1f}"/>'
                f'<line x1="{x - 4:.1f}" y1="{lo:.1f}" x2="{x + 4:.1f}" y2="{lo:.1f}"/>'
                f'<line x1="{x - 4:.1f}" y1="{hi:.1f}" x2="{x + 4:.1f}" y2="{hi:.1f}"/></g>'
            )
        r = 3 + 6 * (p.n / biggest) ** 0.5 if p.n else 4
        out.append(
            f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="#3b6fb6">'
            f"<title>{escape(p.tip)}</title></circle>"
        )
    out.append(
        f'<text class="tick" x="{left + plot_w / 2}" y="{height - 8}" '
        f'text-anchor="middle">{escape(x_label)}</text>'
        f'<text class="tick" x="12" y="{top + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 12 {top + plot_h / 2})">{escape(y_label)}</text></svg>'
    )
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Dot:
    name: str
    value: float | None
    ci: Interval | None
    # a second value drawn as a tick on the same row (the dataset's own rate)
    reference: float | None = None
    n: int = 0


def dot_chart(rows: Sequence[Dot], *, chart_id: str, title: str, legend: str) -> str:
    """One row per name on a 0–1 axis: the estimate as a dot with its interval, the reference
    as a dark tick."""
    label_w = max(160, min(330, 24 + 7 * max((len(r.name) for r in rows), default=10)))
    plot_w, row_h, top = 400, 22, 34
    width, height = label_w + plot_w + 90, top + row_h * len(rows) + 44

    def x(v: float) -> float:
        return label_w + max(0.0, min(1.0, v)) * plot_w

    out = [_svg_open(chart_id, title, width, height)]
    out.append(f'<text class="chart-title" x="{label_w}" y="18">{escape(title)}</text>')
    bottom = top + row_h * len(rows)
    for t in (0, 0.25, 0.5, 0.75, 1):
        out.append(
            f'<line class="grid" x1="{x(t)}" y1="{top - 6}" x2="{x(t)}" y2="{bottom}"/>'
            f'<text class="tick" x="{x(t)}" y="{bottom + 16}" text-anchor="middle">{t:g}</text>'
        )
    for i, r in enumerate(rows):
        mid = top + i * row_h + row_h / 2
        out.append(
            f'<text class="label" x="{label_w - 8}" y="{mid + 4}" text-anchor="end">'
            f"{escape(r.name)}</text>"
        )
        if r.reference is not None:
            out.append(
                f'<line class="reference" x1="{x(r.reference):.1f}" y1="{mid - 7}" '
                f'x2="{x(r.reference):.1f}" y2="{mid + 7}" stroke="#111" stroke-width="3"/>'
            )
        if r.value is None:
            continue
        if r.ci is not None:
            out.append(
                f'<g class="ci"><line x1="{x(r.ci.low):.1f}" y1="{mid}" x2="{x(r.ci.high):.1f}" '
                f'y2="{mid}"/></g>'
            )
        tip = f"{r.name}: {r.value:.3f}" + (f" [{r.ci.low:.3f}, {r.ci.high:.3f}]" if r.ci else "")
        out.append(
            f'<circle class="dot" cx="{x(r.value):.1f}" cy="{mid}" r="5" fill="#c7662b">'
            f"<title>{escape(tip)}, n={r.n}</title></circle>"
        )
    out.append(f'<text class="tick" x="{label_w}" y="{height - 6}">{escape(legend)}</text></svg>')
    return "".join(out)
