"""RMB files in: the pinned list of the dataset's files, reading a dataset directory, one RMB
JSON file or JSONL into items, and the load report (absent, extra and skipped files)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

# orjson parses the 93 MB of RMB JSON about twice as fast as the json module; that is most
# of the load time
import orjson

from benchmark.perf import TextPool, gc_paused

from .items import SET_DIRS, DataError, Item
from .records import (
    Quirk,
    category_of,
    find_quirks,
    kind_of,
    parse_record,
    record_error,
    record_label,
)
from .selection import Selection


@dataclass(frozen=True, slots=True)
class ManifestFile:
    path: str  # inside the dataset directory: "Pairwise_set/Helpfulness/Code/Data Management.json"
    git_blob_sha1: str
    bytes: int | None = None
    records: int | None = None


@dataclass(frozen=True, slots=True)
class Manifest:
    """The dataset files of one commit of the RMB repository, with their git blob ids."""

    repo: str
    commit: str
    files: tuple[ManifestFile, ...]

    @classmethod
    def from_json(cls, data: Any, origin: str) -> Manifest:
        try:
            files = tuple(
                ManifestFile(
                    path=f["path"].removeprefix(f"{DATASET_DIR}/"),
                    git_blob_sha1=f["git_blob_sha1"],
                    bytes=f.get("bytes"),
                    records=f.get("records"),
                )
                for f in data["files"]
            )
            return cls(repo=data["repo"], commit=data["commit"], files=files)
        except (KeyError, TypeError, AttributeError) as e:
            raise DataError(
                f"{origin}: not an RMB manifest (needs repo, commit, files[].path/git_blob_sha1): {e!r}"
            ) from None

    @classmethod
    def read(cls, path: Path) -> Manifest:
        try:
            return cls.from_json(orjson.loads(path.read_bytes()), str(path))
        except OSError as e:
            raise DataError(f"{path}: cannot read manifest: {e.strerror or e}") from None
        except orjson.JSONDecodeError as e:
            raise DataError(f"{path}: manifest is not valid JSON ({e.msg})") from None

    def by_path(self) -> dict[str, ManifestFile]:
        return {f.path: f for f in self.files}


DATASET_DIR = "RMB_dataset"


@functools.cache
def pinned_manifest() -> Manifest:
    """The 98 files of the RMB commit this package is pinned to (benchmark/data/rmb_manifest.json)."""
    raw = resources.files("benchmark.data").joinpath("rmb_manifest.json").read_bytes()
    return Manifest.from_json(orjson.loads(raw), "benchmark/data/rmb_manifest.json")


# ---------------------------------------------------------------- loading files


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None


def _records_of(path: Path, raw: bytes | None = None) -> Iterator[tuple[int, Any]]:
    if raw is None:
        raw = _read(path)
    if path.suffix == ".jsonl":
        for i, line in enumerate(raw.splitlines()):
            if not line.strip():
                continue
            try:
                yield i, orjson.loads(line)
            except orjson.JSONDecodeError as e:
                raise DataError(f"{path}: line {i + 1}: not valid JSON ({e.msg})") from None
        return
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise DataError(
            f"{path}: not valid JSON at line {e.lineno} column {e.colno} ({e.msg}); is the file truncated?"
        ) from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of records, got {kind_of(data)}")
    yield from enumerate(data)


def _parse_file(
    path: Path, category_path: str | None, raw: bytes | None = None, texts: TextPool | None = None
) -> Iterator[tuple[int, Item]]:
    texts = {} if texts is None else texts
    for i, rec in _records_of(path, raw):
        yield i, parse_record(rec, path, i, category_path, texts)


def load_file(path: Path, category_path: str | None = None) -> list[Item]:
    return [item for _, item in _parse_file(path, category_path)]


def dataset_root(source: Path) -> Path:
    """A directory laid out like RMB_dataset/ (the directory itself or its parent)."""
    return source / DATASET_DIR if (source / DATASET_DIR).is_dir() else source


def dataset_files(root: Path) -> list[Path]:
    """The RMB files under a directory laid out like RMB_dataset/ (or its parent)."""
    root = dataset_root(root)
    files = sorted(p for d in SET_DIRS if (root / d).is_dir() for p in (root / d).rglob("*.json"))
    if not files:
        raise DataError(f"{root}: no RMB files found (expected Pairwise_set/ and BoN_set/ inside)")
    return files


@dataclass(frozen=True)
class Dataset:
    """What loading found: the items, and what a reader should know about where they came from.

    For a directory, file paths are relative to it (`Pairwise_set/Harmlessness/S1.json`) and are
    compared with the pinned RMB manifest; a single file or JSONL has no absent or extra files."""

    source: Path
    items: list[Item]
    file_records: dict[str, int]  # each loaded file -> its record count
    absent_files: tuple[str, ...] = ()  # in the pinned commit, not in the directory
    extra_files: tuple[str, ...] = ()  # loaded, but not in the pinned commit
    count_mismatches: tuple[str, ...] = ()  # "path: N records, pinned commit has M"
    quirks: tuple[Quirk, ...] = ()
    # not parsed: every record is of a category the selection excludes (see `only`)
    skipped_files: tuple[str, ...] = ()


def _duplicate_error(item: Item, path: Path, index: int, first: tuple[Path, int]) -> DataError:
    kind, raw_uid = item.uid.split(":", 1)
    field = f"{kind}_uid"
    return record_error(
        path, index, raw_uid, field, f"duplicate uid, first in {first[0]} {record_label(*first)}"
    )


def load_dataset(
    source: Path | str, manifest: Manifest | None = None, *, only: Selection | None = None
) -> Dataset:
    """Load a dataset directory, one RMB JSON file, or a JSONL file, with its load report.

    `only`: in a directory, files whose records all belong to categories that selection
    excludes are not parsed (`skipped_files`): `only.apply(items)` is the same as with every
    file loaded, but a bad record or a duplicate uid in a skipped file goes unnoticed."""
    with gc_paused():
        return _load_dataset(Path(source), manifest, only)


def _skippable(raw: bytes, location: str, only: Selection) -> bool:
    """True if every record in this file is of `location`'s category and `only` excludes it.

    A record's own category_path wins over the file's location, so the file is skipped only
    if each category_path key in its bytes (a key cannot occur unescaped inside a JSON string)
    says exactly `location`: counting substrings costs ~1/20 of parsing. Anything unusual
    (escapes, odd spacing, an unparseable location) just means the file is parsed."""
    try:
        category = category_of(location)
    except ValueError:
        return False
    if only.wants(category):
        return False
    value = orjson.dumps(location)
    keys = raw.count(b'"category_path"')
    return keys == raw.count(b'"category_path":' + value) + raw.count(b'"category_path": ' + value)


def _load_dataset(source: Path, manifest: Manifest | None, only: Selection | None) -> Dataset:
    if not source.exists():
        raise DataError(f"{source}: no such file or directory")
    seen: dict[str, tuple[Path, int]] = {}
    items: list[Item] = []
    file_records: dict[str, int] = {}
    texts: TextPool = {}  # one copy of each text across all files (~70 MB less for RMB)

    def add(path: Path, category_path: str | None, name: str, raw: bytes | None = None) -> None:
        n = 0
        for i, item in _parse_file(path, category_path, raw, texts):
            first = seen.setdefault(item.uid, (path, i))
            if first != (path, i):
                raise _duplicate_error(item, path, i, first)
            items.append(item)
            n += 1
        file_records[name] = n

    if not source.is_dir():
        add(source, None, source.name)
        return Dataset(source, items, file_records, quirks=tuple(find_quirks(items)))
    root = dataset_root(source)
    skipped: list[str] = []
    for path in dataset_files(root):
        rel = path.relative_to(root).as_posix()
        raw = None
        if only is not None:
            raw = _read(path)
            if _skippable(raw, rel.removesuffix(".json"), only):
                skipped.append(rel)
                continue
        add(path, rel.removesuffix(".json"), rel, raw)
    pinned = (manifest or pinned_manifest()).by_path()
    mismatches = tuple(
        f"{p}: {n} records, pinned commit has {pinned[p].records}"
        for p, n in file_records.items()
        if p in pinned and pinned[p].records is not None and pinned[p].records != n
    )
    return Dataset(
        source=root,
        items=items,
        file_records=file_records,
        absent_files=tuple(p for p in pinned if p not in file_records and p not in skipped),
        extra_files=tuple(p for p in file_records if p not in pinned),
        count_mismatches=mismatches,
        quirks=tuple(find_quirks(items)),
        skipped_files=tuple(skipped),
    )


def load(source: Path | str, only: Selection | None = None) -> list[Item]:
    """Load every item from a dataset directory, one RMB JSON file, or a JSONL file; with
    `only`, a directory's files that selection cannot keep are not parsed (see load_dataset)."""
    return load_dataset(source, only=only).items
