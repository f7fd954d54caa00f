"""The process-level speed devices of benchmark/perf.py do what they say (what each saves is
`make bench`'s business)."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmark import perf
from benchmark.data import load


@pytest.fixture
def gc_state() -> Iterator[None]:
    threshold, enabled = gc.get_threshold(), gc.isenabled()
    yield
    gc.set_threshold(*threshold)
    (gc.enable if enabled else gc.disable)()


def test_raise_gc_threshold(gc_state: None) -> None:
    gc.set_threshold(700, 10, 10)
    perf.raise_gc_threshold()
    assert gc.get_threshold() == (perf.GC_THRESHOLD, 10, 10)


def test_gc_paused_restores_the_collector_as_it_was(gc_state: None) -> None:
    gc.enable()
    with pytest.raises(RuntimeError), perf.gc_paused():
        assert not gc.isenabled()
        raise RuntimeError("a failed load")
    assert gc.isenabled()
    gc.disable()
    with perf.gc_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()  # a caller that had it off keeps it off


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_return_freed_memory_gives_freed_text_back_to_the_os() -> None:
    # 2 KB texts are malloc'd one by one, as a dataset's answers are; a survivor now and then
    # (also malloc'd: over 512 bytes) pins the heap, so freeing the texts alone returns little
    texts, keep = [], []
    for i in range(40_000):
        texts.append(f"{i:08d}" + "x" * 2000)
        if i % 20 == 0:
            keep.append(f"{i:08d}" + "k" * 600)
    del texts
    gc.collect()
    before = _rss_kib()
    assert perf.return_freed_memory() is True  # glibc here
    after = _rss_kib()
    assert before - after > 40_000, (before, after)  # most of the ~80 MB
    assert len(keep) == 2_000


def test_intern_gives_one_string_per_name() -> None:
    a, b = "".join(["gpt-", "4o"]), "".join(["gpt", "-4o"])
    assert a is not b
    assert perf.intern(a) is perf.intern(b)
    assert perf.intern(7) == "7"


def test_a_load_shares_equal_texts(tmp_path: Path) -> None:
    """The loader's TextPool: the same answer in two records is one string in memory."""
    answer = "Use sorted(); " * 20
    records = [
        {
            "pair_uid": f"p{i}",
            "category_path": "Pairwise_set/Helpfulness/Code/Data Management",
            "conversation_input": [{"role": "user", "content": "How do I sort?"}],
            "chosen": {"llm_name": "a", "answer": answer},
            "reject": {"llm_name": "b", "answer": f"no {i}"},
        }
        for i in range(2)
    ]
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    one, two = load(path)
    assert one.chosen.text is two.chosen.text  # type: ignore[union-attr]
    assert one.conversation[0].content is two.conversation[0].content
