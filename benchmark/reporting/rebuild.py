"""`rmb report RUN`: a run's reports rebuilt from its comparisons.jsonl and the cache alone,
its raw answers read again with the run's parser (a better parser re-scores old runs with no
new calls)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmark.analysis.facts import item_facts
from benchmark.analysis.run import analyse_run
from benchmark.data import Item, Selection, load, outline, return_freed_memory
from benchmark.data.fetch import default_data_source
from benchmark.results import JudgedComparison, read_answers
from benchmark.rundir import (
    COMPARISONS_FILE,
    cache_dir_of,
    read_judged,
    read_manifest,
    recorded_source,
)
from benchmark.scoring import Scores, score
from judges.base import Completion
from judges.cache import CACHE_FILE, CacheStore
from judges.errors import UserError

from .report import REPORT_FILES, write_reports


@dataclass
class Rebuilt:
    scores: Scores
    paths: list[Path]
    # comparisons re-read from the cache with the current parser, and how many verdicts changed
    reparsed: int = 0
    changed: int = 0
    # comparisons whose raw answer is not in the cache (their stored verdict is kept)
    not_in_cache: int = 0


def _selection_of(manifest: Mapping[str, Any]) -> Selection | None:
    raw = manifest.get("selection")
    if not isinstance(raw, dict):
        return None
    fields: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v
        for k, v in raw.items()
        if k in Selection.__dataclass_fields__
    }
    try:
        return Selection(**fields)
    except TypeError:
        return None


def run_source(manifest: Mapping[str, Any], data: Path | None) -> Path:
    """The dataset to score a run against: `data`, else the one the run read, else the default
    (`--data`, `$RMB_DATA`, a fetched copy)."""
    source = data or recorded_source(manifest)
    if source is not None:
        return source
    try:
        return default_data_source()
    except UserError as e:
        raise UserError(f"the run's dataset is not available ({e}); pass --data") from None


def items_of_run(
    manifest: Mapping[str, Any], judged: Sequence[JudgedComparison], source: Path
) -> list[Item]:
    """The run's items in `source`: under the run's selection; without a selection, the items
    its comparisons name."""
    items = load(source)
    selection = _selection_of(manifest)
    if selection is not None:
        return selection.apply(items)
    named = {j.comparison.item_uid for j in judged}
    return [it for it in items if it.uid in named]


def reparse(
    judged: Sequence[JudgedComparison], parser: str, answers: Iterable[tuple[str, Completion]]
) -> tuple[list[JudgedComparison], int, int]:
    """Read the cached raw answers (`answers`: key, completion pairs, e.g. streamed from the
    cache) again with `parser`: a better parser re-scores old runs with no new calls. Returns
    the lines, how many were re-read and how many changed; a line whose answer is not among
    `answers` keeps its verdict."""
    shown = {j.key: len(j.comparison.shown) for j in judged}
    try:
        verdicts = {key: v for key, v, _ in read_answers(parser, answers, shown.__getitem__)}
    except KeyError as e:
        raise UserError(f"the run's parser cannot be used: {e.args[0]}") from None
    out, read, changed = [], 0, 0
    for j in judged:
        verdict = verdicts.get(j.key)
        if verdict is None:
            out.append(j)
            continue
        read += 1
        changed += verdict != j.verdict
        out.append(replace(j, verdict=verdict))
    return out, read, changed


def judge_model(manifest: Mapping[str, Any]) -> str | None:
    """The judge's model, for self-preference; None for a jury (no one family)."""
    if manifest.get("jury"):
        return None
    identity = manifest.get("judge_identity")
    model = identity.get("model") if isinstance(identity, dict) else None
    return str(model or manifest.get("judge") or "") or None


def rebuild(
    run_dir: Path,
    *,
    data: Path | None = None,
    cache_dir: Path | None = None,
    ties: str | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    reparse_answers: bool = True,
) -> Rebuilt:
    """`rmb report RUN`: score a run again from its comparisons.jsonl and the cache alone."""
    run_dir = Path(run_dir)
    if not (run_dir / COMPARISONS_FILE).is_file():
        raise UserError(f"{run_dir}: not a run directory (no {COMPARISONS_FILE})")
    manifest = read_manifest(run_dir)
    judged = read_judged(run_dir)
    source = run_source(manifest, data)
    # scoring needs no text (the analyses only the answers' lengths and writers, `facts`); the
    # report's few examples read theirs again from `source`
    full = items_of_run(manifest, judged, source)
    facts = item_facts(full)
    items = outline(full)
    del full
    return_freed_memory()
    cache = cache_dir or cache_dir_of(manifest)
    read = changed = 0
    missing = len(judged)
    parser = (manifest.get("template") or {}).get("parser")
    # read-only: a report never creates a cache, and reads one it may not write
    if cache is not None and (cache / CACHE_FILE).is_file():
        with CacheStore(cache, read_only=True) as store:
            keys = (j.key for j in judged)
            if reparse_answers and parser:
                # streamed: a full run's 31k answers are never held at once; a line not re-read
                # has no answer in the cache
                judged, read, changed = reparse(judged, str(parser), store.stream(keys))
                missing = len(judged) - read
            else:
                in_cache = store.present(keys)
                missing = sum(1 for j in judged if j.key not in in_cache)
    rule = ties or str(manifest.get("ties") or "strict")
    scores = score(items, judged, ties=rule, bootstrap=bootstrap, seed=seed)  # type: ignore[arg-type]
    analysis = analyse_run(
        items, facts, judged, scores, judge=judge_model(manifest), bootstrap=bootstrap, seed=seed
    )
    paths = write_reports(
        run_dir,
        scores,
        manifest=manifest,
        judged=judged,
        cache_dir=cache,
        data=source,
        analysis=analysis,
    )
    return Rebuilt(scores, paths, read, changed, missing)


def ensure_reports(runs: Sequence[Path]) -> None:
    """`rmb compare` reads runs' report.json: a run without one gets it, from the cache."""
    for run in runs:
        if run.is_dir() and not (run / REPORT_FILES[0]).is_file():
            rebuild(run)
