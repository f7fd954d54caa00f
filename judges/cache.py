"""The on-disk memory of every judge answer: a content-addressed SQLite store of raw completions.

Key = `judges.base.cache_key(identity, request)` (never an API key). Value = the raw `Completion`
JSON, never a parsed verdict, so a better parser re-scores old runs with no new calls. Only real
answers are stored (`Completion.is_answer`): errors, refusals, empty and cut-off answers are asked
again next time. WAL mode + busy timeout + retry on SQLITE_BUSY let several processes share one
directory; `INSERT OR IGNORE` keeps the first answer when two processes race on the same key.
Keys a process is buying are claimed in the same file (`claim`): another process on the same
cache waits for them instead of paying again; a dead owner's claims lapse (see `judges.cache_owners`).

Errors name what is wrong (disk full, read-only, a damaged file, one bad row) and never advise
deleting the file: it holds every paid answer. A row that does not decode is moved to
`bad_completions` (kept, not deleted), reported, and is a miss asked again."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import IO, Any, TypeVar

from . import cache_upkeep as upkeep
from .base import Completion, JudgeIdentity
from .cache_db import (
    CACHE_FILE,
    DECODES,
    SCHEMA_VERSION,
    CacheError,
    connect,
    connect_read_only,
    default_cache_dir,
    loads,
    retry,
    unusable,
)
from .cache_owners import LEASE_S, Claimed, new_owner, owner_alive, process_start
from .cache_upkeep import CacheStats

__all__ = [
    "CACHE_FILE",
    "LEASE_S",
    "SCHEMA_VERSION",
    "CacheError",
    "CacheStats",
    "CacheStore",
    "Claimed",
    "default_cache_dir",
]

log = logging.getLogger(__name__)

_CHUNK = 500  # keys per SELECT ... IN (...): under SQLite's variable limit
_T = TypeVar("_T")


class CacheStore:
    """One SQLite file under `directory`. Thread-safe (one connection behind a lock), so the
    runner can commit from a worker thread while its event loop keeps sending requests."""

    def __init__(
        self,
        directory: Path | str | None = None,
        *,
        busy_timeout_s: float = 30.0,
        read_only: bool = False,
    ) -> None:
        """`read_only`: open an existing cache for reading (`rmb report`, `rmb cache stats`):
        nothing is created or written, and a cache on a read-only disk or owned by someone
        else reads fine."""
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.path = self.directory / CACHE_FILE
        self.read_only = read_only
        self._busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()
        self._owner: str | None = None  # set by the first claim
        self.bad_rows: list[str] = []  # keys whose stored answer did not decode (moved aside)
        if read_only:
            if not self.path.is_file():
                raise CacheError(
                    f"{self.directory}: no cache here (no {CACHE_FILE}); pass --cache-dir DIR"
                )
            self._db = connect_read_only(self.path)
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CacheError(
                f"{self.directory}: cannot create the cache directory: {e.strerror or e}; "
                "pass --cache-dir DIR"
            ) from None
        self._db = connect(self.path, self._busy_timeout_s)

    # ------------------------------------------------------------------ set-up

    def _unusable(self, e: BaseException) -> CacheError:
        return unusable(self.path, e)

    def _guarded(self, fn: Callable[[], _T]) -> _T:
        """fn under the lock, SQLite's errors told as one-line `CacheError`s."""
        try:
            with self._lock:
                return fn()
        except sqlite3.DatabaseError as e:
            raise self._unusable(e) from None

    def _fetchall(self, sql: str, args: Sequence[Any]) -> list[Any]:
        return self._db.execute(sql, args).fetchall()

    def close(self) -> None:
        if self._owner is not None:
            with contextlib.suppress(CacheError):
                self.release_all()
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
            decoded = []
            for key, raw in rows:
                try:
                    decoded.append((key, Completion.from_dict(loads(raw))))
                except (ValueError, KeyError, TypeError, AttributeError) as e:
                    self._set_aside([key], f"does not decode: {e}")
            yield from decoded

    def _set_aside(self, keys: list[str], problem: str) -> None:
        """Move rows that do not decode to `bad_completions` (kept for a look, never deleted)
        so the key is a miss, asked again and stored afresh; say so once per key."""
        self.bad_rows += keys
        log.warning(
            "%s: %d stored answer(s) do not decode (%s); they are asked again (the bad rows are "
            "kept in its bad_completions table)",
            self.path,
            len(keys),
            problem[:200],
        )
        if self.read_only or not keys:
            return
        marks = ",".join("?" * len(keys))

        def move() -> None:
            with self._transaction():
                self._db.execute(
                    "INSERT INTO bad_completions SELECT key, CAST(completion AS BLOB), ?, ? "
                    f"FROM completions WHERE key IN ({marks})",
                    (problem, time.time(), *keys),
                )
                self._db.execute(f"DELETE FROM completions WHERE key IN ({marks})", keys)

        self._write(move)

    def present(self, keys: Iterable[str]) -> set[str]:
        """Which of those keys have an answer stored (nothing is decoded)."""
        out: set[str] = set()
        for chunk, rows in self._select(f"key, {DECODES}", keys):
            found = {key for key, ok in rows if ok}
            if bad := [key for key, ok in rows if not ok]:
                self._set_aside(bad, "not a stored completion")
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
        return self._guarded(partial(retry, partial(self._fetchall, sql, args)))

    def get(self, key: str) -> Completion | None:
        return self.get_many([key]).get(key)

    def put_many(
        self, entries: Iterable[tuple[str, JudgeIdentity, Completion]], *, cut_ok: bool = False
    ) -> int:
        """Store answers in one transaction; non-answers are skipped (`cut_ok`: see
        `Completion.is_complete`). Returns how many rows are new."""
        now = time.time()
        entries = list(entries)
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
        # every key given is bought or failed: its claim is freed in the same commit
        released = [(key, self._owner) for key, _, _ in entries] if self._owner else []
        if not rows and not released:
            return 0

        def write() -> int:
            with self._transaction():
                before = self._db.total_changes
                self._db.executemany(
                    "INSERT OR IGNORE INTO completions VALUES (?,?,?,?,?,?,?)", rows
                )
                added = self._db.total_changes - before
                self._db.executemany("DELETE FROM claims WHERE key = ? AND owner = ?", released)
                return added

        return self._write(write)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            # SQLite has already rolled back after some errors (a full disk): a second rollback
            # would hide the real error behind "cannot rollback - no transaction is active"
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            raise

    def _write(self, fn: Callable[[], _T]) -> _T:
        if self.read_only:
            raise CacheError(f"{self.path}: opened read-only; nothing can be stored")
        return self._guarded(partial(retry, fn))

    # ------------------------------------------------------------------ claims

    def claim(self, keys: Sequence[str]) -> Claimed:
        """Claim the keys no one has answered or is buying, for this process to buy; the
        claims last until `put_many` stores (or drops) their answers, `release`, or `close`."""
        me = self._owner or new_owner()
        now = time.time()

        def run() -> Claimed:
            with self._transaction():
                self._reap(now)
                self._db.execute(
                    "INSERT OR REPLACE INTO owners VALUES (?,?,?,?,?)",
                    (me, socket.gethostname(), os.getpid(), process_start(os.getpid()), now),
                )
                cached: set[str] = set()
                held: set[str] = set()
                for i in range(0, len(keys), _CHUNK):
                    chunk = keys[i : i + _CHUNK]
                    marks = ",".join("?" * len(chunk))
                    sql = f"SELECT key FROM completions WHERE key IN ({marks}) AND {DECODES}"
                    cached.update(k for (k,) in self._db.execute(sql, chunk))
                    sql = f"SELECT key FROM claims WHERE key IN ({marks}) AND owner != ?"
                    held.update(k for (k,) in self._db.execute(sql, (*chunk, me)))
                mine = [k for k in keys if k not in cached and k not in held]
                self._db.executemany(
                    "INSERT OR REPLACE INTO claims VALUES (?, ?)", [(k, me) for k in mine]
                )
            return Claimed(mine, [k for k in keys if k in cached], [k for k in keys if k in held])

        self._owner = me
        return self._write(run)

    def _reap(self, now: float) -> None:
        """Free the claims of owners that died (same host) or went silent (LEASE_S)."""
        dead = [
            owner
            for owner, host, pid, started, beat in self._db.execute("SELECT * FROM owners")
            if owner != self._owner
            and (beat < now - LEASE_S or not owner_alive(host, pid, started))
        ]
        for owner in dead:
            self._db.execute("DELETE FROM claims WHERE owner = ?", (owner,))
            self._db.execute("DELETE FROM owners WHERE owner = ?", (owner,))

    def heartbeat(self) -> None:
        """Tell other processes this one is alive and still buying its claimed keys."""
        if self._owner is not None:
            self._write(
                lambda: self._db.execute(
                    "UPDATE owners SET heartbeat = ? WHERE owner = ?", (time.time(), self._owner)
                )
            )

    def release(self, keys: Iterable[str]) -> None:
        if self._owner is not None:
            rows = [(k, self._owner) for k in keys]
            self._write(
                lambda: self._db.executemany("DELETE FROM claims WHERE key = ? AND owner = ?", rows)
            )

    def release_all(self) -> None:
        owner, self._owner = self._owner, None
        if owner is not None:

            def run() -> None:
                with self._transaction():
                    self._db.execute("DELETE FROM claims WHERE owner = ?", (owner,))
                    self._db.execute("DELETE FROM owners WHERE owner = ?", (owner,))

            self._write(run)

    # ------------------------------------------------------------------ maintenance

    def stats(self) -> CacheStats:
        per = self._guarded(partial(upkeep.per_judge, self._db))
        size = sum(
            p.stat().st_size
            for p in (self.path, self.path.with_name(CACHE_FILE + "-wal"))
            if p.exists()
        )
        return CacheStats(self.path, sum(n for n, _, _ in per.values()), size, per)

    def export(self, fh: IO[str], *, judge: str | None = None) -> int:
        """Every entry as one JSON line (key, judge, provider, model, base_url, created_at,
        completion). Returns the number of lines written."""
        return self._guarded(partial(upkeep.export, self._db, fh, judge))

    def prune(
        self, *, judge: str | None = None, older_than_s: float | None = None, dry_run: bool = False
    ) -> int:
        """Delete entries of one judge label and/or older than N seconds (both: both must hold).
        With neither, nothing is deleted. Returns the number deleted (`dry_run`: the number
        that would be, deleting nothing)."""
        where, args = upkeep.prune_where(judge, older_than_s)
        if not where:
            return 0
        if dry_run:
            sql = "SELECT COUNT(*) FROM completions WHERE " + where
            return int(self._read(sql, args)[0][0])
        sql = "DELETE FROM completions WHERE " + where

        def delete() -> int:
            n = retry(lambda: self._db.execute(sql, args).rowcount)
            retry(lambda: self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)"))
            return int(n)

        return self._guarded(delete)

    def check(self) -> list[str]:
        """Problems found by SQLite's integrity check and by decoding every stored completion;
        an empty list means the cache is sound."""
        return self._guarded(partial(upkeep.check, self._db))
