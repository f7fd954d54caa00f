"""What a run directory holds and how it is written and read: the run's deterministic id,
`manifest.json` (judge, template, data, options, versions, git commit, times; nothing secret:
options are listed field by field) and `comparisons.jsonl`, each written atomically."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import platform
import re
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmark.data import Item
from benchmark.files import write_atomic
from benchmark.results import JudgedComparison
from judges.base import REASONING_OPTIONS, JudgeIdentity, JudgeOptions
from judges.errors import UserError

log = logging.getLogger(__name__)

# JudgeOptions fields that change answers (and so the run); the rest only shape sending
ANSWER_FIELDS = ("temperature", "max_tokens", "seed", "top_logprobs", "system_prompt")
# fingerprinted only when set, so the runs of earlier versions keep their directories
ADDED_ANSWER_FIELDS = (*REASONING_OPTIONS, "api_version")
MANIFEST_FILE = "manifest.json"
COMPARISONS_FILE = "comparisons.jsonl"
PACKAGES = ("rmb-judge", "openai", "anthropic", "jinja2", "vllm", "llama-cpp-python")


def items_hash(items: Iterable[Item]) -> str:
    """Content hash of the selected items (uids, conversations, candidate texts), in order."""
    h = hashlib.sha256()
    for it in items:
        h.update(it.uid.encode())
        for m in it.conversation:
            h.update(b"\0" + m.role.encode() + b"\0" + m.content.encode())
        for cid, r in it.candidates().items():
            h.update(b"\1" + cid.encode() + b"\0" + r.text.encode())
        h.update(b"\2")
    return h.hexdigest()


def answer_options(options: JudgeOptions, identity: JudgeIdentity) -> dict[str, Any]:
    """What the options make the judge send (temperature and token limit as its model family
    resolves them: a default that sends the same as before keeps the run's directory)."""
    shaped = options.shaped(identity)
    sent = {"temperature": shaped.temperature, "max_tokens": shaped.max_tokens}
    given = {f: getattr(options, f) for f in ADDED_ANSWER_FIELDS}
    return {f: sent.get(f, getattr(options, f)) for f in ANSWER_FIELDS} | {
        f: v for f, v in given.items() if v is not None
    }


def sending_options(options: JudgeOptions) -> dict[str, Any]:
    """All options except secrets (JudgeOptions holds none but the env var *name*)."""
    return asdict(options)


def fingerprint(identity: JudgeIdentity, template_name: str, inputs: Mapping[str, Any]) -> str:
    """Everything that decides which requests a run makes (not how they are sent)."""
    blob = {"judge": identity.label(), "template": template_name, **inputs}
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()


def run_id(identity: JudgeIdentity, template_name: str, digest: str) -> str:
    """`<model>-<template>-<hash8>`: the same judge, template, data and options land in the same
    directory, so rerunning the same command resumes there."""
    slug = re.sub(
        r"[^A-Za-z0-9._-]+", "-", f"{identity.model.rsplit('/', 1)[-1]}-{Path(template_name).stem}"
    )
    return f"{slug.strip('-')[:60]}-{digest[:8]}"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_commit(where: Path | None = None) -> str | None:
    """The commit of the rmb-judge checkout (with '+dirty' when it has local changes)."""
    where = where or Path(__file__).resolve().parent.parent
    if not (where / ".git").exists():
        return None
    try:
        head = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


# a run id names one directory inside --runs-dir: no separators, no '..', nothing hidden
RUN_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+=@-]{0,127}")
LOCK_FILE = ".lock"


def check_run_id(run_id: str) -> str:
    if not RUN_ID.fullmatch(run_id):
        raise UserError(
            f"--run-id {run_id[:80]!r}: a run id is one folder name inside --runs-dir: letters, "
            "digits and . _ - + = @ (not first), at most 128 characters"
        )
    return run_id


class RunLock:
    """An exclusive lock on a run directory for the length of a run (`flock`: released by the
    kernel when the process dies, so a killed run never leaves it held)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            self._fh = (run_dir / LOCK_FILE).open("a+")
        except OSError as e:
            raise UserError(
                f"--runs-dir: cannot create the run directory {run_dir} ({e.strerror or e}); "
                "pass --runs-dir DIR, a folder you can write"
            ) from None
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._fh.seek(0)
            holder = self._fh.read().strip() or "another process"
            self._fh.close()
            raise UserError(
                f"{run_dir}: another rmb run ({holder[:80]}) is writing this run directory; "
                "wait for it to finish (the answers it buys are shared through the cache), or "
                "pass another --run-id"
            ) from None
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(f"pid {os.getpid()} on {platform.node()}\n")
        self._fh.flush()

    def release(self) -> None:
        if not self._fh.closed:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def write_jsonl(path: Path, lines: Iterable[str]) -> None:
    write_atomic(path, (line + "\n" for line in lines))


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ---------------------------------------------------------------- reading a run directory


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


def recorded_source(manifest: Mapping[str, Any]) -> Path | None:
    """The dataset a run read, if it is still there."""
    recorded = (manifest.get("data") or {}).get("source")
    return Path(str(recorded)) if recorded and Path(str(recorded)).exists() else None
