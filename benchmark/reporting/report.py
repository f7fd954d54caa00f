"""Reports written: `report.json` (everything), `report.md` (the paper's table first) and
`report.html` of a run; `compare.json/md/html` of runs compared. The last step of the flow:
scores and comparisons are computed (benchmark.scoring, compare.py), put in words (facts.py),
laid out (markdown.py, html.py), and written here, each file atomically."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from benchmark.analysis.run import RunAnalysis
from benchmark.data import Item
from benchmark.files import write_atomic
from benchmark.results import JudgedComparison
from benchmark.rundir import (
    COMPARISONS_FILE,
    cache_dir_of,
    read_judged,
    read_manifest,
    recorded_source,
)
from benchmark.scoring import ItemResult, Scores
from judges.base import Completion
from judges.errors import UserError

from .analysis import analysis_sections
from .compare import CompareResult
from .examples import collect_examples, example_items, items_by_uid, prompt_renderer
from .facts import run_label
from .html import render_compare_html, render_html
from .markdown import compare_markdown, markdown

REPORT_FILES = ("report.json", "report.md", "report.html")
COMPARE_FILES = ("compare.json", "compare.md", "compare.html")


def report_dict(
    scores: Scores,
    manifest: Mapping[str, Any] | None = None,
    analysis: RunAnalysis | None = None,
) -> dict[str, Any]:
    """report.json's content (docs/report-json.md)."""
    return {
        "label": run_label(manifest),
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "manifest": dict(manifest or {}),
        **scores.to_dict(items=False),
        "analysis": analysis.to_dict() if analysis is not None else None,
        # a row per item, made as json_chunks writes it
        "items": map(ItemResult.to_dict, scores.items),
    }


def json_chunks(data: Mapping[str, Any], one_per_line: str = "items") -> Iterator[str]:
    """Indented JSON, except that the records of the `one_per_line` list take one line each
    (the full RMB has 18k items: indenting their fields would triple the file). Given as chunks,
    and those records may come from an iterator: the 18k lines are never held at once."""
    rest = {k: v for k, v in data.items() if k != one_per_line}
    text = orjson.dumps(rest, option=orjson.OPT_INDENT_2, default=str).decode()
    if one_per_line not in data:
        yield text + "\n"
        return
    head = text[: text.rstrip().rfind("}")].rstrip()
    yield head + (",\n" if rest else "\n") + f'  "{one_per_line}": ['
    sep = "\n    "
    for r in data[one_per_line]:
        yield sep + orjson.dumps(r, default=str).decode()
        sep = ",\n    "
    yield "\n  ]\n}\n"


def write_reports(
    run_dir: Path,
    scores: Scores,
    *,
    manifest: Mapping[str, Any] | None = None,
    items: Iterable[Item] | None = None,
    judged: Sequence[JudgedComparison] | None = None,
    completions: Mapping[str, Completion] | None = None,
    cache_dir: Path | None = None,
    data: Path | None = None,
    analysis: RunAnalysis | None = None,
) -> list[Path]:
    """Write report.json, report.md and report.html into `run_dir`; return their paths.

    What is not passed is read from the run directory: the manifest, comparisons.jsonl, and
    (for the HTML's worked examples) the judge's raw answers from `cache_dir`, else from the
    run's cache. Items with texts are needed only for the examples: without `items`, those few
    are read again from `data`, else from the run's dataset (only the files that hold them);
    without either, examples show the judge's answers but not the conversation."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if manifest is None:
        manifest = read_manifest(run_dir)
    if judged is None and (run_dir / COMPARISONS_FILE).is_file():
        judged = read_judged(run_dir)
    examples = collect_examples(
        scores,
        judged or (),
        items=functools.partial(items_by_uid, items)
        if items is not None
        else functools.partial(example_items, data or recorded_source(manifest)),
        completions=completions,
        cache_dir=cache_dir or cache_dir_of(manifest),
        render=prompt_renderer(manifest),
    )
    sections = analysis_sections(analysis) if analysis is not None else []
    paths = [run_dir / name for name in REPORT_FILES]
    try:
        write_atomic(paths[0], json_chunks(report_dict(scores, manifest, analysis)))
        write_atomic(paths[1], markdown(scores, manifest, sections))
        write_atomic(paths[2], render_html(scores, manifest, examples, sections))
    except UserError as e:  # a full disk: nothing computed is lost, the answers are cached
        raise UserError(
            f"{e}; the judge's answers are in the cache, so `rmb report {run_dir}` writes the "
            "reports again once that is fixed"
        ) from None
    return paths


def write_comparison(out_dir: Path, result: CompareResult) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / name for name in COMPARE_FILES]
    write_atomic(paths[0], json.dumps(result.to_dict(), indent=1, ensure_ascii=False) + "\n")
    write_atomic(paths[1], compare_markdown(result))
    write_atomic(paths[2], render_compare_html(result))
    return paths
