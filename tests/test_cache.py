"""CacheStore: what is stored, what is not, maintenance, corruption, several processes at once."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
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


def test_a_stored_answer_that_does_not_decode_is_a_miss_kept_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One bad row used to make the whole cache 'unusable' with advice to delete it."""
    with CacheStore(tmp_path) as store:
        store.put_many([(k, ID, answer(k)) for k in ("good", "bad", "odd")])
        store._db.execute("UPDATE completions SET completion = '{\"no\": 1}' WHERE key='bad'")
        store._db.execute("""UPDATE completions SET completion = '{"text": "x", "usage": 5}'
                             WHERE key='odd'""")
        assert store.present(["good", "bad", "odd"]) == {"good", "odd"}  # bad: a miss
        assert dict(store.stream(["good", "odd"])).keys() == {"good"}  # odd fails from_dict
        assert sorted(store.bad_rows) == ["bad", "odd"]
        assert "do not decode" in caplog.text and "asked again" in caplog.text
        # asked again: the fresh answer is stored (the bad row no longer blocks the key)
        assert store.put_many([("bad", ID, answer("fresh")), ("odd", ID, answer("new"))]) == 2
        assert store.get("bad").text == "fresh"  # type: ignore[union-attr]
        kept = store._db.execute("SELECT key FROM bad_completions ORDER BY key").fetchall()
        assert kept == [("bad",), ("odd",)]  # moved aside, never deleted
        assert store.check() == []


def fill_until_full(store: CacheStore) -> CacheError:
    # max_page_count makes SQLite answer SQLITE_FULL exactly as a full disk does
    store._db.execute("PRAGMA max_page_count = 40")
    with pytest.raises(CacheError) as e:
        for i in range(100):
            store.put_many([(f"k{i}-{j}", ID, answer("x" * 4000)) for j in range(10)])
    return e.value


def test_full_disk_names_the_cause_and_the_path_and_keeps_the_cache(tmp_path: Path) -> None:
    with CacheStore(tmp_path) as store:
        store.put_many([("paid", ID, answer())])
        msg = str(fill_until_full(store))
        assert "full" in msg and str(store.path) in msg, msg
        assert "cannot rollback" not in msg and "delete" not in msg, msg
    with CacheStore(tmp_path) as store:  # the answers stored before are all there
        assert store.get("paid") is not None and store.check() == []


def test_damaged_file_advice_never_says_delete(tmp_path: Path) -> None:
    (tmp_path / "completions.sqlite").write_bytes(b"not a database" * 500)
    with pytest.raises(CacheError) as e:
        CacheStore(tmp_path)
    assert "delete" not in str(e.value) and "move that file aside" in str(e.value)


def test_prune_dry_run_counts_and_keeps(tmp_path: Path) -> None:
    with CacheStore(tmp_path) as store:
        store.put_many([("a", ID, answer()), ("b", OTHER, answer())])
        assert store.prune(judge=ID.label(), dry_run=True) == 1
        assert len(store.get_many("ab")) == 2


# root (this sandbox) writes through any file mode: drop that power for a "read-only" reader
_NO_OVERRIDE = "-dac_override,-dac_read_search"
AS_READER = (
    ["setpriv", f"--inh-caps={_NO_OVERRIDE}", f"--bounding-set={_NO_OVERRIDE}"]
    if os.geteuid() == 0
    else []
)


def rmb_cli(*argv: str, reader: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*(AS_READER if reader else []), sys.executable, "-m", "benchmark.cli", *argv],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=120,
    )


@pytest.mark.parametrize("age", ["30", "1e9", "5y", "30 days"])
def test_cli_prune_needs_a_unit(tmp_path: Path, age: str) -> None:
    with CacheStore(tmp_path) as store:
        store.put_many([("a", ID, answer())])
    r = rmb_cli("cache", "prune", "--older-than", age, "--cache-dir", str(tmp_path))
    assert r.returncode == 2 and "unit" in r.stderr and "Traceback" not in r.stderr
    with CacheStore(tmp_path) as store:
        assert store.stats().entries == 1


def test_cli_prune_dry_run(tmp_path: Path) -> None:
    with CacheStore(tmp_path) as store:
        store.put_many([("a", ID, answer()), ("b", OTHER, answer())])
    r = rmb_cli("cache", "prune", "--older-than", "0s", "--dry-run", "--cache-dir", str(tmp_path))
    assert r.returncode == 0 and "would delete 2 answers" in r.stdout, r.stderr
    with CacheStore(tmp_path) as store:
        assert store.stats().entries == 2


@pytest.mark.parametrize("where", ["missing/dir/out.jsonl", "is-a-dir"])
def test_cli_export_to_a_bad_path_is_one_line(tmp_path: Path, where: str) -> None:
    with CacheStore(tmp_path / "c") as store:
        store.put_many([("a", ID, answer())])
    (tmp_path / "is-a-dir").mkdir()
    out = tmp_path / where
    r = rmb_cli("cache", "export", "-o", str(out), "--cache-dir", str(tmp_path / "c"))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and str(out) in r.stderr
    assert not [p for p in tmp_path.rglob("*.tmp")]


@pytest.fixture
def read_only_cache(tmp_path: Path) -> Iterator[Path]:
    with CacheStore(tmp_path / "c") as store:
        store.put_many([("a", ID, answer()), ("b", OTHER, answer())])
    for p in [tmp_path / "c", *(tmp_path / "c").iterdir()]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    yield tmp_path / "c"
    (tmp_path / "c").chmod(0o755)


def test_read_only_cache_is_readable_and_a_run_says_read_only(read_only_cache: Path) -> None:
    cache = read_only_cache
    before = sorted(p.name for p in cache.iterdir())
    r = rmb_cli("cache", "stats", "--cache-dir", str(cache), reader=True)
    assert r.returncode == 0 and "2 answers" in r.stdout, r.stderr
    r = rmb_cli("cache", "check", "--cache-dir", str(cache), reader=True)
    assert r.returncode == 0 and "ok, 2 answers" in r.stdout, r.stderr
    assert sorted(p.name for p in cache.iterdir()) == before  # nothing created
    code = (
        "import sys\n"
        "from judges.cache import CacheStore, CacheError\n"
        "try:\n"
        "    CacheStore(sys.argv[1]).put_many([])\n"
        "except CacheError as e:\n"
        "    print(e); sys.exit(3)\n"
    )
    r = subprocess.run(
        [*AS_READER, sys.executable, "-c", code, str(cache)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert "read-only" in r.stdout and "delete" not in r.stdout and str(cache) in r.stdout
