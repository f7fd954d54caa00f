"""Loading the real shared RMB copy: counts, absent files, the pinned manifest, quirks, stats."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from benchmark.cli import main
from benchmark.data import (
    BoNItem,
    Category,
    Dataset,
    PairwiseItem,
    load,
    load_dataset,
    pinned_manifest,
)


@pytest.fixture(scope="module")
def full(rmb_dir: Path) -> Dataset:
    return load_dataset(rmb_dir)


@pytest.fixture(scope="module")
def shared_manifest(rmb_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((rmb_dir.parent / "MANIFEST.json").read_text())
    return data


def test_full_shared_copy_counts(full: Dataset) -> None:
    items = full.items
    pairs = [i for i in items if isinstance(i, PairwiseItem)]
    bons = [i for i in items if isinstance(i, BoNItem)]
    assert len(pairs) == 14543
    assert len(bons) == 3786
    assert sum(len(b.losers) for b in bons) == 8714
    scen = {(i.category.goal, i.category.scenario) for i in items}
    assert len(scen) == 49
    assert Counter(g for g, _ in scen) == {"helpfulness": 37, "harmlessness": 12}
    tasks = {i.category.task for i in items if i.category.goal == "helpfulness"}
    assert len(tasks) == 12
    # conversations of 1, 3 or 5 messages, the user's last
    assert {len(i.conversation) for i in items} == {1, 3, 5}
    assert all(i.conversation[-1].role == "user" for i in items)


def test_absent_files_reported_not_fatal(full: Dataset, shared_manifest: dict[str, Any]) -> None:
    absent = {
        f["path"].removeprefix("RMB_dataset/") for f in shared_manifest["files"] if not f["present"]
    }
    assert len(absent) == 3
    assert set(full.absent_files) == absent
    assert all(p.startswith("Pairwise_set/") for p in full.absent_files)
    assert full.extra_files == ()
    assert full.count_mismatches == ()


def test_record_counts_match_shared_manifest(
    full: Dataset, shared_manifest: dict[str, Any]
) -> None:
    expected = {
        f["path"].removeprefix("RMB_dataset/"): f["records"]
        for f in shared_manifest["files"]
        if f["present"]
    }
    assert full.file_records == expected
    by_file = Counter(it.category.path + ".json" for it in full.items)
    assert dict(by_file) == expected


def test_packaged_manifest_is_the_shared_one(shared_manifest: dict[str, Any]) -> None:
    pinned = pinned_manifest()
    assert pinned.commit == shared_manifest["commit"]
    assert pinned.repo == "Zhou-Zoey/RMB-Reward-Model-Benchmark"
    assert {(f"RMB_dataset/{f.path}", f.git_blob_sha1, f.records) for f in pinned.files} == {
        (f["path"], f["git_blob_sha1"], f.get("records")) for f in shared_manifest["files"]
    }
    assert len(pinned.files) == 98


def test_quirks_are_real(full: Dataset) -> None:
    by_uid = {it.uid: it for it in full.items}
    kinds = Counter(q.kind for q in full.quirks)
    # the shared copy has each kind at least once
    assert set(kinds) == {"same_text", "loser_is_best", "empty_answer", "empty_turn"}
    for q in full.quirks:
        it = by_uid[q.uid]
        if q.kind == "same_text":
            assert isinstance(it, PairwiseItem)
            assert it.chosen.text.strip() == it.rejected.text.strip()
        elif q.kind == "loser_is_best":
            assert isinstance(it, BoNItem)
            i = int(q.field.removeprefix("loser_list[").rstrip("]"))
            assert it.losers[i].text.strip() == it.best.text.strip()
        elif q.kind == "empty_answer":
            texts = it.candidates()
            name = {"reject": "rejected", "bon_best": "best"}.get(q.field, q.field)
            if name.startswith("loser_list["):
                name = f"loser{int(name[11:-1]) + 1}"
            assert texts[name].text.strip() == ""
        else:
            i = int(q.field.removeprefix("conversation_input[").rstrip("]"))
            assert it.conversation[i].content.strip() == ""
    # and finds every identical pair: an independent count over the items
    same = sum(
        isinstance(it, PairwiseItem) and it.chosen.text.strip() == it.rejected.text.strip()
        for it in full.items
    )
    assert kinds["same_text"] == same


def test_load_returns_the_items(rmb_dir: Path) -> None:
    one = rmb_dir / "BoN_set" / "Helpfulness" / "Code" / "Documentation.json"
    items = load(one)
    assert len(items) == len(json.loads(one.read_bytes()))
    assert {i.category.path for i in items} == {"BoN_set/Helpfulness/Code/Documentation"}
    ds = load_dataset(one)
    assert ds.absent_files == () and ds.file_records == {"Documentation.json": len(items)}


def test_directory_with_unknown_extra_file(tmp_path: Path, rmb_dir: Path) -> None:
    src = rmb_dir / "BoN_set" / "Harmlessness" / "S1.json"
    extra = tmp_path / "RMB_dataset" / "BoN_set" / "Harmlessness" / "S99.json"
    extra.parent.mkdir(parents=True)
    records = json.loads(src.read_bytes())[:4]
    for r in records:
        r["category_path"] = "BoN_set/Harmlessness/S99"
    extra.write_text(json.dumps(records))
    ds = load_dataset(tmp_path)  # the parent of RMB_dataset/ works too
    assert ds.extra_files == ("BoN_set/Harmlessness/S99.json",)
    assert len(ds.items) == 4 and {i.category.scenario for i in ds.items} == {"S99"}
    assert len(ds.absent_files) == 98


def test_jsonl_of_own_records_without_language(tmp_path: Path, rmb_dir: Path) -> None:
    records = json.loads((rmb_dir / "Pairwise_set" / "Harmlessness" / "S1.json").read_bytes())[:3]
    for r in records:
        for m in r["conversation_input"]:
            m.pop("language", None)
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    items = load(path)
    assert [i.uid for i in items] == [f"pair:{r['pair_uid']}" for r in records]


def test_category_parse() -> None:
    c = Category.parse("Pairwise_set/Helpfulness/Code/Data Management")
    assert (c.set, c.goal, c.task, c.scenario) == (
        "pairwise",
        "helpfulness",
        "Code",
        "Data Management",
    )
    h = Category.parse("BoN_set/Harmlessness/S1")
    assert (h.set, h.goal, h.task, h.scenario) == ("bon", "harmlessness", "S1", "S1")
    assert h.subset == "Harmlessness BoN"
    assert Category.parse(c.path) == c


def test_stats_json_on_shared_copy(rmb_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "stats", "--json", "--data", str(rmb_dir)]) == 0
    st = json.loads(capsys.readouterr().out)
    t = st["totals"]
    assert (t["pairs"], t["bon_lists"], t["bon_comparisons"]) == (14543, 3786, 8714)
    assert t["scenarios"] == 49
    assert t["scenarios_per_goal"] == {"harmlessness": 12, "helpfulness": 37}
    assert t["helpfulness_tasks"] == 12
    assert len(st["absent_files"]) == 3
    rows = {(r["goal"], r["scenario"]): r for r in st["scenarios"]}
    assert rows[("harmlessness", "S11")]["absent_sets"] == ["pairwise"]
    assert rows[("harmlessness", "S11")]["pairs"] == 0
    assert sum(r["pairs"] for r in st["scenarios"]) == 14543
    assert sum(c["bon_comparisons"] for c in st["subsets"].values()) == 8714
    assert 0 < t["multi_turn_share"] < 1
    assert sum(st["quirks"]["counts"].values()) == len(st["quirks"]["list"]) > 0


def test_stats_table_of_a_selection(rmb_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["data", "stats", "--data", str(rmb_dir), "--goal", "harmlessness", "--per-scenario", "2"]
    )
    out = capsys.readouterr().out
    assert code == 0
    lines = [line for line in out.splitlines() if line.startswith("│ harmlessness")]
    assert len(lines) == 12
    s11 = next(line for line in lines if " S11 " in line)
    assert "absent" in s11  # the pairwise S11 file the shared copy lacks
    assert "Pairwise_set/Harmlessness/S11.json" in out
    total = next(line for line in out.splitlines() if line.startswith("│ total"))
    assert (
        "12 scenarios" in total and " 22 " in total and " 24 " in total
    )  # 11 x 2 pairs, 12 x 2 lists
