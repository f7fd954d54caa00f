"""`rmb cache stats|export|prune|check`: look after the answer cache."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

from judges.cache import CACHE_FILE, CacheError, CacheStore, default_cache_dir
from judges.errors import UserError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> float:
    """'30d', '12h', '90m', '45s', '2w' -> seconds. The unit is required: a bare `30` meant
    seconds and deleted nearly everything."""
    m = re.fullmatch(r"\s*(\d{1,6}(?:\.\d+)?)\s*([smhdw])\s*", text)
    if not m:
        raise UserError(
            f"--older-than: expected a number and a unit (s, m, h, d or w), like 30d or 12h; "
            f"got {text!r}"
        )
    return float(m.group(1)) * _UNITS[m.group(2)]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cache", help="inspect, export, prune or check the answer cache")
    csub = p.add_subparsers(dest="cache_command", required=True, metavar="ACTION")

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        c = csub.add_parser(name, help=help_)
        c.add_argument(
            "--cache-dir", type=Path, metavar="DIR", help="default: $RMB_CACHE_DIR or ./cache"
        )
        return c

    add("stats", "entries, size and answers per judge").set_defaults(func=cmd_stats)
    ex = add("export", "every cached answer as JSON lines")
    ex.add_argument(
        "--judge", metavar="LABEL", help="only this judge (a label from `rmb cache stats`)"
    )
    ex.add_argument("-o", "--output", type=Path, metavar="FILE", help="default: standard output")
    ex.set_defaults(func=cmd_export)
    pr = add("prune", "delete answers of one judge and/or older than an age")
    pr.add_argument("--judge", metavar="LABEL", help="a judge label from `rmb cache stats`")
    pr.add_argument("--older-than", metavar="AGE", help="an age with its unit: 30d, 12h, 90m")
    pr.add_argument(
        "--dry-run", action="store_true", help="say how many answers would go; delete nothing"
    )
    pr.set_defaults(func=cmd_prune)
    add("check", "verify the cache file (SQLite integrity and every stored answer)").set_defaults(
        func=cmd_check
    )


def _store(args: argparse.Namespace, *, read_only: bool = True) -> CacheStore:

    directory = args.cache_dir or default_cache_dir()
    if not (directory / CACHE_FILE).exists():
        raise UserError(f"{directory}: no cache here yet (a run creates it); pass --cache-dir DIR")
    return CacheStore(directory, read_only=read_only)


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def cmd_stats(args: argparse.Namespace) -> int:
    with _store(args) as store:
        s = store.stats()
    print(f"{s.path}: {s.entries:,} answers, {s.size_bytes / 1e6:.1f} MB")
    for judge, (n, lo, hi) in s.per_judge.items():
        print(f"  {n:>9,}  {judge}  ({_when(lo)} .. {_when(hi)})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    with _store(args) as store:
        if args.output is None:
            n = store.export(sys.stdout, judge=args.judge)
        else:
            n = _export_to(store, args.output, args.judge)
    print(f"exported {n:,} answers", file=sys.stderr)
    return 0


def _export_to(store: CacheStore, path: Path, judge: str | None) -> int:
    """Write the export next to `path` and rename it into place: a failure (bad path, full
    disk) is one line and leaves no partial file behind."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            n = store.export(fh, judge=judge)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UserError(f"--output {path}: cannot write the export: {e.strerror or e}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return n


def cmd_prune(args: argparse.Namespace) -> int:
    if args.judge is None and args.older_than is None:
        raise UserError(
            "rmb cache prune: say what to delete with --judge LABEL and/or --older-than AGE"
        )
    age = parse_age(args.older_than) if args.older_than is not None else None
    with _store(args, read_only=args.dry_run) as store:
        n = store.prune(judge=args.judge, older_than_s=age, dry_run=args.dry_run)
    print(f"would delete {n:,} answers (dry run)" if args.dry_run else f"deleted {n:,} answers")
    return 0


def cmd_check(args: argparse.Namespace) -> int:

    try:
        store = _store(args)
    except CacheError as e:
        print(f"rmb: cache check: {e}", file=sys.stderr)
        return 2
    with store:
        problems = store.check()
        entries = store.stats().entries
    if problems:
        for p in problems[:50]:
            print(p)
        print(
            f"{store.path}: {len(problems)} problem(s); move the file aside to start a new cache, "
            "or export what still reads with `rmb cache export`",
            file=sys.stderr,
        )
        return 1
    print(f"{store.path}: ok, {entries:,} answers")
    return 0
