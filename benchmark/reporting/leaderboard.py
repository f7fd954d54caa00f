"""`rmb leaderboard`: every run of a runs directory side by side, as leaderboard.md and one
self-contained leaderboard.html whose columns sort on a click (a few lines of inline script;
nothing is fetched). Runs over different items are separate tables, never ranked together."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from benchmark.reporting.board import BoardGroup, BoardRow, Cell, leaderboard
from benchmark.scoring.items import SUBSET_NAMES
from judges.errors import UserError

log = logging.getLogger(__name__)

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


def read_reports(runs_dir: Path) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """Every run directory's report.json (rebuilt from the cache first where a run has only its
    comparisons); a directory that cannot be read is skipped with a warning."""
    from benchmark.reporting.report import COMPARISONS_FILE, rebuild

    if not runs_dir.is_dir():
        raise UserError(f"{runs_dir}: no such runs directory")
    reports, warnings = [], []
    for run in sorted(p for p in runs_dir.iterdir() if p.is_dir()):
        path = run / "report.json"
        try:
            if not path.is_file():
                if not (run / COMPARISONS_FILE).is_file():
                    continue
                rebuild(run)
            reports.append((run.name, json.loads(path.read_text())))
        except (OSError, ValueError, UserError) as e:
            warnings.append(f"{run}: skipped ({e})")
    if not reports:
        raise UserError(f"{runs_dir}: no run directory with a report or comparisons in it")
    return reports, warnings


def _acc(c: Cell) -> str:
    if c.accuracy is None:
        return "–"
    return f"{c.accuracy:.3f}" + (f" [{c.ci.low:.3f}, {c.ci.high:.3f}]" if c.ci else "")


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _cells(rank: int, r: BoardRow) -> list[str]:
    return [
        str(rank),
        r.judge,
        r.template,
        r.plan,
        *(_acc(r.subsets[n]) for n in SUBSET_NAMES),
        _acc(r.overall),
        _pct(r.consistency),
        _pct(r.invalid_rate),
        f"${r.cost_usd:,.4f}",
        f"{r.items:,}",
        r.date[:10],
        r.run,
    ]


def board_markdown(groups: Sequence[BoardGroup]) -> str:
    from benchmark.reporting.report import md_table

    out = [
        "# RMB leaderboard",
        "",
        "Runs over the same items, ranked by Overall (the mean of the four subsets); accuracy "
        "with its 95% bootstrap interval. Runs over different items are in separate tables and "
        "never ranked together.",
    ]
    for g in groups:
        out += [
            "",
            f"## {g.description} · data {g.data[:12]}",
            "",
            md_table(HEADER, [_cells(i, r) for i, r in enumerate(g.rows, 1)], right_from=4),
        ]
    return "\n".join(out) + "\n"


# sort keys per column: numbers where the column is one, the text otherwise
def _sort_keys(rank: int, r: BoardRow) -> list[str]:
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


_NUMERIC = {0, *range(4, 4 + len(SUBSET_NAMES) + 5)}

_SCRIPT = """
document.querySelectorAll('table.board').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, col) {
    th.addEventListener('click', function () {
      var body = table.tBodies[0], rows = Array.from(body.rows);
      var numeric = th.dataset.type === 'num';
      var dir = th.dataset.dir === 'desc' ? 'asc' : 'desc';
      table.querySelectorAll('th').forEach(function (h) { delete h.dataset.dir; });
      th.dataset.dir = dir;
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.sort, y = b.cells[col].dataset.sort;
        if (numeric) {
          x = x === '' ? -Infinity : parseFloat(x); y = y === '' ? -Infinity : parseFloat(y);
          return dir === 'asc' ? x - y : y - x;
        }
        return dir === 'asc' ? x.localeCompare(y) : y.localeCompare(x);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; color: #1d1f23; margin: 0 auto; padding: 24px;
  max-width: 1500px; }
h1 { font-size: 22px; } h2 { font-size: 16px; margin-top: 28px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: 5px 7px; text-align: right; white-space: nowrap; }
th { background: #f5f6f8; cursor: pointer; user-select: none; }
th[data-dir=asc]::after { content: " ▲"; } th[data-dir=desc]::after { content: " ▼"; }
td:nth-child(2), td:nth-child(3), td:nth-child(4), td:last-child { text-align: left; }
td.overall { font-weight: 600; }
.ci { color: #666; font-size: 12px; }
"""


def _html_cell(text: str, key: str, col: int) -> str:
    cls = ' class="overall"' if HEADER[col] == "Overall" else ""
    if " [" in text:  # an accuracy and its interval
        acc, ci = text.split(" ", 1)
        body = f'{escape(acc)} <span class="ci">{escape(ci)}</span>'
    else:
        body = escape(text)
    return f'<td{cls} data-sort="{escape(key)}">{body}</td>'


def board_html(groups: Sequence[BoardGroup]) -> str:
    head = "".join(
        f'<th data-type="{"num" if i in _NUMERIC else "text"}">{escape(h)}</th>'
        for i, h in enumerate(HEADER)
    )
    tables = []
    for gi, g in enumerate(groups, 1):
        rows = "".join(
            "<tr>"
            + "".join(
                _html_cell(text, key, col)
                for col, (text, key) in enumerate(zip(_cells(i, r), _sort_keys(i, r), strict=True))
            )
            + "</tr>"
            for i, r in enumerate(g.rows, 1)
        )
        tables.append(
            f"<h2>{escape(g.description)} · data {escape(g.data[:12])}</h2>"
            f'<div class="scroll"><table class="board" id="board-{gi}"><thead><tr>{head}</tr>'
            f"</thead><tbody>{rows}</tbody></table></div>"
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>RMB leaderboard</title><style>{_CSS}</style></head><body>"
        "<h1>RMB leaderboard</h1><p>Runs over the same items, ranked by Overall (the mean of the "
        "four subsets), with 95% bootstrap intervals. Click a column to sort by it. Runs over "
        "different items are in separate tables, never ranked together.</p>"
        + "".join(tables)
        + f"<script>{_SCRIPT}</script></body></html>\n"
    )


def write_leaderboard(runs_dir: Path, out: Path | None = None) -> tuple[list[Path], str, list[str]]:
    """Read every run under `runs_dir`, write leaderboard.json/.md/.html into `out` (default:
    `runs_dir`); returns the paths, the Markdown and the warnings."""
    reports, warnings = read_reports(runs_dir)
    groups = leaderboard(reports)
    out = out or runs_dir
    out.mkdir(parents=True, exist_ok=True)
    md = board_markdown(groups)
    paths = [out / "leaderboard.json", out / "leaderboard.md", out / "leaderboard.html"]
    paths[0].write_text(json.dumps([g.to_dict() for g in groups], indent=1) + "\n")
    paths[1].write_text(md)
    paths[2].write_text(board_html(groups))
    return paths, md, warnings
