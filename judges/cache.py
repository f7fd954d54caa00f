"""The on-disk memory of every judge answer: a content-addressed SQLite store of raw completions.

Key = `judges.base.cache_key(identity, request)` (never an API key). Value = the raw `Completion`
JSON, never a parsed verdict, so a better parser re-scores old runs with no new calls. Only real
answers are stored (`Completion.is_answer`): errors, refusals, empty and cut-off answers are asked
again next time. WAL mode + busy timeout + retry on SQLITE_BUSY let several processes share one
directory; `INSERT OR IGNORE` keeps the first answer when two processes race on the same key.
Keys a process is buying are claimed in the same file (`claim`): another process on the same
cache waits for them instead of paying again; a dead owner's claims lapse (see `_owner_alive`).

Errors name what is wrong (disk full, read-only, a damaged file, one bad row) and never advise
deleting the file: it holds every paid answer. A row that does not decode is moved to
`bad_completions` (kept, not deleted), reported, and is a miss asked again."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import socket
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

log = logging.getLogger(__name__)

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
CREATE TABLE IF NOT EXISTS owners (
    owner     TEXT PRIMARY KEY,
    host      TEXT NOT NULL,
    pid       INTEGER NOT NULL,
    started   TEXT NOT NULL,
    heartbeat REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, owner TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bad_completions (
    key TEXT NOT NULL, completion BLOB, problem TEXT NOT NULL, moved_at REAL NOT NULL
);
"""
# a cheap test in SQL for rows `Completion.from_dict` can read (the rare row that passes it and
# still does not decode is caught when it is read)
_DECODES = (
    "CASE WHEN typeof(completion) != 'text' OR NOT json_valid(completion) THEN 0 "
    "ELSE json_type(completion, '$.text') = 'text' END"
)
LEASE_S = 60.0  # a claim whose owner has not been heard of for this long is free again


def _process_start(pid: int) -> str:
    """When process `pid` started (Linux clock ticks), so a recycled pid is not taken for the
    owner; '' where /proc does not say."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return ""


def _owner_alive(host: str, pid: int, started: str) -> bool:
    """On this host a claim's owner is checked directly (a killed run frees its keys at once);
    on another host only its heartbeat tells."""
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not started or _process_start(pid) == started


@dataclass(frozen=True, slots=True)
class Claimed:
    """What `CacheStore.claim` found for some keys."""

    mine: list[str]  # this process buys these now
    cached: list[str]  # answered meanwhile (by another process)
    others: list[str]  # another live process is buying these


def _loads(raw: str) -> Any:
    # orjson reads ~3x faster; json also reads the NaN/Infinity a logprob may hold
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


class CacheError(UserError):
    """The cache file cannot be used as it is."""


def _errname(e: BaseException) -> str:
    return str(getattr(e, "sqlite_errorname", "") or "")


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
            self._db = self._connect_read_only()
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CacheError(
                f"{self.directory}: cannot create the cache directory: {e.strerror or e}; "
                "pass --cache-dir DIR"
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

    def _connect_read_only(self) -> sqlite3.Connection:
        uri = self.path.resolve().as_uri()
        try:
            try:
                db = sqlite3.connect(f"{uri}?mode=ro", uri=True, check_same_thread=False)
                db.execute("PRAGMA busy_timeout=5000")
                db.execute("SELECT 1 FROM sqlite_master").fetchall()
            except sqlite3.OperationalError:
                # a WAL file needs a writable -shm beside it; with no writer possible (read-only
                # directory or disk) the file is read as it is
                db = sqlite3.connect(f"{uri}?immutable=1", uri=True, check_same_thread=False)
            row = db.execute("SELECT v FROM meta WHERE k='schema'").fetchone()
            if row is not None and int(row[0]) > SCHEMA_VERSION:
                raise CacheError(
                    f"{self.path}: written by a newer rmb-judge (cache schema {row[0]}); upgrade"
                )
        except sqlite3.DatabaseError as e:
            raise self._unusable(e) from None
        return db

    def _unusable(self, e: BaseException) -> CacheError:
        """A one-line error that says what is wrong; never advice that loses paid answers."""
        name, where = _errname(e), self.path
        if name == "SQLITE_FULL":
            return CacheError(
                f"{where}: the disk holding the cache is full ({e}); free some space there and "
                "rerun (the answers already stored are safe), or pass --cache-dir DIR"
            )
        if name.startswith("SQLITE_READONLY") or (
            name.startswith("SQLITE_CANTOPEN") and not self._writable()
        ):
            return CacheError(
                f"{where}: the cache is read-only ({e}); a run needs to write answers there: "
                "make it writable or pass --cache-dir DIR (`rmb report` and `rmb cache stats` "
                "read it as it is)"
            )
        if name.startswith("SQLITE_IOERR"):
            return CacheError(f"{where}: cannot read or write the cache file ({e}); check the disk")
        return CacheError(
            f"{where}: the cache file is damaged or not a cache ({e}); `rmb cache check "
            f"--cache-dir {self.directory}` says what is wrong and `rmb cache export` saves what "
            "still reads; to start afresh move that file aside (it holds paid answers) or pass "
            "--cache-dir DIR"
        )

    def _writable(self) -> bool:
        target = self.path if self.path.exists() else self.directory
        return os.access(target, os.W_OK)

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
                    decoded.append((key, Completion.from_dict(_loads(raw))))
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
        for chunk, rows in self._select(f"key, {_DECODES}", keys):
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
        try:
            with self._lock:
                return self._retry(fn)
        except sqlite3.DatabaseError as e:
            raise self._unusable(e) from None

    # ------------------------------------------------------------------ claims

    def claim(self, keys: Sequence[str]) -> Claimed:
        """Claim the keys no one has answered or is buying, for this process to buy; the
        claims last until `put_many` stores (or drops) their answers, `release`, or `close`."""
        me = self._owner or self._new_owner()
        now = time.time()

        def run() -> Claimed:
            with self._transaction():
                self._reap(now)
                self._db.execute(
                    "INSERT OR REPLACE INTO owners VALUES (?,?,?,?,?)",
                    (me, socket.gethostname(), os.getpid(), _process_start(os.getpid()), now),
                )
                cached: set[str] = set()
                held: set[str] = set()
                for i in range(0, len(keys), _CHUNK):
                    chunk = keys[i : i + _CHUNK]
                    marks = ",".join("?" * len(chunk))
                    sql = f"SELECT key FROM completions WHERE key IN ({marks}) AND {_DECODES}"
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

    def _new_owner(self) -> str:
        return f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(64):016x}"

    def _reap(self, now: float) -> None:
        """Free the claims of owners that died (same host) or went silent (LEASE_S)."""
        dead = [
            owner
            for owner, host, pid, started, beat in self._db.execute("SELECT * FROM owners")
            if owner != self._owner
            and (beat < now - LEASE_S or not _owner_alive(host, pid, started))
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

    def prune(
        self, *, judge: str | None = None, older_than_s: float | None = None, dry_run: bool = False
    ) -> int:
        """Delete entries of one judge label and/or older than N seconds (both: both must hold).
        With neither, nothing is deleted. Returns the number deleted (`dry_run`: the number
        that would be, deleting nothing)."""
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
        if dry_run:
            sql = "SELECT COUNT(*) FROM completions WHERE " + " AND ".join(where)
            return int(self._read(sql, args)[0][0])
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
