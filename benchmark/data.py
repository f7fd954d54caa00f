"""RMB items in: typed records, loading from a dataset directory, one RMB JSON file or JSONL,
validation that names the file, the record and the field, and seeded, stable selection."""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from judges.base import Message
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


Item = PairwiseItem | BoNItem
PREFERRED = {"chosen", "best"}  # the candidate id a correct judge prefers


# ---------------------------------------------------------------- parsing records


def _record_error(file: Path | str, index: int, uid: Any, field: str, what: str) -> DataError:
    who = f"record {index}" + (f" (uid {uid})" if uid is not None else "")
    return DataError(f"{file}: {who}: field '{field}': {what}")


def _text(rec: dict[str, Any], key: str, fail: Any) -> str:
    v = rec.get(key)
    if not isinstance(v, str):
        raise fail(key, "missing" if v is None else f"expected a string, got {type(v).__name__}")
    return v


def _response(obj: Any, field: str, fail: Any) -> Response:
    if not isinstance(obj, dict):
        raise fail(field, "missing" if obj is None else f"expected an object with 'answer', got {type(obj).__name__}")
    answer = obj.get("answer")
    if not isinstance(answer, str):
        raise fail(f"{field}.answer", "missing" if answer is None else f"expected a string, got {type(answer).__name__}")
    name = obj.get("llm_name", "")
    return Response(model=name if isinstance(name, str) else str(name), text=answer)


def _conversation(obj: Any, fail: Any) -> tuple[Message, ...]:
    if not isinstance(obj, list) or not obj:
        raise fail("conversation_input", "expected a non-empty list of messages")
    out = []
    for i, m in enumerate(obj):
        f = f"conversation_input[{i}]"
        if not isinstance(m, dict):
            raise fail(f, f"expected an object, got {type(m).__name__}")
        role, content = m.get("role"), m.get("content")
        if role not in ("user", "assistant", "system"):
            raise fail(f"{f}.role", f"expected 'user' or 'assistant', got {role!r}")
        if not isinstance(content, str):
            raise fail(f"{f}.content", "missing" if content is None else f"expected a string, got {type(content).__name__}")
        out.append(Message(role, content))
    if out[-1].role != "user":
        raise fail("conversation_input", "the last message must be from the user")
    return tuple(out)


def parse_record(rec: Any, file: Path | str, index: int, category_path: str | None = None) -> Item:
    """One RMB record (pairwise: pair_uid/chosen/reject; BoN: bon_uid/bon_best/loser_list)."""
    if not isinstance(rec, dict):
        raise DataError(f"{file}: record {index}: expected a JSON object, got {type(rec).__name__}")
    is_bon = "bon_uid" in rec or "bon_best" in rec or "loser_list" in rec
    uid_key = "bon_uid" if is_bon else "pair_uid"
    raw_uid = rec.get(uid_key)

    def fail(field: str, what: str) -> DataError:
        return _record_error(file, index, raw_uid, field, what)

    if not isinstance(raw_uid, str | int) or isinstance(raw_uid, bool):
        raise fail(uid_key, "missing" if raw_uid is None else f"expected a string, got {type(raw_uid).__name__}")
    cat_path = rec.get("category_path", category_path)
    if not isinstance(cat_path, str):
        raise fail("category_path", "missing" if cat_path is None else "expected a string")
    try:
        category = Category.parse(cat_path)
    except ValueError as e:
        raise fail("category_path", str(e)) from None
    if (category.set == "bon") != is_bon:
        raise fail("category_path", f"{cat_path!r} does not match a {'BoN' if is_bon else 'pairwise'} record")
    conversation = _conversation(rec.get("conversation_input"), fail)
    if is_bon:
        best = _response(rec.get("bon_best"), "bon_best", fail)
        losers_raw = rec.get("loser_list")
        if not isinstance(losers_raw, list) or not losers_raw:
            raise fail("loser_list", "missing" if losers_raw is None else "expected a non-empty list")
        losers = tuple(_response(r, f"loser_list[{i}]", fail) for i, r in enumerate(losers_raw))
        return BoNItem(f"bon:{raw_uid}", category, conversation, best, losers)
    chosen = _response(rec.get("chosen"), "chosen", fail)
    rejected = _response(rec.get("reject"), "reject", fail)
    return PairwiseItem(f"pair:{raw_uid}", category, conversation, chosen, rejected)


# ---------------------------------------------------------------- loading files


def _records_of(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None
    if path.suffix == ".jsonl":
        for i, line in enumerate(raw.decode("utf-8", errors="replace").splitlines()):
            if not line.strip():
                continue
            try:
                yield i, json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}: line {i + 1}: not valid JSON ({e.msg})") from None
        return
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        raise DataError(
            f"{path}: not valid JSON at line {e.lineno} column {e.colno} ({e.msg}); is the file truncated?"
        ) from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    yield from enumerate(data)


def load_file(path: Path, category_path: str | None = None) -> list[Item]:
    return [parse_record(r, path, i, category_path) for i, r in _records_of(path)]


def dataset_files(root: Path) -> list[Path]:
    """The RMB files under a directory laid out like RMB_dataset/ (or its parent)."""
    if (root / "RMB_dataset").is_dir():
        root = root / "RMB_dataset"
    files = sorted(p for d in _SET_DIRS if (root / d).is_dir() for p in (root / d).rglob("*.json"))
    if not files:
        raise DataError(f"{root}: no RMB files found (expected Pairwise_set/ and BoN_set/ inside)")
    return files


def load(source: Path | str) -> list[Item]:
    """Load every item from a dataset directory, one RMB JSON file, or a JSONL file."""
    source = Path(source)
    if not source.exists():
        raise DataError(f"{source}: no such file or directory")
    if source.is_dir():
        items: list[Item] = []
        for f in dataset_files(source):
            items.extend(load_file(f))
        _check_unique(items, source)
        return items
    items = load_file(source)
    _check_unique(items, source)
    return items


def _check_unique(items: Sequence[Item], source: Path) -> None:
    seen: set[str] = set()
    for it in items:
        if it.uid in seen:
            raise DataError(f"{source}: uid {it.uid} appears more than once")
        seen.add(it.uid)


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

    def apply(self, items: Iterable[Item]) -> list[Item]:
        def match(patterns: tuple[str, ...], value: str) -> bool:
            return not patterns or any(fnmatch.fnmatch(value.lower(), p.lower()) for p in patterns)

        kept = [
            it
            for it in items
            if it.category.set in self.sets
            and it.category.goal in self.goals
            and match(self.tasks, it.category.task)
            and match(self.scenarios, it.category.scenario)
        ]
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
