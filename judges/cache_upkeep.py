"""What `rmb cache` does to a whole cache (`judges.cache.CacheStore`): count, export, prune and
check its stored answers. Each takes the open connection; the store holds its lock around them
and turns SQLite's errors into one-line `CacheError`s."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .base import Completion
from .cache_db import loads


@dataclass(frozen=True, slots=True)
class CacheStats:
    path: Path
    entries: int
    size_bytes: int
    # judge label -> (entries, oldest created_at, newest created_at)
    per_judge: dict[str, tuple[int, float, float]] = field(default_factory=dict)


def per_judge(db: sqlite3.Connection) -> dict[str, tuple[int, float, float]]:
    rows = db.execute(
        "SELECT judge, COUNT(*), MIN(created_at), MAX(created_at) FROM completions "
        "GROUP BY judge ORDER BY judge"
    ).fetchall()
    return {j: (n, lo, hi) for j, n, lo, hi in rows}


def export(db: sqlite3.Connection, fh: IO[str], judge: str | None) -> int:
    """Every entry as one JSON line; returns the number of lines written."""
    sql = "SELECT key, judge, provider, model, base_url, created_at, completion FROM completions"
    args: tuple[Any, ...] = ()
    if judge is not None:
        sql += " WHERE judge = ?"
        args = (judge,)
    n = 0
    for key, j, prov, model, url, created, raw in db.execute(sql + " ORDER BY created_at", args):
        fh.write(
            json.dumps(
                {
                    "key": key,
                    "judge": j,
                    "provider": prov,
                    "model": model,
                    "base_url": url,
                    "created_at": created,
                    "completion": json.loads(raw),
                },
                ensure_ascii=False,
            )
            + "\n"
        )
        n += 1
    return n


def prune_where(judge: str | None, older_than_s: float | None) -> tuple[str, list[Any]]:
    """The WHERE clause (and its arguments) selecting what `prune` deletes; '' for nothing."""
    where: list[str] = []
    args: list[Any] = []
    if judge is not None:
        where.append("judge = ?")
        args.append(judge)
    if older_than_s is not None:
        where.append("created_at < ?")
        args.append(time.time() - older_than_s)
    return " AND ".join(where), args


def check(db: sqlite3.Connection) -> list[str]:
    """Problems found by SQLite's integrity check and by decoding every stored completion."""
    problems: list[str] = []
    res = [r[0] for r in db.execute("PRAGMA integrity_check").fetchall()]
    if res != ["ok"]:
        problems += [f"sqlite: {r}" for r in res]
    for key, raw in db.execute("SELECT key, completion FROM completions"):
        try:
            Completion.from_dict(loads(raw))
        except (ValueError, KeyError, TypeError) as e:
            problems.append(f"entry {key}: completion does not decode ({e})")
    return problems
