"""Loading with `only=selection` skips files the selection excludes, yet selects exactly the
items a full load does (same order, same content hash), on the real RMB and on odd directories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark.data import Dataset, Selection, load, load_dataset
from benchmark.rundir import items_hash

SELECTIONS = [
    Selection(sets=("pairwise",), limit=500),  # the bench's 1,000-comparison rerun
    Selection(sets=("bon",), goals=("harmlessness",), per_scenario=3, seed=5),
    Selection(tasks=("code",), scenarios=("*Data*",), limit=40, seed=2),
]


@pytest.fixture(scope="module")
def everything(rmb_dir: Path) -> Dataset:
    return load_dataset(rmb_dir)


@pytest.mark.parametrize("sel", SELECTIONS, ids=lambda s: repr(s)[:60])
def test_skipping_selects_the_same_items(
    rmb_dir: Path, everything: Dataset, sel: Selection
) -> None:
    ds = load_dataset(rmb_dir, only=sel)
    assert ds.skipped_files, "the selection excludes whole files: some must be skipped"
    assert ds.absent_files == everything.absent_files  # skipped is not absent
    assert not set(ds.skipped_files) & set(ds.file_records)
    picked = sel.apply(ds.items)
    expected = sel.apply(everything.items)
    assert [it.uid for it in picked] == [it.uid for it in expected]
    assert picked == expected
    assert items_hash(picked) == items_hash(expected)


def _rec(uid: str, category_path: str | None) -> dict[str, object]:
    rec: dict[str, object] = {
        "pair_uid": uid,
        "conversation_input": [{"role": "user", "content": "q"}],
        "chosen": {"llm_name": "a", "answer": "yes"},
        "reject": {"llm_name": "b", "answer": "no"},
    }
    if category_path is not None:
        rec["category_path"] = category_path
    return rec


def test_a_record_whose_category_differs_from_its_file_is_still_found(tmp_path: Path) -> None:
    """A record's own category_path wins over the file's location, so such a file is parsed."""
    code = tmp_path / "Pairwise_set/Helpfulness/Code/Data Management.json"
    chat = tmp_path / "Pairwise_set/Helpfulness/Chat/Casual Conversation.json"
    for f in (code, chat):
        f.parent.mkdir(parents=True)
    code.write_text(
        json.dumps(
            [
                _rec("1", "Pairwise_set/Helpfulness/Code/Data Management"),
                _rec("2", None),  # takes the file's location
                _rec("3", "Pairwise_set/Helpfulness/Chat/Casual Conversation"),
            ]
        )
    )
    chat.write_text(json.dumps([_rec("4", "Pairwise_set/Helpfulness/Chat/Casual Conversation")]))
    sel = Selection(tasks=("chat",))
    ds = load_dataset(tmp_path, only=sel)
    assert [it.uid for it in sel.apply(ds.items)] == ["pair:3", "pair:4"]
    assert ds.skipped_files == ()
    # once every record agrees with its location, the Code file is skipped
    code.write_text(json.dumps([_rec("1", None), _rec("2", None)], indent=1))
    ds = load_dataset(tmp_path, only=sel)
    assert ds.skipped_files == ("Pairwise_set/Helpfulness/Code/Data Management.json",)
    assert [it.uid for it in sel.apply(ds.items)] == ["pair:4"]
    assert sel.apply(ds.items) == sel.apply(load(tmp_path))
