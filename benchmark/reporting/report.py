"""Scores out: `report.json` (everything), `report.md` (the paper's table first) and
`report.html` (see report_html.py) in a run directory."""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from benchmark.data import Item, Selection, outline, return_freed_memory
from benchmark.data.fetch import default_data_source
from benchmark.results import JudgedComparison
from benchmark.rundir import COMPARISONS_FILE, MANIFEST_FILE, write_atomic
from benchmark.scoring.items import SUBSET_NAMES, GroupScore, ItemResult, Scores
from benchmark.scoring.stats import Interval
from judges.base import Completion
from prompts.parsers import Verdict

log = logging.getLogger(__name__)

REPORT_FILES = ("report.json", "report.md", "report.html")


# ---------------------------------------------------------------- formatting


def fmt_acc(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def fmt_ci(ci: Interval | None) -> str:
    return "–" if ci is None else f"[{ci.low:.3f}, {ci.high:.3f}]"


def fmt_pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def fmt_cost(x: float) -> str:
    return f"${x:.4f}" if x < 1 else f"${x:,.2f}"


def acc_with_ci(g: GroupScore | None) -> str:
    if g is None or g.accuracy is None:
        return "–"
    return f"{fmt_acc(g.accuracy)} {fmt_ci(g.ci)}" if g.ci else fmt_acc(g.accuracy)


def run_label(manifest: Mapping[str, Any] | None) -> str:
    """'judge × template', the row name of a run in every table."""
    m = manifest or {}
    judge = m.get("judge") or "judge"
    template = (
        (m.get("template") or {}).get("name") if isinstance(m.get("template"), dict) else None
    )
    return f"{judge} × {template}" if template else str(judge)


def _md_cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(header: Sequence[str], rows: Iterable[Sequence[object]], right_from: int = 1) -> str:
    align = ["---" if i < right_from else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------- report.md


def paper_row(scores: Scores) -> list[str]:
    """The RMB table's cells: the four subsets (micro accuracy and interval) and Overall."""
    return [acc_with_ci(scores.subsets.get(n)) for n in SUBSET_NAMES] + [
        acc_with_ci(scores.overall)
    ]


def _group_row(g: GroupScore) -> list[object]:
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
        fmt_cost(g.cost_usd),
        g.cached,
    ]


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


SHORT_HEADER = ["Items", "Accuracy", "95% CI", "Consistency", "Ties", "Invalid"]


def run_facts(scores: Scores, manifest: Mapping[str, Any] | None) -> list[str]:
    m = manifest or {}
    plan = m.get("plan") or {}
    data = m.get("data") or {}
    raw_template = m.get("template")
    template: dict[str, Any] = raw_template if isinstance(raw_template, dict) else {}
    facts = []
    if m.get("run_id"):
        facts.append(f"- Run: `{m['run_id']}` ({m.get('status', 'unknown status')})")
    if m.get("judge"):
        facts.append(
            f"- Judge: `{m['judge']}`"
            + (f"; template: `{template['name']}`" if template.get("name") else "")
            + (f" (parser `{template['parser']}`)" if template.get("parser") else "")
        )
    facts += [
        f"- Items scored: {scores.overall.items:,}"
        + (f" of {data['items']:,} selected" if isinstance(data.get("items"), int) else ""),
        f"- Ties: `{scores.ties}`"
        + "".join(
            f"; {label}: `{plan[key]}`"
            for key, label in (
                ("orders", "orders"),
                ("bon_strategy", "BoN strategy"),
                ("samples", "samples"),
            )
            if key in plan
        ),
        f"- Intervals: 95% percentile bootstrap over items, {scores.bootstrap:,} resamples, "
        f"seed {scores.seed}",
    ]
    if scores.missing_subsets:
        facts.append(
            f"- Not in this run: {', '.join(scores.missing_subsets)} "
            "(Overall is the mean of the subsets present)"
        )
    counts = m.get("counts") or {}
    if isinstance(counts.get("sent"), int):
        facts.append(
            f"- Requests: {counts.get('requests', 0):,} distinct, {counts.get('cache_hits', 0):,} "
            f"from the cache, {counts['sent']:,} sent, {counts.get('retries', 0):,} retries, "
            f"{counts.get('failed', 0):,} failed"
        )
    unjudged = sum(scores.unjudged.values())
    if unjudged:
        facts.append(f"- **{unjudged:,} selected items have no judged comparison yet** (left out)")
    if scores.unknown_comparisons:
        facts.append(
            f"- **{scores.unknown_comparisons:,} comparisons name items not in the dataset** "
            "(ignored; was the dataset changed?)"
        )
    return facts


def markdown(scores: Scores, manifest: Mapping[str, Any] | None = None) -> str:
    label = run_label(manifest)
    o = scores.overall
    parts = [
        f"# RMB report: {label}",
        "",
        md_table(["Judge × template", *SUBSET_NAMES, "Overall"], [[label, *paper_row(scores)]]),
        "",
        "Accuracy is micro over items with its 95% bootstrap interval; Overall is the mean of "
        "the subsets.",
        "",
        *run_facts(scores, manifest),
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
            [_group_row(g) for g in scores.subsets.values()] + [_group_row(o)],
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
    parts += ["## Scenarios", ""]
    parts.append(
        md_table(
            ["Scenario", *SHORT_HEADER], [_short_row(g, k) for k, g in scores.scenarios.items()]
        )
    )
    parts.append("")
    return "\n".join(parts)


# ---------------------------------------------------------------- report.json


def report_dict(scores: Scores, manifest: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {
        "label": run_label(manifest),
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "manifest": dict(manifest or {}),
        **scores.to_dict(items=False),
        # a row per item, made as json_chunks writes it
        "items": map(ItemResult.to_dict, scores.items),
    }


# ---------------------------------------------------------------- run directory


def read_manifest(run_dir: Path) -> dict[str, Any]:
    path = run_dir / MANIFEST_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        log.warning("%s: unreadable (%s); the report goes without it", path, e)
        return {}
    return data if isinstance(data, dict) else {}


def read_judged(run_dir: Path) -> list[JudgedComparison]:
    """comparisons.jsonl; a bad line is an error naming the file and line."""
    from judges.errors import UserError

    path = run_dir / COMPARISONS_FILE
    out = []
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise UserError(f"{path}: cannot read: {e.strerror or e}") from None
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(JudgedComparison.from_json(line))
        except (ValueError, KeyError, TypeError) as e:
            raise UserError(f"{path}: line {i}: not a judged comparison ({e})") from None
    return out


def cache_dir_of(manifest: Mapping[str, Any]) -> Path | None:
    """The cache directory a run used (the manifest may name the SQLite file inside it)."""
    raw = manifest.get("cache")
    if not raw:
        return None
    p = Path(str(raw))
    if p.is_dir():
        return p
    return p.parent if p.parent.is_dir() and p.suffix else None


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


def _items_by_uid(items: Iterable[Item], wanted: Sequence[ItemResult]) -> dict[str, Item]:
    uids = {r.uid for r in wanted}
    return {it.uid: it for it in items if it.uid in uids}


def recorded_source(manifest: Mapping[str, Any]) -> Path | None:
    """The dataset a run read, if it is still there."""
    recorded = (manifest.get("data") or {}).get("source")
    return Path(str(recorded)) if recorded and Path(str(recorded)).exists() else None


def example_items(source: Path | None, wanted: Sequence[ItemResult]) -> dict[str, Item]:
    """The `wanted` items read again from the dataset at `source`, parsing only the file where
    each one's category lives (a run drops its texts once it has its answers: `data.outline`)."""
    from benchmark.data import dataset_root, load
    from judges.errors import UserError

    if not wanted or source is None or not source.exists():
        return {}
    files = {source}
    if source.is_dir():
        root = dataset_root(source)
        files = {root / f"{r.category.path}.json" for r in wanted}
    out: dict[str, Item] = {}
    try:
        for f in sorted(files):
            if f.is_file():
                out.update(_items_by_uid(load(f), wanted))
    except UserError as e:  # the dataset changed since the run: examples go without texts
        log.warning("examples go without the conversations: %s", e)
    return out


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
) -> list[Path]:
    """Write report.json, report.md and report.html into `run_dir`; return their paths.

    What is not passed is read from the run directory: the manifest, comparisons.jsonl, and
    (for the HTML's worked examples) the judge's raw answers from `cache_dir`, else from the
    run's cache. Items with texts are needed only for the examples: without `items`, those few
    are read again from `data`, else from the run's dataset (only the files that hold them);
    without either, examples show the judge's answers but not the conversation."""
    from benchmark.reporting.html import collect_examples, prompt_renderer, render_html

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if manifest is None:
        manifest = read_manifest(run_dir)
    if judged is None and (run_dir / COMPARISONS_FILE).is_file():
        judged = read_judged(run_dir)
    examples = collect_examples(
        scores,
        judged or (),
        items=functools.partial(_items_by_uid, items)
        if items is not None
        else functools.partial(example_items, data or recorded_source(manifest)),
        completions=completions,
        cache_dir=cache_dir or cache_dir_of(manifest),
        render=prompt_renderer(manifest),
    )
    paths = [run_dir / name for name in REPORT_FILES]
    write_atomic(paths[0], json_chunks(report_dict(scores, manifest)))
    write_atomic(paths[1], markdown(scores, manifest))
    write_atomic(paths[2], render_html(scores, manifest, examples))
    return paths


# ---------------------------------------------------------------- rebuilding a run's reports


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
    from judges.errors import UserError

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
    from benchmark.data import load

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
    from judges.errors import UserError
    from prompts.parsers import parse

    shown = {j.key: len(j.comparison.shown) for j in judged}
    verdicts: dict[str, Verdict] = {}
    shared: dict[Verdict, Verdict] = {}  # one object per distinct verdict, as in a run
    for key, c in answers:
        try:
            v = parse(parser, c, shown[key])
        except KeyError as e:
            raise UserError(f"the run's parser cannot be used: {e.args[0]}") from None
        verdicts[key] = shared.setdefault(v, v)
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
    from benchmark.scoring.items import score
    from judges.errors import UserError

    run_dir = Path(run_dir)
    if not (run_dir / COMPARISONS_FILE).is_file():
        raise UserError(f"{run_dir}: not a run directory (no {COMPARISONS_FILE})")
    manifest = read_manifest(run_dir)
    judged = read_judged(run_dir)
    source = run_source(manifest, data)
    # scoring needs no text; the report's few examples read theirs again from `source`
    items = outline(items_of_run(manifest, judged, source))
    return_freed_memory()
    cache = cache_dir or cache_dir_of(manifest)
    read = changed = 0
    missing = len(judged)
    parser = (manifest.get("template") or {}).get("parser")
    if cache is not None and cache.is_dir():
        from judges.cache import CacheStore

        with CacheStore(cache) as store:
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
    paths = write_reports(
        run_dir, scores, manifest=manifest, judged=judged, cache_dir=cache, data=source
    )
    return Rebuilt(scores, paths, read, changed, missing)
