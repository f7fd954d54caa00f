"""Bad data gives one line naming the file, the record and the field, and exit code 2."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from benchmark.cli import main
from benchmark.data import DataError, load

PAIRS = Path("Pairwise_set/Helpfulness/Code/Documentation.json")
BONS = Path("BoN_set/Helpfulness/Code/Documentation.json")


def _real(rmb_dir: Path, rel: Path) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = json.loads((rmb_dir / rel).read_bytes())
    return copy.deepcopy(records[:6])


def _stats_error(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    code = main(["data", "stats", "--data", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # one line, no traceback
    assert lines[0].startswith("rmb: error: ")
    return lines[0]


Edit = Callable[[list[dict[str, Any]]], None]


def _drop_chosen(rs: list[dict[str, Any]]) -> None:
    del rs[3]["chosen"]


def _empty_losers(rs: list[dict[str, Any]]) -> None:
    rs[2]["loser_list"] = []


def _ends_with_assistant(rs: list[dict[str, Any]]) -> None:
    rs[4]["conversation_input"].append({"role": "assistant", "content": "sure"})


def _answer_not_string(rs: list[dict[str, Any]]) -> None:
    rs[1]["reject"]["answer"] = 42


def _conversation_not_list(rs: list[dict[str, Any]]) -> None:
    rs[0]["conversation_input"] = "hello"


def _loser_not_object(rs: list[dict[str, Any]]) -> None:
    rs[5]["loser_list"][1] = "an answer"


def _bad_role(rs: list[dict[str, Any]]) -> None:
    rs[2]["conversation_input"][0]["role"] = "human"


def _duplicate_uid(rs: list[dict[str, Any]]) -> None:
    rs[5]["pair_uid"] = rs[1]["pair_uid"]


@pytest.mark.parametrize(
    ("rel", "edit", "index", "field", "what"),
    [
        (PAIRS, _drop_chosen, 3, "'chosen'", "missing"),
        (BONS, _empty_losers, 2, "'loser_list'", "non-empty list"),
        (
            PAIRS,
            _ends_with_assistant,
            4,
            "'conversation_input'",
            "last message must be from the user",
        ),
        (PAIRS, _answer_not_string, 1, "'reject.answer'", "expected a string, got int"),
        (PAIRS, _conversation_not_list, 0, "'conversation_input'", "non-empty list"),
        (BONS, _loser_not_object, 5, "'loser_list[1]'", "got str"),
        (PAIRS, _bad_role, 2, "'conversation_input[0].role'", "'human'"),
        (PAIRS, _duplicate_uid, 5, "'pair_uid'", "duplicate uid, first in"),
    ],
)
def test_bad_record_through_cli(
    tmp_path: Path,
    rmb_dir: Path,
    capsys: pytest.CaptureFixture[str],
    rel: Path,
    edit: Edit,
    index: int,
    field: str,
    what: str,
) -> None:
    records = _real(rmb_dir, rel)
    edit(records)
    uid = records[index].get("pair_uid") or records[index].get("bon_uid")
    path = tmp_path / "RMB_dataset" / rel
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(records))
    line = _stats_error(tmp_path / "RMB_dataset", capsys)
    assert str(path) in line
    assert f"record {index} (uid {uid})" in line
    assert f"field {field}" in line
    assert what in line


def test_truncated_file(tmp_path: Path, rmb_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = (rmb_dir / PAIRS).read_bytes()
    path = tmp_path / "cut.json"
    path.write_bytes(raw[: len(raw) // 2])
    line = _stats_error(path, capsys)
    assert str(path) in line and "not valid JSON" in line and "truncated" in line


def test_jsonl_names_the_line(tmp_path: Path, rmb_dir: Path) -> None:
    records = _real(rmb_dir, PAIRS)
    del records[2]["reject"]
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records[:2]) + "\n\n" + json.dumps(records[2]))
    with pytest.raises(
        DataError, match=r"mine\.jsonl: line 4 \(uid \d+\): field 'reject': missing"
    ):
        load(path)


def test_duplicate_across_files(tmp_path: Path, rmb_dir: Path) -> None:
    records = _real(rmb_dir, PAIRS)
    a = tmp_path / "Pairwise_set" / "Helpfulness" / "Code" / "Documentation.json"
    b = tmp_path / "Pairwise_set" / "Helpfulness" / "Code" / "Other.json"
    a.parent.mkdir(parents=True)
    a.write_text(json.dumps(records[:3]))
    b.write_text(json.dumps(records[2:4]))
    with pytest.raises(DataError) as e:
        load(tmp_path)
    msg = str(e.value)
    # sorted file order: Documentation.json is read first
    assert msg.startswith(f"{b}: record 0 (uid {records[2]['pair_uid']}): field 'pair_uid'")
    assert f"first in {a} record 2" in msg


def test_not_a_list_and_missing_path(tmp_path: Path) -> None:
    path = tmp_path / "obj.json"
    path.write_text('{"pair_uid": "1"}')
    with pytest.raises(DataError, match="expected a JSON list of records, got dict"):
        load(path)
    with pytest.raises(DataError, match="no such file or directory"):
        load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no RMB files found"):
        load(tmp_path / "empty")


def test_console_script_exit_code_without_traceback(tmp_path: Path, rmb_dir: Path) -> None:
    records = _real(rmb_dir, BONS)
    records[1]["bon_best"] = None
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(records))
    rmb = Path(sys.executable).with_name("rmb")
    r = subprocess.run(
        [str(rmb), "data", "stats", "--data", str(path)], capture_output=True, text=True
    )
    assert r.returncode == 2
    assert r.stderr.strip() == (
        f"rmb: error: {path}: record 1 (uid {records[1]['bon_uid']}): field 'bon_best': missing"
    )
    assert r.stdout == ""
