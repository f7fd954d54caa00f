"""RMB items in: typed records, loading from a dataset directory, one RMB JSON file or JSONL,
validation that names the file, the record and the field, and seeded, stable selection."""

from __future__ import annotations

import contextlib
import ctypes
import fnmatch
import functools
import gc
import hashlib
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

# orjson parses the 93 MB of RMB JSON about twice as fast as the json module; that is most
# of the load time
import orjson

from judges.base import Message, Role
from judges.errors import UserError

SetName = Literal["pairwise", "bon"]
Goal = Literal["helpfulness", "harmlessness"]
SUBSETS = (
    ("helpfulness", "bon"),
    ("helpfulness", "pairwise"),
    ("harmlessness", "bon"),
    ("harmlessness", "pairwise"),
)
_SET_DIRS = {"Pairwise_set": "pairwise", "BoN_set": "bon"}
_GOAL_DIRS = {"Helpfulness": "helpfulness", "Harmlessness": "harmlessness"}


class DataError(UserError):
    """A dataset file or record that cannot be used."""


@dataclass(frozen=True, slots=True)
class Category:
    set: SetName
    goal: Goal
    task: str
    scenario: str

    @classmethod
    def parse(cls, path: str) -> Category:
        """`Pairwise_set/Helpfulness/Code/Data Management` or `BoN_set/Harmlessness/S1`
        (harmlessness has no task level: task = scenario)."""
        parts = path.strip("/").split("/")
        if len(parts) not in (3, 4) or parts[0] not in _SET_DIRS or parts[1] not in _GOAL_DIRS:
            raise ValueError(
                f"category_path {path!r} is not like 'Pairwise_set|BoN_set/Helpfulness|Harmlessness/[Task/]Scenario'"
            )
        scenario = parts[-1]
        task = parts[2] if len(parts) == 4 else scenario
        return cls(_SET_DIRS[parts[0]], _GOAL_DIRS[parts[1]], task, scenario)  # type: ignore[arg-type]

    @property
    def subset(self) -> str:
        """The paper's column name: 'Helpfulness BoN', 'Harmlessness Pairwise', ..."""
        return f"{self.goal.capitalize()} {'BoN' if self.set == 'bon' else 'Pairwise'}"

    @property
    def path(self) -> str:
        set_dir = "BoN_set" if self.set == "bon" else "Pairwise_set"
        mid = f"/{self.task}" if self.goal == "helpfulness" else ""
        return f"{set_dir}/{self.goal.capitalize()}{mid}/{self.scenario}"


@dataclass(frozen=True, slots=True)
class Response:
    model: str
    text: str


@dataclass(frozen=True, slots=True)
class PairwiseItem:
    uid: str
    category: Category
    conversation: tuple[Message, ...]
    chosen: Response
    rejected: Response

    def candidates(self) -> dict[str, Response]:
        """Candidate ids (as plans and reports name them) to responses; the preferred one first."""
        return {"chosen": self.chosen, "rejected": self.rejected}

    def without_texts(self) -> PairwiseItem:
        """The item with its texts emptied: all that scoring reads (see `outline`)."""
        return replace(
            self, conversation=(), chosen=_outline(self.chosen), rejected=_outline(self.rejected)
        )


@dataclass(frozen=True, slots=True)
class BoNItem:
    uid: str
    category: Category
    conversation: tuple[Message, ...]
    best: Response
    losers: tuple[Response, ...]

    def candidates(self) -> dict[str, Response]:
        out = {"best": self.best}
        out.update({f"loser{i + 1}": r for i, r in enumerate(self.losers)})
        return out

    def without_texts(self) -> BoNItem:
        """The item with its texts emptied: all that scoring reads (see `outline`)."""
        return replace(
            self,
            conversation=(),
            best=_outline(self.best),
            losers=tuple(map(_outline, self.losers)),
        )


Item = PairwiseItem | BoNItem


def _outline(r: Response) -> Response:
    return Response(r.model, "")


def outline(items: Iterable[Item]) -> list[Item]:
    """Items without their texts (uids, categories, candidate ids and models kept). Once a run
    has its answers, scoring needs no text: the full RMB's texts are 43 MB of its peak memory.
    Drop the full items, then call `return_freed_memory`."""
    return [it.without_texts() for it in items]


def return_freed_memory() -> None:
    """Give the heap pages just freed back to the OS (glibc): the texts were malloc'd one by one,
    and Python's own allocator takes new memory from fresh arenas, never from those pages."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL(None).malloc_trim(0)


PREFERRED = {"chosen", "best"}  # the candidate id a correct judge prefers


# ---------------------------------------------------------------- parsing records

_ROLES: dict[str, Role] = {"user": "user", "assistant": "assistant", "system": "system"}


def _label(file: Path | str, index: int) -> str:
    # JSONL records are named by line (what an editor shows), JSON records by list index
    return f"line {index + 1}" if str(file).endswith(".jsonl") else f"record {index}"


def _record_error(file: Path | str, index: int, uid: Any, field: str, what: str) -> DataError:
    who = _label(file, index)
    if uid is not None:
        who += f" (uid {uid})"
    return DataError(f"{file}: {who}: field '{field}': {what}")


def _kind(v: Any) -> str:
    return "null" if v is None else type(v).__name__


class _Where:
    """Where a record came from; builds the one-line error only when one is needed."""

    __slots__ = ("file", "index", "uid")

    def __init__(self, file: Path | str, index: int, uid: Any) -> None:
        self.file, self.index, self.uid = file, index, uid

    def error(self, field: str, what: str) -> DataError:
        return _record_error(self.file, self.index, self.uid, field, what)

    def missing_or_type(
        self, obj: dict[str, Any], key: str, field: str, expected: str
    ) -> DataError:
        what = "missing" if key not in obj else f"expected {expected}, got {_kind(obj[key])}"
        return self.error(field, what)


# Text -> the one copy kept: in RMB 70 of 111 MB of texts repeat an earlier one (the same
# prompt and answers across pairs and BoN lists), so a load shares them (see _load_dataset).
Texts = dict[str, str]


def _response(obj: Any, field: str, where: _Where, texts: Texts) -> Response:
    if type(obj) is not dict:
        what = "missing" if obj is None else f"expected an object with 'answer', got {_kind(obj)}"
        raise where.error(field, what)
    answer = obj.get("answer")
    if type(answer) is not str:
        raise where.missing_or_type(obj, "answer", f"{field}.answer", "a string")
    name = obj.get("llm_name", "")
    # a few dozen model names repeat across 50k responses: share one string each
    return Response(
        sys.intern(name if type(name) is str else str(name)), texts.setdefault(answer, answer)
    )


def _conversation(obj: Any, where: _Where, texts: Texts) -> tuple[Message, ...]:
    if type(obj) is not list or not obj:
        what = "missing" if obj is None else "expected a non-empty list of messages"
        raise where.error("conversation_input", what)
    out = []
    for i, m in enumerate(obj):
        if type(m) is not dict:
            raise where.error(f"conversation_input[{i}]", f"expected an object, got {_kind(m)}")
        raw_role = m.get("role")
        # a list or object as role must be an error, not a TypeError from the dict lookup
        role = _ROLES.get(raw_role) if type(raw_role) is str else None
        content = m.get("content")
        if role is None:
            what = f"expected 'user', 'assistant' or 'system', got {m.get('role')!r}"
            raise where.error(f"conversation_input[{i}].role", what)
        if type(content) is not str:
            raise where.missing_or_type(
                m, "content", f"conversation_input[{i}].content", "a string"
            )
        out.append(Message(role, texts.setdefault(content, content)))
    if out[-1].role != "user":
        raise where.error(
            "conversation_input",
            f"the last message must be from the user, got {out[-1].role!r}",
        )
    return tuple(out)


@functools.lru_cache(maxsize=4096)
def _category(path: str) -> Category:
    # every record of a file repeats the same category_path: parse each one once
    return Category.parse(path)


def parse_record(
    rec: Any,
    file: Path | str,
    index: int,
    category_path: str | None = None,
    texts: Texts | None = None,
) -> Item:
    """One RMB record (pairwise: pair_uid/chosen/reject; BoN: bon_uid/bon_best/loser_list).

    `category_path` is used when the record has none (e.g. taken from the file's location);
    `texts`, shared across records, keeps one copy of each repeated text."""
    if texts is None:
        texts = {}
    if type(rec) is not dict:
        raise _record_error(
            file, index, None, "(record)", f"expected a JSON object, got {_kind(rec)}"
        )
    is_bon = "bon_uid" in rec or "bon_best" in rec or "loser_list" in rec
    uid_key = "bon_uid" if is_bon else "pair_uid"
    raw_uid = rec.get(uid_key)
    where = _Where(file, index, raw_uid)
    if type(raw_uid) is not str and type(raw_uid) is not int:
        raise where.missing_or_type(rec, uid_key, uid_key, "a string")
    cat_path = rec.get("category_path", category_path)
    if type(cat_path) is not str:
        raise where.error("category_path", "missing" if cat_path is None else "expected a string")
    try:
        category = _category(cat_path)
    except ValueError as e:
        raise where.error("category_path", str(e)) from None
    if (category.set == "bon") != is_bon:
        kind = "a BoN" if is_bon else "a pairwise"
        raise where.error("category_path", f"{cat_path!r} does not match {kind} record")
    conversation = _conversation(rec.get("conversation_input"), where, texts)
    if is_bon:
        best = _response(rec.get("bon_best"), "bon_best", where, texts)
        losers_raw = rec.get("loser_list")
        if type(losers_raw) is not list or not losers_raw:
            what = "missing" if losers_raw is None else "expected a non-empty list of responses"
            raise where.error("loser_list", what)
        losers = tuple(
            _response(r, f"loser_list[{i}]", where, texts) for i, r in enumerate(losers_raw)
        )
        return BoNItem(f"bon:{raw_uid}", category, conversation, best, losers)
    chosen = _response(rec.get("chosen"), "chosen", where, texts)
    rejected = _response(rec.get("reject"), "reject", where, texts)
    return PairwiseItem(f"pair:{raw_uid}", category, conversation, chosen, rejected)


# ---------------------------------------------------------------- data quirks


QUIRK_KINDS = {
    "same_text": "chosen and rejected answers have the same text",
    "loser_is_best": "a loser has the same text as the best answer",
    "empty_answer": "an answer is empty",
    "empty_turn": "a conversation message is empty",
}


@dataclass(frozen=True, slots=True)
class Quirk:
    """Something odd in a record that is kept anyway (a judge cannot be right on it, or it is
    free): counted and listed by `rmb data stats`, never fatal. Texts are compared stripped."""

    kind: str  # a key of QUIRK_KINDS
    uid: str
    field: str


def find_quirks(items: Iterable[Item]) -> list[Quirk]:
    out: list[Quirk] = []
    for it in items:
        for i, m in enumerate(it.conversation):
            if not m.content.strip():
                out.append(Quirk("empty_turn", it.uid, f"conversation_input[{i}]"))
        if isinstance(it, PairwiseItem):
            chosen, rejected = it.chosen.text.strip(), it.rejected.text.strip()
            if chosen == rejected:
                out.append(Quirk("same_text", it.uid, "chosen/reject"))
            for field, text in (("chosen", chosen), ("reject", rejected)):
                if not text:
                    out.append(Quirk("empty_answer", it.uid, field))
        else:
            best = it.best.text.strip()
            if not best:
                out.append(Quirk("empty_answer", it.uid, "bon_best"))
            for i, loser in enumerate(it.losers):
                text = loser.text.strip()
                if text == best:
                    out.append(Quirk("loser_is_best", it.uid, f"loser_list[{i}]"))
                if not text:
                    out.append(Quirk("empty_answer", it.uid, f"loser_list[{i}]"))
    return out


# ---------------------------------------------------------------- the pinned RMB files


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
        raise DataError(f"{path}: expected a JSON list of records, got {_kind(data)}")
    yield from enumerate(data)


def _parse_file(
    path: Path, category_path: str | None, raw: bytes | None = None, texts: Texts | None = None
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
    files = sorted(p for d in _SET_DIRS if (root / d).is_dir() for p in (root / d).rglob("*.json"))
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
    return _record_error(
        path, index, raw_uid, field, f"duplicate uid, first in {first[0]} {_label(*first)}"
    )


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    # Loading makes ~1M small acyclic objects; each allocation burst triggers a full collection
    # that walks everything alive, so load time grew with what the process already held.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_dataset(
    source: Path | str, manifest: Manifest | None = None, *, only: Selection | None = None
) -> Dataset:
    """Load a dataset directory, one RMB JSON file, or a JSONL file, with its load report.

    `only`: in a directory, files whose records all belong to categories that selection
    excludes are not parsed (`skipped_files`): `only.apply(items)` is the same as with every
    file loaded, but a bad record or a duplicate uid in a skipped file goes unnoticed."""
    with _gc_paused():
        return _load_dataset(Path(source), manifest, only)


def _skippable(raw: bytes, location: str, only: Selection) -> bool:
    """True if every record in this file is of `location`'s category and `only` excludes it.

    A record's own category_path wins over the file's location, so the file is skipped only
    if each category_path key in its bytes (a key cannot occur unescaped inside a JSON string)
    says exactly `location`: counting substrings costs ~1/20 of parsing. Anything unusual
    (escapes, odd spacing, an unparseable location) just means the file is parsed."""
    try:
        category = _category(location)
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
    texts: Texts = {}  # one copy of each text across all files (~70 MB less for RMB)

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


# ---------------------------------------------------------------- selection


def stable_rank(seed: int, uid: str) -> str:
    """A seeded order that does not move when items are added or removed."""
    return hashlib.sha256(f"{seed}:{uid}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Selection:
    sets: tuple[SetName, ...] = ("pairwise", "bon")
    goals: tuple[Goal, ...] = ("helpfulness", "harmlessness")
    tasks: tuple[str, ...] = ()  # glob patterns; empty = all
    scenarios: tuple[str, ...] = ()  # glob patterns; empty = all
    per_scenario: int | None = None
    limit: int | None = None
    seed: int = 0

    def wants(self, category: Category) -> bool:
        """Whether the set/goal/task/scenario filters keep items of this category."""

        def match(patterns: tuple[str, ...], value: str) -> bool:
            return not patterns or any(fnmatch.fnmatch(value.lower(), p.lower()) for p in patterns)

        return (
            category.set in self.sets
            and category.goal in self.goals
            and match(self.tasks, category.task)
            and match(self.scenarios, category.scenario)
        )

    def apply(self, items: Iterable[Item]) -> list[Item]:
        wanted: dict[Category, bool] = {}  # ~100 categories among 50k items: match each once

        def keep(category: Category) -> bool:
            if category not in wanted:
                wanted[category] = self.wants(category)
            return wanted[category]

        kept = [it for it in items if keep(it.category)]
        kept.sort(key=lambda it: stable_rank(self.seed, it.uid))
        if self.per_scenario is not None:
            counts: dict[tuple[str, str, str], int] = {}
            picked = []
            for it in kept:
                k = (it.category.set, it.category.goal, it.category.scenario)
                if counts.get(k, 0) < self.per_scenario:
                    counts[k] = counts.get(k, 0) + 1
                    picked.append(it)
            kept = picked
        if self.limit is not None:
            kept = kept[: self.limit]
        # back to dataset order: reports and plans read naturally
        kept.sort(key=lambda it: (it.category.path, it.uid))
        return kept
