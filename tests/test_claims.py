"""Cross-process claims on keys in flight: a second process on one cache waits for the keys
another is buying instead of paying for them again, and a dead owner's claims lapse at once."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from test_cache import ID, answer
from test_runner import popen, read_judged, subprocess_cmd, write_items

from judges.cache import CacheStore
from judges.claims import ClaimQueue

KEYS = [f"k{i}" for i in range(20)]


def test_a_second_store_skips_keys_claimed_and_sees_them_answered(tmp_path: Path) -> None:
    with CacheStore(tmp_path) as a, CacheStore(tmp_path) as b:
        assert a.claim(KEYS[:10]).mine == KEYS[:10]
        got = b.claim(KEYS)
        assert got.mine == KEYS[10:] and got.others == KEYS[:10] and got.cached == []
        a.put_many([(k, ID, answer(k)) for k in KEYS[:5]])  # bought: stored and freed
        got = b.claim(KEYS[:10])
        assert got.cached == KEYS[:5] and got.others == KEYS[5:10] and got.mine == []
        a.put_many([("k5", ID, answer(text=""))])  # a failed answer frees its key too
        assert b.claim(KEYS[5:10]).mine == ["k5"]
        a.close()  # a stops: what it claimed and did not buy is free
        assert b.claim(KEYS[6:10]).mine == KEYS[6:10]


HOLDER = """
import sys, time
from judges.cache import CacheStore
store = CacheStore(sys.argv[1])
store.claim([f"k{i}" for i in range(10)])
print("claimed", flush=True)
time.sleep(600)
"""


def test_claims_of_a_killed_process_lapse_at_once(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "claimed"
        with CacheStore(tmp_path) as store:
            assert store.claim(KEYS[:10]).others == KEYS[:10]  # alive: its keys wait
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            assert store.claim(KEYS[:10]).mine == KEYS[:10]  # dead: no lease to wait out
    finally:
        proc.kill()
        proc.wait()


def test_queue_waits_for_keys_another_process_buys(tmp_path: Path) -> None:
    hits: list[str] = []

    async def main() -> list[str]:
        with CacheStore(tmp_path) as other, CacheStore(tmp_path) as mine:
            other.claim(KEYS[:4])
            queue = ClaimQueue(mine, KEYS[:6], hits.append, poll_s=0.05)
            got = [await queue.next(), await queue.next()]  # its own keys first
            waiting = asyncio.ensure_future(queue.next())
            await asyncio.sleep(0.2)
            assert not waiting.done()  # k0..k3 are being bought elsewhere
            other.put_many([(k, ID, answer(k)) for k in KEYS[:3]])  # k3 fails there
            other.put_many([("k3", ID, answer(text=""))])
            got.append(await waiting)
            got.append(await queue.next())
            queue.close()
            return [k for k in got if k is not None]

    assert asyncio.run(main()) == ["k4", "k5", "k3"]
    assert hits == ["k0", "k1", "k2"]


def test_two_runs_at_once_on_one_cache_pay_each_request_once(loopback: Any, tmp_path: Path) -> None:
    """The same command started twice at once (own run ids so both run): every distinct
    request is billed once; before claims, each process paid for every shared answer."""
    loopback.configure(latency=0.05, latency_jitter=0.05)
    data = write_items(tmp_path / "items.jsonl", 120, n_bon=20, losers=2)  # 240 + 80 requests
    procs = [
        popen(subprocess_cmd(loopback, data, tmp_path, "--run-id", f"r{i}", concurrency=8))
        for i in (1, 2)
    ]
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in outs]
    billed = Counter(loopback.stats()["answers"])
    assert len(billed) == 320 and set(billed.values()) == {1}, billed.most_common(3)
    assert loopback.stats()["max_in_flight"] > 8  # both processes were buying at once
    for i in (1, 2):
        lines = read_judged(tmp_path / "runs" / f"r{i}")
        assert len(lines) == 320 and all(j.verdict.kind == "choice" for j in lines)
    with CacheStore(tmp_path / "cache") as store:
        assert store.stats().entries == 320
        assert store._db.execute("SELECT COUNT(*) FROM claims").fetchone() == (0,)
    print(f"\n320 distinct requests, two processes: {sum(billed.values())} billed")


def test_a_killed_run_does_not_hold_up_the_other(loopback: Any, tmp_path: Path) -> None:
    loopback.configure(latency=0.05)
    data = write_items(tmp_path / "items.jsonl", 60)
    first = popen(subprocess_cmd(loopback, data, tmp_path, "--run-id", "a", concurrency=4))
    while loopback.stats()["requests"] < 10 and first.poll() is None:
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)  # its claims are left in the cache
    first.wait()
    t = time.monotonic()
    second = popen(subprocess_cmd(loopback, data, tmp_path, "--run-id", "b", concurrency=4))
    _, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert time.monotonic() - t < 30  # never waits out a lease
    assert len(read_judged(tmp_path / "runs" / "b")) == 120
