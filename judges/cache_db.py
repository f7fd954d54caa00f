"""The SQLite side of the answer cache (`judges.cache`): its schema, opening the file for
writing or for reading only, retrying a busy lock, and the one-line errors that say what is
wrong with a cache file (never advice that loses paid answers)."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson

from .errors import UserError

CACHE_FILE = "completions.sqlite"
SCHEMA_VERSION = 1
_T = TypeVar("_T")

SCHEMA = """
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
DECODES = (
    "CASE WHEN typeof(completion) != 'text' OR NOT json_valid(completion) THEN 0 "
    "ELSE json_type(completion, '$.text') = 'text' END"
)


class CacheError(UserError):
    """The cache file cannot be used as it is."""


def default_cache_dir() -> Path:
    return Path(os.environ.get("RMB_CACHE_DIR") or "cache")


def retry(fn: Callable[[], _T], attempts: int = 8) -> _T:
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


def connect(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    """Open (creating if need be) the cache file for writing, in WAL mode."""
    try:
        db = sqlite3.connect(
            path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        db.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        # switching a new file to WAL takes a lock that busy_timeout does not wait for:
        # a second process creating the same cache at that moment retries, not fails
        mode = retry(lambda: db.execute("PRAGMA journal_mode=WAL").fetchone()[0])
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"journal_mode is {mode}, not wal")
        # WAL + NORMAL: a commit survives a killed process (only an OS crash can lose it)
        db.execute("PRAGMA synchronous=NORMAL")
        retry(lambda: db.executescript(SCHEMA))
        row = db.execute("SELECT v FROM meta WHERE k='schema'").fetchone()
        if row is None:
            retry(
                lambda: db.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
                )
            )
        elif int(row[0]) > SCHEMA_VERSION:
            raise CacheError(
                f"{path}: written by a newer rmb-judge (cache schema {row[0]}); upgrade, "
                "or pass --cache-dir to use another cache"
            )
    except sqlite3.DatabaseError as e:
        raise unusable(path, e) from None
    return db


def connect_read_only(path: Path) -> sqlite3.Connection:
    uri = path.resolve().as_uri()
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
                f"{path}: written by a newer rmb-judge (cache schema {row[0]}); upgrade"
            )
    except sqlite3.DatabaseError as e:
        raise unusable(path, e) from None
    return db


def unusable(path: Path, e: BaseException) -> CacheError:
    """A one-line error that says what is wrong; never advice that loses paid answers."""
    name = str(getattr(e, "sqlite_errorname", "") or "")
    if name == "SQLITE_FULL":
        return CacheError(
            f"{path}: the disk holding the cache is full ({e}); free some space there and "
            "rerun (the answers already stored are safe), or pass --cache-dir DIR"
        )
    if name.startswith("SQLITE_READONLY") or (
        name.startswith("SQLITE_CANTOPEN") and not _writable(path)
    ):
        return CacheError(
            f"{path}: the cache is read-only ({e}); a run needs to write answers there: "
            "make it writable or pass --cache-dir DIR (`rmb report` and `rmb cache stats` "
            "read it as it is)"
        )
    if name.startswith("SQLITE_IOERR"):
        return CacheError(f"{path}: cannot read or write the cache file ({e}); check the disk")
    return CacheError(
        f"{path}: the cache file is damaged or not a cache ({e}); `rmb cache check "
        f"--cache-dir {path.parent}` says what is wrong and `rmb cache export` saves what "
        "still reads; to start afresh move that file aside (it holds paid answers) or pass "
        "--cache-dir DIR"
    )


def _writable(path: Path) -> bool:
    target = path if path.exists() else path.parent
    return os.access(target, os.W_OK)


def loads(raw: str) -> Any:
    # orjson reads ~3x faster; json also reads the NaN/Infinity a logprob may hold
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)
