"""One RMB record (JSON object) to an item, with validation that names the file, the record
and the field; and the quirks of records that are kept anyway."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.perf import TextPool, intern
from judges.base import Message, Role

from .items import BoNItem, Category, DataError, Item, PairwiseItem, Response

_ROLES: dict[str, Role] = {"user": "user", "assistant": "assistant", "system": "system"}


def record_label(file: Path | str, index: int) -> str:
    # JSONL records are named by line (what an editor shows), JSON records by list index
    return f"line {index + 1}" if str(file).endswith(".jsonl") else f"record {index}"


def record_error(file: Path | str, index: int, uid: Any, field: str, what: str) -> DataError:
    who = record_label(file, index)
    if uid is not None:
        who += f" (uid {uid})"
    return DataError(f"{file}: {who}: field '{field}': {what}")


def kind_of(v: Any) -> str:
    return "null" if v is None else type(v).__name__


class _Where:
    """Where a record came from; builds the one-line error only when one is needed."""

    __slots__ = ("file", "index", "uid")

    def __init__(self, file: Path | str, index: int, uid: Any) -> None:
        self.file, self.index, self.uid = file, index, uid

    def error(self, field: str, what: str) -> DataError:
        return record_error(self.file, self.index, self.uid, field, what)

    def missing_or_type(
        self, obj: dict[str, Any], key: str, field: str, expected: str
    ) -> DataError:
        what = "missing" if key not in obj else f"expected {expected}, got {kind_of(obj[key])}"
        return self.error(field, what)


def _response(obj: Any, field: str, where: _Where, texts: TextPool) -> Response:
    if type(obj) is not dict:
        what = "missing" if obj is None else f"expected an object with 'answer', got {kind_of(obj)}"
        raise where.error(field, what)
    answer = obj.get("answer")
    if type(answer) is not str:
        raise where.missing_or_type(obj, "answer", f"{field}.answer", "a string")
    name = obj.get("llm_name", "")
    return Response(intern(name), texts.setdefault(answer, answer))


def _conversation(obj: Any, where: _Where, texts: TextPool) -> tuple[Message, ...]:
    if type(obj) is not list or not obj:
        what = "missing" if obj is None else "expected a non-empty list of messages"
        raise where.error("conversation_input", what)
    out = []
    for i, m in enumerate(obj):
        if type(m) is not dict:
            raise where.error(f"conversation_input[{i}]", f"expected an object, got {kind_of(m)}")
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
def category_of(path: str) -> Category:
    # every record of a file repeats the same category_path: parse each one once
    return Category.parse(path)


def parse_record(
    rec: Any,
    file: Path | str,
    index: int,
    category_path: str | None = None,
    texts: TextPool | None = None,
) -> Item:
    """One RMB record (pairwise: pair_uid/chosen/reject; BoN: bon_uid/bon_best/loser_list).

    `category_path` is used when the record has none (e.g. taken from the file's location);
    `texts`, shared across records, keeps one copy of each repeated text."""
    if texts is None:
        texts = {}
    if type(rec) is not dict:
        raise record_error(
            file, index, None, "(record)", f"expected a JSON object, got {kind_of(rec)}"
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
        category = category_of(cat_path)
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
    free): counted and listed by `rmb data stats`, never fatal. TextPool are compared stripped."""

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
