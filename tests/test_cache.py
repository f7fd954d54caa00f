"""CacheStore: what is stored, what is not, maintenance, corruption, several processes at once."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from judges.base import (
    ChatRequest,
    Completion,
    JudgeIdentity,
    Message,
    TokenLogprob,
    Usage,
    cache_key,
)
from judges.cache import CacheError, CacheStore

ID = JudgeIdentity("openai", "gpt-4o", "")
OTHER = JudgeIdentity("openai", "judge-b", "http://127.0.0.1:9/v1")


def req(text: str, **kw: object) -> ChatRequest:
    return ChatRequest(messages=(Message("user", text),), model=ID.model, **kw)  # type: ignore[arg-type]


def answer(text: str = "Final verdict: [[A]]", **kw: object) -> Completion:
    return Completion(text=text, usage=Usage(100, 8), latency_s=0.2, created_at=time.time(), **kw)  # type: ignore[arg-type]


def test_roundtrip_keeps_the_raw_completion(tmp_path: Path) -> None:
    c = answer(
        logprobs=(TokenLogprob("A", -0.1, (("A", -0.1), ("B", -2.3))),),
        reasoning="thought",
        attempts=2,
    )
    k = cache_key(ID, req("q"))
    with CacheStore(tmp_path) as store:
        assert store.put_many([(k, ID, c)]) == 1
        assert store.get_many([k, "missing"]) == {k: c}
    # a fresh handle (another process would see the same)
    with CacheStore(tmp_path) as store:
        assert store.get(k) == c
        assert (tmp_path / "completions.sqlite").exists()


def test_only_answers_are_stored(tmp_path: Path) -> None:
    bad = {
        "error": Completion("", "error", error="HTTP 500"),
        "refused": Completion("", "refused", error="content filter"),
        "empty": Completion("   ", "stop"),
        "cut": Completion("Response A is better because", "length"),
        "filter": Completion("x", "content_filter"),
    }
    with CacheStore(tmp_path) as store:
        n = store.put_many([(k, ID, c) for k, c in bad.items()] + [("good", ID, answer())])
        assert n == 1
        assert set(store.get_many([*bad, "good"])) == {"good"}


def test_first_answer_wins(tmp_path: Path) -> None:
    with CacheStore(tmp_path) as store:
        store.put_many([("k", ID, answer("[[A]]"))])
        assert store.put_many([("k", ID, answer("[[B]]"))]) == 0
        assert store.get("k").text == "[[A]]"  # type: ignore[union-attr]


def test_key_depends_on_what_changes_the_answer() -> None:
    base = cache_key(ID, req("q"))
    assert cache_key(ID, req("q")) == base
    assert cache_key(ID, req("q", temperature=0.7)) != base
    assert cache_key(ID, req("q", sample_index=1)) != base
    assert cache_key(ID, req("q2")) != base
    assert cache_key(OTHER, req("q")) != base


def test_stats_export_prune(tmp_path: Path) -> None:
    with CacheStore(tmp_path) as store:
        old = Completion("[[A]]", created_at=time.time() - 10 * 86400)
        store.put_many([("a", ID, old), ("b", ID, answer()), ("c", OTHER, answer())])
        s = store.stats()
        assert s.entries == 3 and s.size_bytes > 0
        assert {j: n for j, (n, _, _) in s.per_judge.items()} == {ID.label(): 2, OTHER.label(): 1}
        buf = io.StringIO()
        assert store.export(buf) == 3
        lines = [json.loads(line) for line in buf.getvalue().splitlines()]
        assert {d["key"] for d in lines} == {"a", "b", "c"}
        assert lines[0]["completion"]["text"] == "[[A]]" and lines[0]["judge"] == ID.label()
        assert store.prune() == 0  # nothing said, nothing deleted
        assert store.prune(older_than_s=86400) == 1
        assert store.prune(judge=OTHER.label()) == 1
        assert set(store.get_many("abc")) == {"b"}
        assert store.check() == []


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupted_file_is_a_clear_error(tmp_path: Path, damage: str) -> None:
    with CacheStore(tmp_path) as store:
        store.put_many([(f"k{i}", ID, answer("x" * 500)) for i in range(300)])
    path = tmp_path / "completions.sqlite"
    if damage == "garbage":
        path.write_bytes(b"this is not a database at all" * 100)
    else:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
        for side in ("-wal", "-shm"):
            Path(str(path) + side).unlink(missing_ok=True)
    with pytest.raises(CacheError) as e, CacheStore(tmp_path) as store:
        store.get_many([f"k{i}" for i in range(300)])
    msg = str(e.value)
    assert str(path) in msg and "rmb cache check" in msg and "--cache-dir" in msg


def test_cli_check_reports_a_garbage_file(tmp_path: Path) -> None:
    (tmp_path / "completions.sqlite").write_bytes(b"\x00garbage" * 1000)
    r = subprocess.run(
        [sys.executable, "-m", "benchmark.cli", "cache", "check", "--cache-dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert "completions.sqlite" in r.stderr and "--cache-dir" in r.stderr


WRITER = """
import sys, time
from judges.base import Completion, JudgeIdentity, Usage
from judges.cache import CacheStore
who, n, directory = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ident = JudgeIdentity("openai", "m", "")
store = CacheStore(directory)
for start in range(0, n, 25):
    # half the keys are shared with the other writer, half are its own
    batch = [(f"shared{i}" if i % 2 else f"{who}{i}", ident, Completion(f"[[A]] {who}", usage=Usage(1, 1)))
             for i in range(start, min(n, start + 25))]
    store.put_many(batch)
    got = store.get_many(k for k, _, _ in batch)
    assert len(got) == len(batch), (who, start)
print("ok")
"""


def test_two_processes_share_one_cache(tmp_path: Path) -> None:
    n = 2000
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, who, str(n), str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who in ("p", "q")
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    with CacheStore(tmp_path) as store:
        keys = [f"shared{i}" for i in range(1, n, 2)] + [
            f"{w}{i}" for w in "pq" for i in range(0, n, 2)
        ]
        assert len(store.get_many(keys)) == len(keys) == 2 * n - n // 2
        assert store.stats().entries == len(keys)


def test_present_and_stream_read_in_chunks_and_keep_the_callers_keys(tmp_path: Path) -> None:
    """A full-RMB rerun asks which of 31k keys are answered, then reads them a chunk at a time."""
    keys = [f"key-{i:05d}" for i in range(1234)]  # more than two SELECT chunks
    with CacheStore(tmp_path) as store:
        store.put_many([(k, ID, answer(k)) for k in keys[::2]])
        asked = ["".join(k) for k in [*keys, "missing"]]  # new string objects, equal values
        present = store.present(asked)
        assert present == set(keys[::2])
        by_value = {k: k for k in asked}
        assert all(k is by_value[k] for k in present)  # the caller's objects, not SQLite's copies
        streamed = store.stream(keys)
        first = next(streamed)
        assert first[0] == keys[0] and first[1].text == keys[0]
        rest = dict(streamed)
        assert len(rest) == len(keys[::2]) - 1 and all(c.text == k for k, c in rest.items())


def test_a_stored_answer_that_does_not_decode_is_a_clear_error(tmp_path: Path) -> None:
    with CacheStore(tmp_path) as store:
        store.put_many([("k", ID, answer())])
        store._db.execute("UPDATE completions SET completion = '{\"no\": 1}'")
        store._db.commit()
        assert store.present(["k"]) == {"k"}
        with pytest.raises(CacheError, match=r"does not decode.*rmb cache check"):
            list(store.stream(["k"]))
