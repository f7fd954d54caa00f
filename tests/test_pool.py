"""The multi-server judge (judges/pool.py) against real servers (tests/support/server_fleet.py): the
OpenAI judge's lean transport to each, one server crashing mid-run.

Must show: a stopped server costs no answer and no double request (counted by the servers);
its requests go to the others and the log says so; it comes back into rotation when it serves
again; the identity is the model, never the addresses."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from support.server_fleet import MODEL, REJECT, Fleet, running_fleet

from benchmark.api import run
from benchmark.options import RunOptions
from judges import pool as pool_module
from judges.base import ChatRequest, JudgeOptions, Message, cache_key
from judges.errors import JudgeSetupError, UserError
from judges.pool import ID_PREFIX, MAX_SLOTS, PoolJudge, read_url_file
from judges.registry import build_judge
from judges.server_limit import ServerLimit


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    with running_fleet(3, capacity=8, latency=0.02) as f:
        yield f


@pytest.fixture
def three(fleet: Fleet) -> Fleet:
    for i in range(3):
        fleet.restart_server(i)
    fleet.reset()
    return fleet


def pool(urls: list[str], **kw: object) -> PoolJudge:
    options = JudgeOptions(base_urls=tuple(urls), timeout_s=10, backoff_s=0.1, **kw)  # type: ignore[arg-type]
    judge = build_judge(f"openai:{MODEL}", options)
    assert isinstance(judge, PoolJudge)
    return judge


def requests(n: int, tag: str = "") -> list[ChatRequest]:
    return [
        ChatRequest((Message("user", f"question {tag}{i}"),), MODEL, max_tokens=16)
        for i in range(n)
    ]


async def answer_all(judge: PoolJudge, reqs: list[ChatRequest], workers: int = 48) -> list[str]:
    """`workers` callers over `reqs` (as the runner drives a judge); each answer's text."""
    out: list[str] = [""] * len(reqs)
    todo = iter(enumerate(reqs))

    async def worker() -> None:
        for i, r in todo:
            c = await judge.complete(r)
            out[i] = c.text if c.is_answer else f"ERROR {c.error}"

    try:
        await asyncio.gather(*(worker() for _ in range(workers)))
    finally:
        await judge.aclose()
    return out


def test_a_server_stopped_mid_run_costs_no_answer_and_no_double_request(
    three: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    three.stop_server(1, after=40)  # crashes with requests in flight and queued
    judge = pool(three.urls)
    with caplog.at_level(logging.WARNING, logger="judges"):
        texts = asyncio.run(answer_all(judge, requests(400)))
    assert all(t.startswith("Reasons.") for t in texts), [t for t in texts if "ERROR" in t][:3]
    stats = three.stats()
    assert stats[1]["stopped"] and stats[1]["answers"] == 40
    assert stats[1]["aborted"] > 0  # it did drop requests it had taken
    per_request = three.answers_per_request()
    assert len(per_request) == 400  # every request answered ...
    assert set(per_request.values()) == {1}  # ... by exactly one server, once
    assert stats[0]["answers"] > 100 and stats[2]["answers"] > 100
    assert "taken out of rotation" in caplog.text and three.urls[1] in caplog.text


def test_a_stopped_server_is_tried_again_and_rejoins(
    three: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    judge = pool(three.urls)

    async def scenario() -> tuple[int, int]:
        three.stop_server(0)
        first = await asyncio.gather(*(judge.complete(r) for r in requests(60, "a")))
        dropped = judge.servers[0].dropped
        three.restart_server(0)
        await asyncio.sleep(1.2)  # past its first cool-down
        second = await asyncio.gather(*(judge.complete(r) for r in requests(120, "b")))
        await judge.aclose()
        assert all(c.is_answer for c in first + second)
        return dropped, judge.servers[0].answered

    with caplog.at_level(logging.WARNING, logger="judges"):
        dropped, answered_after = asyncio.run(scenario())
    assert dropped == 1
    assert answered_after > 0 and three.stats()[0]["answers"] == answered_after
    assert "back in rotation" in caplog.text
    assert set(three.answers_per_request().values()) == {1}


def test_work_is_balanced_by_outstanding_requests(three: Fleet) -> None:
    texts = asyncio.run(answer_all(pool(three.urls), requests(300), workers=60))
    assert all(t.startswith("Reasons.") for t in texts)
    answers = [s["answers"] for s in three.stats()]
    assert sum(answers) == 300 and min(answers) >= 60, answers


def test_a_request_no_server_accepts_is_an_error_not_a_loop(three: Fleet) -> None:
    judge = pool(three.urls)
    bad = ChatRequest((Message("user", f"please {REJECT}"),), MODEL)

    async def go() -> list[str]:
        good = requests(30)
        out = await answer_all(judge, [*good[:15], bad, *good[15:]], workers=8)
        return out

    texts = asyncio.run(go())
    assert "request rejected" in texts[15] or "400" in texts[15]
    assert sum(t.startswith("Reasons.") for t in texts) == 30
    received = sum(s["received"] for s in three.stats())
    assert received == 30 + judge.max_attempts  # the bad one: each of its attempts, no more
    assert all(s.dropped == 0 for s in judge.servers)


def test_an_unknown_model_stops_the_run(three: Fleet) -> None:
    judge = build_judge(
        "openai:no-such-model", JudgeOptions(base_urls=tuple(three.urls), judge_id="x")
    )

    async def go() -> None:
        try:
            await judge.complete(replace(requests(1)[0], model="no-such-model"))
        finally:
            await judge.aclose()

    with pytest.raises(JudgeSetupError, match="not found"):
        asyncio.run(go())


def test_identity_is_the_model_not_the_addresses(three: Fleet) -> None:
    served = pool(three.urls)
    assert served.identity.base_url == ID_PREFIX + MODEL
    named = pool(three.urls[:2], judge_id="qwen2.5-7b@rev1")
    moved = pool(three.urls[1:], judge_id="qwen2.5-7b@rev1")
    assert named.identity == moved.identity != served.identity
    req = requests(1)[0]
    assert cache_key(named.identity, req) == cache_key(moved.identity, req)
    # one server with a name is a pool of one: the cache survives its move
    one = build_judge(
        f"openai:{MODEL}", JudgeOptions(base_url=three.urls[0], judge_id="qwen2.5-7b@rev1")
    )
    assert one.identity == named.identity


def test_servers_that_do_not_answer_need_a_judge_id(tmp_path: Path) -> None:
    dead = ["http://127.0.0.1:9/v1", "http://127.0.0.1:10/v1"]
    with pytest.raises(UserError, match="--judge-id"):
        pool(dead)
    assert pool(dead, judge_id="m").identity.base_url == ID_PREFIX + "m"
    with pytest.raises(UserError, match="given twice"):
        pool([dead[0], dead[0]], judge_id="m")
    with pytest.raises(UserError, match="OpenAI-compatible"):
        build_judge("anthropic:claude-x", JudgeOptions(base_urls=tuple(dead)))


def test_url_file(tmp_path: Path) -> None:
    f = tmp_path / "servers.txt"
    f.write_text("# node 1\nhttp://10.0.0.1:8000/v1\n\nhttp://10.0.0.2:8000/v1  # node 2\n")
    assert read_url_file(f) == ["http://10.0.0.1:8000/v1", "http://10.0.0.2:8000/v1"]
    f.write_text("http://10.0.0.1:8000/v1\n10.0.0.2:8000\n")
    with pytest.raises(UserError, match=r"servers.txt: '10.0.0.2:8000' \(URL 2\)"):
        read_url_file(f)
    with pytest.raises(UserError, match="cannot read"):
        read_url_file(tmp_path / "missing.txt")


def test_the_run_over_three_servers_one_stopped(
    three: Fleet, tmp_path: Path, rmb_dir: Path
) -> None:
    """`rmb run` as a user runs it: real RMB items, the pairwise template, one cache."""
    three.stop_server(2, after=10)
    options = RunOptions(
        judge=f"openai:{MODEL}",
        template="pairwise",
        data=str(rmb_dir),
        sets=("pairwise",),
        tasks=("Code",),
        limit=40,
        base_url=tuple(three.urls),
        concurrency=8,
        timeout=10,
        cache_dir=tmp_path / "cache",
        runs_dir=tmp_path / "runs",
    )
    result = run(options, handle_signals=False)
    per_request = three.answers_per_request()
    assert result.status == "complete"
    assert result.requests == len(per_request) and set(per_request.values()) == {1}
    assert three.stats()[2]["answers"] == 10
    # one server fewer, listed in a file: the same judge, answered from the cache
    servers = tmp_path / "servers.txt"
    servers.write_text("\n".join(three.urls[:2]) + "\n")
    again = run(replace(options, base_url=(), base_url_file=str(servers)), handle_signals=False)
    assert again.sent == 0 and again.cache_hits == result.requests


def test_several_servers_get_an_adaptive_ceiling_unless_one_is_given() -> None:
    urls = ("http://10.0.0.1:8000/v1", "http://10.0.0.2:8000/v1")
    assert RunOptions(base_url=urls).judge_options().concurrency == MAX_SLOTS
    assert RunOptions(base_url=urls[:1], judge_id="m").judge_options().concurrency == MAX_SLOTS
    assert RunOptions(base_url=urls, concurrency=8).judge_options().concurrency == 8
    assert RunOptions(base_url=urls[:1]).judge_options().concurrency == JudgeOptions().concurrency


class _Queue:
    """A server that serves `capacity` at a time in `service_s` and queues the rest."""

    def __init__(self, capacity: int, service_s: float) -> None:
        self.capacity, self.service_s = capacity, service_s

    def latency(self, in_flight: int) -> float:
        return self.service_s * max(1.0, in_flight / self.capacity)


def test_server_limit_fills_a_server_and_keeps_its_queue_short() -> None:
    server = _Queue(capacity=32, service_s=0.2)
    limit = ServerLimit(initial=4, ceiling=1024)
    for _ in range(3000):
        limit.observe(server.latency(limit.slots), 5)
    assert 32 <= limit.slots <= 2 * 32 + 8  # full, with a queue at most about as long again
    small = ServerLimit(initial=4, ceiling=20)
    for _ in range(500):
        small.observe(server.latency(small.slots), 5)
    assert small.slots == 20  # never past the ceiling
    before = limit.slots
    limit.overloaded()
    assert limit.slots < before


def test_server_limit_reads_latency_per_output_token() -> None:
    limit = ServerLimit(initial=8, ceiling=256)
    for i in range(2000):  # an idle server: long answers take longer, nothing queues
        tokens = 10 if i % 2 else 400
        limit.observe(0.01 * tokens, tokens)
    assert limit.slots == 256


def test_server_limit_rebases_on_a_server_slower_for_good() -> None:
    server = _Queue(capacity=32, service_s=0.2)
    limit = ServerLimit(initial=16, ceiling=256)
    for _ in range(500):
        limit.observe(server.latency(limit.slots), 5)
    server.service_s = 1.0  # another tenant: 5x slower at any load
    for _ in range(3000):
        limit.observe(server.latency(limit.slots), 5)
    assert 32 <= limit.slots <= 72


def test_an_overloaded_server_saying_503_gets_less_and_nothing_is_lost() -> None:
    with running_fleet(2, capacity=4, latency=0.02, queue=4) as fleet:
        judge = pool(fleet.urls, concurrency=64)
        texts = asyncio.run(answer_all(judge, requests(300), workers=128))
        stats = fleet.stats()
        per_request = fleet.answers_per_request()
    assert all(t.startswith("Reasons.") for t in texts)
    assert sum(s["rejected"] for s in stats) > 0  # it did say 503 ...
    assert all(s.limit.slots < 16 for s in judge.servers)  # ... and was given less
    assert len(per_request) == 300 and set(per_request.values()) == {1}


def test_a_pool_whose_servers_are_all_gone_stops_instead_of_waiting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pool_module, "COOLDOWN_S", 0.05)
    monkeypatch.setattr(pool_module, "MAX_COOLDOWN_S", 0.2)
    judge = pool(["http://127.0.0.1:9/v1", "http://127.0.0.1:10/v1"], judge_id="m")

    async def go() -> None:
        try:
            await asyncio.gather(*(judge.complete(r) for r in requests(20)))
        finally:
            await judge.aclose()

    with pytest.raises(JudgeSetupError, match=r"no server of .* has answered for half a minute"):
        asyncio.run(go())


def test_rmb_run_with_base_url_repeated(three: Fleet, tmp_path: Path, rmb_dir: Path) -> None:
    argv = [sys.executable, "-m", "benchmark.cli", "run", "--judge", f"openai:{MODEL}"]
    argv += ["--data", str(rmb_dir), "--set", "pairwise", "--task", "Code", "--limit", "5"]
    argv += ["--base-url", three.urls[0], "--base-url", three.urls[1], "--quiet"]
    argv += ["--cache-dir", str(tmp_path / "cache"), "--runs-dir", str(tmp_path / "runs")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    answers = [s["answers"] for s in three.stats()]
    assert answers[0] > 0 and answers[1] > 0 and answers[2] == 0  # both given servers, only
    manifest = json.loads(next((tmp_path / "runs").glob("*/manifest.json")).read_text())
    assert manifest["judge"] == f"openai:{MODEL}@{ID_PREFIX}{MODEL}"
