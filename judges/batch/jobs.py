"""The batch jobs this cache has open at a provider, and the keys each holds, in the cache's own
SQLite file (tables `batch_jobs` and `batch_keys`, next to `completions`).

A job is recorded, with its keys, in one transaction BEFORE anything goes to the provider
(state `submitting`); the provider's ids are added as they come (`file_id`, then `batch_id`,
state `open`); when its results are in the cache it is `done` and its keys are free again. A key
held by a `submitting` or `open` job is never put in another batch, by this process or any other
sharing the cache, so no request is paid twice. A `submitting` job whose owner died (a crash
between "created at the provider" and "recorded") is resolved by `judges.batch.recovery`."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..base import JudgeIdentity
from ..cache import CACHE_FILE, CacheError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batch_jobs (
    id          TEXT PRIMARY KEY,
    provider    TEXT NOT NULL,
    model       TEXT NOT NULL,
    base_url    TEXT NOT NULL,
    state       TEXT NOT NULL,
    batch_id    TEXT,
    file_id     TEXT,
    status      TEXT NOT NULL DEFAULT '',
    n           INTEGER NOT NULL,
    counts      TEXT NOT NULL DEFAULT '{}',
    ceiling_usd REAL NOT NULL DEFAULT 0,
    cut_ok      INTEGER NOT NULL DEFAULT 0,
    owner       TEXT NOT NULL,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    note        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS batch_jobs_state ON batch_jobs (state);
CREATE TABLE IF NOT EXISTS batch_keys (
    key  TEXT NOT NULL,
    job  TEXT NOT NULL,
    line INTEGER NOT NULL,  -- 1-based position in the batch (a validation error names it)
    PRIMARY KEY (key, job)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS batch_keys_job ON batch_keys (job);
"""

LIVE = ("submitting", "open")
_CHUNK = 500  # keys per IN (...)


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(owner: str) -> bool | None:
    """Whether the process that wrote `owner` still runs: None when it ran on another host."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    identity: JudgeIdentity
    state: str  # submitting | open | done
    batch_id: str | None
    file_id: str | None
    status: str  # the provider's status as last seen
    n: int
    counts: dict[str, int] = field(default_factory=dict)
    ceiling_usd: float = 0.0
    cut_ok: bool = False
    owner: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0
    note: str = ""

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Job:
        (jid, prov, model, url, state, bid, fid, status, n, counts, ceiling, cut_ok, owner,
         created, updated, note) = row  # fmt: skip
        return cls(
            jid, JudgeIdentity(prov, model, url), state, bid, fid, status, n,
            json.loads(counts), ceiling, bool(cut_ok), owner, created, updated, note,
        )  # fmt: skip


_COLUMNS = (
    "id, provider, model, base_url, state, batch_id, file_id, status, n, counts, ceiling_usd, "
    "cut_ok, owner, created_at, updated_at, note"
)


class JobStore:
    """The job tables, through a connection of its own to the cache file (WAL: several
    processes at once). Every method is one transaction."""

    def __init__(self, directory: Path | str, *, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(directory) / CACHE_FILE
        self._lock = threading.Lock()
        try:
            Path(directory).mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            self._db.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as e:
            raise CacheError(f"{self.path}: cannot keep batch jobs here ({e})") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self, fn: Any) -> Any:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                out = fn(self._db)
                self._db.execute("COMMIT")
                return out
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # ------------------------------------------------------------------ claims

    def held(self, keys: Iterable[str]) -> set[str]:
        """Which of `keys` a live (submitting or open) job holds."""
        with self._lock:
            return _held(self._db, list(keys))

    def claim(
        self,
        identity: JudgeIdentity,
        keys: Sequence[str],
        *,
        ceiling_usd: float = 0.0,
        cut_ok: bool = False,
    ) -> tuple[Job, list[str]] | None:
        """Record a new `submitting` job holding those of `keys` no live job holds; returns it
        and the keys it got (in the given order), or None if every key was taken."""
        jid = f"rmb_{uuid.uuid4().hex[:20]}"
        now = time.time()

        def write(db: sqlite3.Connection) -> list[str]:
            taken = _held(db, list(keys))
            mine = [k for k in keys if k not in taken]
            if not mine:
                return mine
            db.execute(
                f"INSERT INTO batch_jobs ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (jid, identity.provider, identity.model, identity.base_url, "submitting", None,
                 None, "", len(mine), "{}", ceiling_usd, int(cut_ok), owner_id(), now, now, ""),
            )  # fmt: skip
            db.executemany(
                "INSERT INTO batch_keys VALUES (?,?,?)",
                [(k, jid, n) for n, k in enumerate(mine, 1)],
            )
            return mine

        mine = self._write(write)
        if not mine:
            return None
        job = self.get(jid)
        assert job is not None
        return job, mine

    # ------------------------------------------------------------------ updates

    def update(self, jid: str, **fields: Any) -> None:
        """Set columns of one job (counts as a dict); `updated_at` follows."""
        if "counts" in fields:
            fields["counts"] = json.dumps(fields["counts"], sort_keys=True)
        fields["updated_at"] = time.time()
        sets = ", ".join(f"{k} = ?" for k in fields)
        self._write(
            lambda db: db.execute(
                f"UPDATE batch_jobs SET {sets} WHERE id = ?", (*fields.values(), jid)
            )
        )

    def finish(self, jid: str, status: str, note: str = "") -> None:
        """The job is over (its answers are in the cache, or it never reached the provider): its
        keys are free for another batch."""

        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE batch_jobs SET state='done', status=?, note=?, updated_at=? WHERE id=?",
                (status, note, time.time(), jid),
            )
            db.execute("DELETE FROM batch_keys WHERE job = ?", (jid,))

        self._write(write)

    # ------------------------------------------------------------------ reads

    def get(self, jid: str) -> Job | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM batch_jobs WHERE id = ?", (jid,)
            ).fetchone()
        return None if row is None else Job.from_row(row)

    def jobs(
        self, *, identity: JudgeIdentity | None = None, states: Sequence[str] = LIVE
    ) -> list[Job]:
        """Jobs in those states (all judges, or one), oldest first."""
        sql = f"SELECT {_COLUMNS} FROM batch_jobs WHERE state IN ({','.join('?' * len(states))})"
        args: list[Any] = list(states)
        if identity is not None:
            sql += " AND provider = ? AND model = ? AND base_url = ?"
            args += [identity.provider, identity.model, identity.base_url]
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY created_at", args).fetchall()
        return [Job.from_row(r) for r in rows]

    def keys(self, jid: str) -> list[str]:
        """The job's keys in line order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT key FROM batch_keys WHERE job = ? ORDER BY line", (jid,)
            )
            return [k for (k,) in rows]

    def known_batch_ids(self) -> set[str]:
        with self._lock:
            rows = self._db.execute("SELECT batch_id FROM batch_jobs WHERE batch_id IS NOT NULL")
            return {b for (b,) in rows}


def _held(db: sqlite3.Connection, keys: list[str]) -> set[str]:
    out: set[str] = set()
    for i in range(0, len(keys), _CHUNK):
        chunk = keys[i : i + _CHUNK]
        rows = db.execute(
            "SELECT k.key FROM batch_keys k JOIN batch_jobs j ON j.id = k.job "
            f"WHERE j.state IN ('submitting', 'open') AND k.key IN ({','.join('?' * len(chunk))})",
            chunk,
        )
        out.update(k for (k,) in rows)
    return out
