"""The on-disk memory of every judge answer: a content-addressed SQLite store of raw completions.

Key = `judges.base.cache_key(identity, request)` (never an API key). Value = the raw `Completion`
JSON, never a parsed verdict, so a better parser re-scores old runs with no new calls. Only real
answers are stored (`Completion.is_answer`): errors, refusals, empty and cut-off answers are asked
again next time. WAL mode + busy timeout + retry on SQLITE_BUSY let several processes share one
directory; `INSERT OR IGNORE` keeps the first answer when two processes race on the same key."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any, TypeVar

import orjson

from .base import Completion, JudgeIdentity
from .errors import UserError

CACHE_FILE = "completions.sqlite"
SCHEMA_VERSION = 1
_CHUNK = 500  # keys per SELECT ... IN (...): under SQLite's variable limit
_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    key        TEXT PRIMARY KEY,
    judge      TEXT NOT NULL,
    provider   TEXT NOT NULL,
    model      TEXT NOT NULL,
    base_url   TEXT NOT NULL,
    completion TEXT NOT NULL,
    created_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS completions_judge ON completions (judge, created_at);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
"""


def _loads(raw: str) -> Any:
    # orjson reads ~3x faster; json also reads the NaN/Infinity a logprob may hold
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


class CacheError(UserError):
    """The cache file cannot be used as it is."""


def default_cache_dir() -> Path:
    return Path(os.environ.get("RMB_CACHE_DIR") or "cache")


@dataclass(frozen=True, slots=True)
class CacheStats:
    path: Path
    entries: int
    size_bytes: int
    # judge label -> (entries, oldest created_at, newest created_at)
    per_judge: dict[str, tuple[int, float, float]] = field(default_factory=dict)


class CacheStore:
    """One SQLite file under `directory`. Thread-safe (one connection behind a lock), so the
    runner can commit from a worker thread while its event loop keeps sending requests."""

    def __init__(
        self, directory: Path | str | None = None, *, busy_timeout_s: float = 30.0
    ) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.path = self.directory / CACHE_FILE
        self._busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CacheError(
                f"{self.directory}: cannot create the cache directory: {e.strerror or e}"
            ) from None
        self._db = self._connect()

    # ------------------------------------------------------------------ set-up

    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
            db.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_s * 1000)}")
            # switching a new file to WAL takes a lock that busy_timeout does not wait for:
            # a second process creating the same cache at that moment retries, not fails
            mode = self._retry(lambda: db.execute("PRAGMA journal_mode=WAL").fetchone()[0])
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"journal_mode is {mode}, not wal")
            # WAL + NORMAL: a commit survives a killed process (only an OS crash can lose it)
            db.execute("PRAGMA synchronous=NORMAL")
            self._retry(lambda: db.executescript(_SCHEMA))
            row = db.execute("SELECT v FROM meta WHERE k='schema'").fetchone()
            if row is None:
                self._retry(
                    lambda: db.execute(
                        "INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
                    )
                )
            elif int(row[0]) > SCHEMA_VERSION:
                raise CacheError(
                    f"{self.path}: written by a newer rmb-judge (cache schema {row[0]}); upgrade, "
                    "or pass --cache-dir to use another cache"
                )
        except sqlite3.DatabaseError as e:
            raise self._unusable(e) from None
        return db

    def _unusable(self, e: BaseException) -> CacheError:
        return CacheError(
            f"{self.path}: the cache file is unusable ({e}); run `rmb cache check --cache-dir "
            f"{self.directory}` to see what is wrong, delete or move that file to start afresh, or "
            "pass --cache-dir DIR to use another cache"
        )

    def _retry(self, fn: Callable[[], _T], attempts: int = 8) -> _T:
        """Run fn, retrying when another process holds the write lock past the busy timeout."""
        for attempt in range(attempts):
            try:
                return fn()
            except sqlite3.OperationalError as e:
                msg = str(e).lower()
                if ("locked" not in msg and "busy" not in msg) or attempt == attempts - 1:
                    raise
                time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))
        raise AssertionError("unreachable")

    def _fetchall(self, sql: str, args: Sequence[Any]) -> list[Any]:
        return self._db.execute(sql, args).fetchall()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> CacheStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reads and writes

    def get_many(self, keys: Iterable[str]) -> dict[str, Completion]:
        """The stored completions for those keys (missing keys are simply absent)."""
        return dict(self.stream(keys))

    def stream(self, keys: Iterable[str]) -> Iterator[tuple[str, Completion]]:
        """`get_many` a chunk at a time: a full-RMB rerun reads 31k answers and keeps only
        their verdicts, never all the answers at once."""
        for _, rows in self._select("key, completion", keys):
            try:
                decoded = [(key, Completion.from_dict(_loads(raw))) for key, raw in rows]
            except (ValueError, KeyError, TypeError) as e:
                bad = ValueError(f"a stored completion does not decode: {e}")
                raise self._unusable(bad) from None
            yield from decoded

    def present(self, keys: Iterable[str]) -> set[str]:
        """Which of those keys have an answer stored (nothing is decoded)."""
        out: set[str] = set()
        for chunk, rows in self._select("key", keys):
            found = {key for (key,) in rows}
            # the caller's key objects, not SQLite's copies (31k keys held twice cost 3.5 MB)
            out.update(k for k in chunk if k in found)
        return out

    def _select(self, columns: str, keys: Iterable[str]) -> Iterator[tuple[list[str], list[Any]]]:
        """(keys, rows) of `SELECT columns` for the distinct `keys`, a chunk of keys at a time."""
        keys = list(dict.fromkeys(keys))
        for i in range(0, len(keys), _CHUNK):
            chunk = keys[i : i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT {columns} FROM completions WHERE key IN ({marks})"
            yield chunk, self._read(sql, chunk)

    def _read(self, sql: str, args: Sequence[Any]) -> list[Any]:
        try:
            with self._lock:
                return self._retry(partial(self._fetchall, sql, args))
        except sqlite3.DatabaseError as e:
            raise self._unusable(e) from None

    def get(self, key: str) -> Completion | None:
        return self.get_many([key]).get(key)

    def put_many(
        self, entries: Iterable[tuple[str, JudgeIdentity, Completion]], *, cut_ok: bool = False
    ) -> int:
        """Store answers in one transaction; non-answers are skipped (`cut_ok`: see
        `Completion.is_complete`). Returns how many rows are new."""
        now = time.time()
        rows = [
            (
                key,
                ident.label(),
                ident.provider,
                ident.model,
                ident.base_url,
                json.dumps(c.to_dict(), ensure_ascii=False, separators=(",", ":")),
                c.created_at or now,
            )
            for key, ident, c in entries
            if c.is_complete(cut_ok=cut_ok)
        ]
        if not rows:
            return 0

        def write() -> int:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                before = self._db.total_changes
                self._db.executemany(
                    "INSERT OR IGNORE INTO completions VALUES (?,?,?,?,?,?,?)", rows
                )
                added = self._db.total_changes - before
                self._db.execute("COMMIT")
                return added
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

        try:
            with self._lock:
                return self._retry(write)
        except sqlite3.DatabaseError as e:
            raise self._unusable(e) from None

    # ------------------------------------------------------------------ maintenance

    def stats(self) -> CacheStats:
        try:
            with self._lock:
                rows = self._db.execute(
                    "SELECT judge, COUNT(*), MIN(created_at), MAX(created_at) FROM completions "
                    "GROUP BY judge ORDER BY judge"
                ).fetchall()
        except sqlite3.DatabaseError as e:
            raise self._unusable(e) from None
        size = sum(
            p.stat().st_size
            for p in (self.path, self.path.with_name(CACHE_FILE + "-wal"))
            if p.exists()
        )
        per = {j: (n, lo, hi) for j, n, lo, hi in rows}
        return CacheStats(self.path, sum(n for n, _, _ in per.values()), size, per)

    def export(self, fh: IO[str], *, judge: str | None = None) -> int:
        """Every entry as one JSON line (key, judge, provider, model, base_url, created_at,
        completion). Returns the number of lines written."""
        sql = (
            "SELECT key, judge, provider, model, base_url, created_at, completion FROM completions"
        )
        args: tuple[Any, ...] = ()
        if judge is not None:
            sql += " WHERE judge = ?"
            args = (judge,)
        n = 0
        try:
            with self._lock:
                for key, j, prov, model, url, created, raw in self._db.execute(
                    sql + " ORDER BY created_at", args
                ):
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
        except sqlite3.DatabaseError as e:
            raise self._unusable(e) from None
        return n

    def prune(self, *, judge: str | None = None, older_than_s: float | None = None) -> int:
        """Delete entries of one judge label and/or older than N seconds (both: both must hold).
        With neither, nothing is deleted. Returns the number deleted."""
        where: list[str] = []
        args: list[Any] = []
        if judge is not None:
            where.append("judge = ?")
            args.append(judge)
        if older_than_s is not None:
            where.append("created_at < ?")
            args.append(time.time() - older_than_s)
        if not where:
            return 0
        sql = "DELETE FROM completions WHERE " + " AND ".join(where)
        try:
            with self._lock:
                n = self._retry(lambda: self._db.execute(sql, args).rowcount)
                self._retry(lambda: self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)"))
        except sqlite3.DatabaseError as e:
            raise self._unusable(e) from None
        return int(n)

    def check(self) -> list[str]:
        """Problems found by SQLite's integrity check and by decoding every stored completion;
        an empty list means the cache is sound."""
        problems: list[str] = []
        try:
            with self._lock:
                res = [r[0] for r in self._db.execute("PRAGMA integrity_check").fetchall()]
                if res != ["ok"]:
                    problems += [f"sqlite: {r}" for r in res]
                for key, raw in self._db.execute("SELECT key, completion FROM completions"):
                    try:
                        Completion.from_dict(_loads(raw))
                    except (ValueError, KeyError, TypeError) as e:
                        problems.append(f"entry {key}: completion does not decode ({e})")
        except sqlite3.DatabaseError as e:
            raise self._unusable(e) from None
        return problems
