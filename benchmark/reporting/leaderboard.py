"""`rmb leaderboard`: every run of a runs directory side by side (board.py ranks them), written
as leaderboard.json, leaderboard.md and one self-contained leaderboard.html whose columns sort on
a click. Runs over different items are separate tables, never ranked together."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmark.rundir import COMPARISONS_FILE, write_atomic
from judges.errors import UserError

from .board import leaderboard
from .html import render_board_html
from .markdown import board_markdown
from .rebuild import rebuild
from .report import REPORT_FILES

BOARD_FILES = ("leaderboard.json", "leaderboard.md", "leaderboard.html")


def read_reports(runs_dir: Path) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """Every run directory's report.json (rebuilt from the cache first where a run has only its
    comparisons); a directory that cannot be read is skipped with a warning."""
    if not runs_dir.is_dir():
        raise UserError(f"{runs_dir}: no such runs directory")
    reports, warnings = [], []
    for run in sorted(p for p in runs_dir.iterdir() if p.is_dir()):
        path = run / REPORT_FILES[0]
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


def write_leaderboard(runs_dir: Path, out: Path | None = None) -> tuple[list[Path], str, list[str]]:
    """Read every run under `runs_dir`, write the leaderboard's files into `out` (default:
    `runs_dir`); returns their paths, the Markdown and the warnings."""
    reports, warnings = read_reports(runs_dir)
    groups = leaderboard(reports)
    out = out or runs_dir
    out.mkdir(parents=True, exist_ok=True)
    md = board_markdown(groups)
    paths = [out / name for name in BOARD_FILES]
    write_atomic(paths[0], json.dumps([g.to_dict() for g in groups], indent=1) + "\n")
    write_atomic(paths[1], md)
    write_atomic(paths[2], render_board_html(groups))
    return paths, md, warnings
