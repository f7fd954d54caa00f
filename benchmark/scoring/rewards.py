"""`rmb score-rewards FILE`: score a classifier reward model from its per-item rewards, with the
same rules and tables as generative judges, so both share one table as in the RMB paper.

The file is a JSON list or JSONL. Pairwise records are the RMB authors' eval output
(`eval/scripts/my_run_rm.py`): `pair_uid`, `chosen_reward`, `reject_reward` (their custom
pairwise classifiers write null rewards and only `is_correct`, which is then used). Best-of-N
records: `bon_uid`, `bon_best_reward` (or `best_reward`) and `loser_rewards`, one per loser in
the dataset's `loser_list` order. An item is correct when the preferred answer's reward is
strictly above every other; equal rewards are a tie (0 under `strict`, 1/k under `half`)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.data import BoNItem, Item, load
from benchmark.data.fetch import default_data_source
from benchmark.scoring import ItemResult, Scores, Ties, aggregate, rank_score
from judges.errors import UserError


class RewardsError(UserError):
    """A rewards file or record that cannot be scored."""


def _records(path: Path) -> Iterator[tuple[str, Any]]:
    """(where, record) pairs; `where` names the line or list index for error messages."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise RewardsError(f"{path}: cannot read: {e.strerror or e}") from None
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise RewardsError(f"{path}: not valid JSON at line {e.lineno} ({e.msg})") from None
        for i, rec in enumerate(data):
            yield f"{path}: record {i}", rec
        return
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield f"{path}: line {i}", json.loads(line)
        except json.JSONDecodeError as e:
            raise RewardsError(f"{path}: line {i}: not valid JSON ({e.msg})") from None


def _number(rec: Mapping[str, Any], key: str, where: str) -> float | None:
    v = rec.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise RewardsError(f"{where}: field '{key}': expected a number, got {type(v).__name__}")
    return float(v)


def _uid(rec: Any, where: str) -> str:
    if not isinstance(rec, dict):
        raise RewardsError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    for key, prefix in (("pair_uid", "pair"), ("bon_uid", "bon")):
        raw = rec.get(key)
        if isinstance(raw, str | int) and not isinstance(raw, bool):
            return f"{prefix}:{raw}"
    raise RewardsError(f"{where}: needs 'pair_uid' or 'bon_uid'")


def item_result(item: Item, rec: Mapping[str, Any], where: str, ties: Ties) -> ItemResult:
    """One record's score under the shared rules; unusable rewards are invalid (scored 0)."""
    best: float | None
    others: list[float | None]
    if isinstance(item, BoNItem):
        best = _number(rec, "bon_best_reward", where)
        if best is None:
            best = _number(rec, "best_reward", where)
        losers = rec.get("loser_rewards")
        if losers is not None and (not isinstance(losers, list) or len(losers) != len(item.losers)):
            raise RewardsError(
                f"{where}: field 'loser_rewards': expected a list of {len(item.losers)} "
                f"numbers (one per loser of {item.uid})"
            )
        others = [_number({"loser_rewards": x}, "loser_rewards", where) for x in losers or []]
    else:
        best = _number(rec, "chosen_reward", where)
        others = [_number(rec, "reject_reward", where)]
    known = [o for o in others if o is not None]
    tied, reason = False, ""
    if best is not None and known and len(known) == len(others):
        value = rank_score(best, known, ties)
        tied = best == max(known)
    elif not isinstance(item, BoNItem) and isinstance(rec.get("is_correct"), int | bool):
        # the authors' custom pairwise classifiers record only the outcome
        value = float(bool(rec["is_correct"]))
    else:
        value, reason = 0.0, "missing reward"
    return ItemResult(
        uid=item.uid,
        category=item.category,
        kind="reward",
        score=value,
        invalid=bool(reason),
        comparisons=1,
        ties=int(tied),
        invalid_comparisons=int(bool(reason)),
        reasons=(reason,) if reason else (),
    )


def score_rewards(
    records: Sequence[tuple[str, Any]],
    items: Sequence[Item],
    *,
    ties: Ties = "strict",
    bootstrap: int = 1000,
    seed: int = 0,
) -> tuple[Scores, list[str]]:
    by_uid = {it.uid: it for it in items}
    results: dict[str, ItemResult] = {}
    unknown: list[tuple[str, str]] = []
    for where, rec in records:
        uid = _uid(rec, where)
        item = by_uid.get(uid)
        if item is None:
            unknown.append((where, uid))
            continue
        if uid in results:
            raise RewardsError(f"{where}: {uid} appears more than once")
        results[uid] = item_result(item, rec, where, ties)
    warnings = []
    if unknown:
        where, uid = unknown[0]
        if not results:
            raise RewardsError(f"{where}: {uid} is not in the dataset (is --data the right one?)")
        # e.g. the authors' results cover the 3 RMB files the public dataset lacks
        warnings.append(
            f"{len(unknown):,} records name items not in the dataset and are skipped "
            f"(first: {where}: {uid})"
        )
    if len(results) < len(by_uid):
        warnings.append(f"{len(by_uid) - len(results):,} dataset items have no reward (not scored)")
    ordered = [results[it.uid] for it in items if it.uid in results]
    return aggregate(ordered, ties=ties, bootstrap=bootstrap, seed=seed), warnings


@dataclass
class RewardsOutcome:
    label: str
    scores: Scores
    warnings: list[str] = field(default_factory=list)
    # what a report of it needs: the items scored and the manifest it writes
    items: list[Item] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)


def score_rewards_file(
    path: Path,
    *,
    data: Path | None = None,
    name: str | None = None,
    ties: Ties = "strict",
    bootstrap: int = 1000,
    seed: int = 0,
) -> RewardsOutcome:
    data = data or default_data_source()
    items = load(data)
    scores, warnings = score_rewards(
        list(_records(path)), items, ties=ties, bootstrap=bootstrap, seed=seed
    )
    label = name or path.stem
    manifest = {
        "run_id": path.name,
        "status": "rewards file",
        "judge": label,
        "data": {"source": str(data), "items": len(items)},
        "plan": {"orders": "n/a", "bon_strategy": "rewards", "samples": 1},
        "ties": ties,
    }
    return RewardsOutcome(label, scores, warnings, items, manifest)
