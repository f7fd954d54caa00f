"""Batch judging through the official SDKs against the batch test server (tests/support/batch_server.py)
beside the loopback judge: answers land in the cache, each request is billed once, per-line
errors, expiry, cancel, validation failures, and crash recovery between create and record."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.batch_server import BatchServer, body_key, running_batch_server
from support.loopback_server import LoopbackServer

from judges.base import ChatRequest, JudgeOptions, Message, cache_key
from judges.batch import BatchRunner, JobStore, batch_api
from judges.batch.lines import Limits, chunks
from judges.batch.recovery import resolve
from judges.cache import CacheStore
from judges.errors import UserError
from judges.registry import build_judge

FAST = {"validate_s": 0.1, "process_s": 0.3, "finalize_s": 0.1, "cancel_s": 0.1}
PROMPT = "Compare.\n<response A>\nyes {i}\n</response A>\n<response B>\nno\n</response B>\nAnswer [[A]] or [[B]]."


@pytest.fixture(scope="module")
def batch_server(loopback_server: LoopbackServer) -> Iterator[BatchServer]:
    with running_batch_server(loopback_server.base_url, **FAST) as srv:
        yield srv


@pytest.fixture
def server(batch_server: BatchServer, loopback: LoopbackServer) -> BatchServer:
    batch_server.reset()
    return batch_server


class Rig:
    """A judge, its batch client, the cache and the job store, over one cache directory."""

    def __init__(self, srv: BatchServer, provider: str, cache_dir: Path) -> None:
        url = srv.openai_base_url if provider == "openai" else srv.anthropic_base_url
        self.judge: Any = build_judge(f"{provider}:judge-1", JudgeOptions(base_url=url))
        self.api = batch_api(self.judge, "sk-test", url)
        self.cache = CacheStore(cache_dir)
        self.jobs = JobStore(cache_dir)
        self.srv = srv

    def runner(self, **kw: Any) -> BatchRunner:
        return BatchRunner(self.api, self.jobs, self.cache, poll_s=(0.05, 0.2), **kw)

    def requests(self, n: int, start: int = 0) -> dict[str, ChatRequest]:
        reqs = [
            self.judge.options.request(
                [Message("user", PROMPT.format(i=i))], self.judge.identity, max_tokens=64
            )
            for i in range(start, start + n)
        ]
        return {cache_key(self.judge.identity, r): r for r in reqs}

    async def run(self, reqs: dict[str, ChatRequest], **kw: Any) -> Any:
        return await self.runner().run(list(reqs), reqs.__getitem__, **kw)

    def billed(self, reqs: dict[str, ChatRequest]) -> list[int]:
        billed = self.srv.stats()["billed"]
        return [billed.get(body_key(self.judge.body(r)), 0) for r in reqs.values()]

    async def close(self) -> None:
        await self.api.aclose()
        await self.judge.aclose()
        self.cache.close()
        self.jobs.close()


@pytest.fixture(params=["openai", "anthropic"])
async def rig(
    request: pytest.FixtureRequest, server: BatchServer, tmp_path: Path
) -> AsyncIterator[Rig]:
    r = Rig(server, request.param, tmp_path / "cache")
    yield r
    await r.close()


async def test_answers_land_in_the_cache_billed_once(rig: Rig) -> None:
    reqs = rig.requests(12)
    out = await rig.run(reqs)
    assert out.collected == 12 and out.submitted == 12 and not out.pending and not out.failed
    got = rig.cache.get_many(reqs)
    assert set(got) == set(reqs)
    assert all(c.usage.batch and "[[" in c.text for c in got.values())
    assert rig.billed(reqs) == [1] * 12
    # the same keys again: all cached, nothing submitted
    again = await rig.run(reqs)
    assert again.submitted == 0 and rig.srv.stats()["calls"]["create"] == 1


async def test_chunks_respect_the_limits(rig: Rig) -> None:
    rig.api.limits = Limits(lines=5, bytes=10_000_000)
    reqs = rig.requests(12)
    out = await rig.run(reqs)
    assert out.collected == 12 and rig.srv.stats()["calls"]["create"] == 3


def test_chunking_by_bytes_and_lines() -> None:
    lines = [(str(i), b"x" * 99) for i in range(10)]
    assert [len(c) for c in chunks(lines, Limits(lines=4, bytes=10**6))] == [4, 4, 2]
    assert [len(c) for c in chunks(lines, Limits(lines=100, bytes=350))] == [3, 3, 3, 1]
    with pytest.raises(UserError, match="more than a whole batch"):
        list(chunks(lines, Limits(lines=100, bytes=50)))


async def test_no_wait_then_another_runner_collects(rig: Rig) -> None:
    reqs = rig.requests(6)
    rig.srv.configure(process_s=30.0)
    out = await rig.run(reqs, wait=False)
    assert out.submitted == 6 and out.pending == set(reqs) and out.collected == 0
    # a second run while the batch is open submits nothing: the keys are held
    out2 = await rig.run(reqs, wait=False)
    assert out2.submitted == 0 and out2.pending == set(reqs)
    rig.srv.advance(60)
    out3 = await rig.run(reqs)
    assert out3.collected == 6 and out3.submitted == 0
    assert rig.billed(reqs) == [1] * 6


async def test_line_errors_refusals_invalid_transient_resubmitted(
    rig: Rig, loopback: LoopbackServer
) -> None:
    reqs = rig.requests(6)
    # lines are answered in order: line 1 too long (a refusal), line 2 a 500 (transient)
    loopback.configure(script=["context_length", "500"])
    out = await rig.run(reqs)
    assert len(out.failed) == 1
    (bad,) = out.failed.values()
    assert bad.finish_reason == "refused" and "context too long" in (bad.error or "")
    assert out.collected == 5  # the transient one went into a second batch and was answered
    assert rig.srv.stats()["calls"]["create"] == 2
    assert set(rig.cache.present(reqs)) == set(reqs) - set(out.failed)


async def test_expired_window_keeps_finished_lines(rig: Rig) -> None:
    rig.srv.configure(process_s=10.0, window_s=5.0, clock_speed=0.0)
    reqs = rig.requests(10)
    out = await rig.run(reqs, wait=False)
    rig.srv.advance(3.0)  # 0.1 s validating, then 2.9/10 of the lines
    await asyncio.sleep(0.3)
    rig.srv.advance(10.0)  # past the window
    await asyncio.sleep(0.3)
    out = await rig.run(reqs, wait=False)
    kept = rig.cache.present(reqs)
    assert 1 <= len(kept) < 10 and out.collected == len(kept)
    # expired lines are free again: this (next) run resubmits exactly them
    assert out.submitted == 10 - len(kept)
    rig.srv.configure(window_s=86_400.0, clock_speed=1.0, process_s=0.3)
    out = await rig.run(reqs)
    assert rig.cache.present(reqs) == set(reqs)
    assert rig.billed(reqs) == [1] * 10


async def test_cancel_keeps_finished_lines(rig: Rig) -> None:
    rig.srv.configure(process_s=10.0, clock_speed=0.0)
    reqs = rig.requests(10)
    runner = rig.runner()
    await runner.run(list(reqs), reqs.__getitem__, wait=False)
    rig.srv.advance(5.0)
    await asyncio.sleep(0.3)
    (job,) = rig.jobs.jobs(identity=rig.judge.identity)
    await runner.cancel(job)
    rig.srv.advance(1.0)
    await asyncio.sleep(0.1)
    out = await runner.run(list(reqs), reqs.__getitem__, wait=False)
    kept = rig.cache.present(reqs)
    assert 1 <= len(kept) < 10
    # cancelled lines of this run's own batch wait for the next run
    assert set(out.unanswered) == set(reqs) - kept and out.submitted == 0


async def test_validation_failure_names_the_line(rig: Rig) -> None:
    rig.srv.configure(fail_validation="the model field is missing")
    reqs = rig.requests(3)
    named = r"line 1 \(key [0-9a-f]{16}…\).*model field is missing"
    if rig.api.provider == "anthropic":  # validated at create: the request's index
        named = r"requests.0 \(key [0-9a-f]{16}…\).*model field is missing"
    with pytest.raises(UserError, match=named):
        await rig.run(reqs)
    assert rig.jobs.held(reqs) == set()


async def test_recovers_a_batch_created_but_not_recorded(rig: Rig) -> None:
    """A crash between the provider's create and our record: the next run adopts the batch."""
    reqs = rig.requests(4)
    job, keys = rig.jobs.claim(rig.judge.identity, list(reqs)) or (None, [])
    assert job is not None
    lines = [(k, rig.api.line(k, reqs[k])) for k in keys]
    await rig.api.submit(job.id, lines, lambda **f: rig.jobs.update(job.id, **f))
    rig.jobs.update(job.id, owner="elsewhere-host-gone:1", updated_at=0.0)  # stale
    rig.jobs.update(job.id, owner=f"{__import__('socket').gethostname()}:999999999")
    out = await rig.run(reqs)
    assert out.submitted == 0 and out.collected == 4
    assert rig.srv.stats()["calls"]["create"] == 1
    assert rig.billed(reqs) == [1] * 4


async def test_a_claim_that_never_reached_the_provider_is_released(rig: Rig) -> None:
    reqs = rig.requests(3)
    claim = rig.jobs.claim(rig.judge.identity, list(reqs))
    assert claim is not None
    job = claim[0]
    assert await resolve(rig.api, rig.jobs, job) is None
    assert rig.jobs.held(reqs) == set()
    out = await rig.run(reqs)
    assert out.collected == 3 and rig.billed(reqs) == [1] * 3


async def test_claims_exclude_keys_another_job_holds(rig: Rig) -> None:
    reqs = list(rig.requests(4))
    first = rig.jobs.claim(rig.judge.identity, reqs[:3])
    assert first is not None
    second = rig.jobs.claim(rig.judge.identity, reqs)
    assert second is not None and second[1] == reqs[3:]
    assert rig.jobs.claim(rig.judge.identity, reqs[:3]) is None


async def test_max_cost_reserves_each_batch_ceiling(rig: Rig) -> None:
    from benchmark.runner.batch import BatchBudget

    rig.api.limits = Limits(lines=4, bytes=10_000_000)
    reqs = rig.requests(12)
    budget = BatchBudget(limit_usd=9.0)
    out = await rig.runner().run(list(reqs), reqs.__getitem__, budget=budget, ceiling=lambda r: 1.0)
    # each batch of 4 reserves $4: the third would pass $9, so it is never submitted
    assert out.budget_stopped and out.submitted == 8 and rig.srv.stats()["calls"]["create"] == 2
    assert budget.reserved_usd == 0.0  # settled at collection (the loopback costs nothing)


async def test_shared_conversation_is_read_from_the_prompt_cache(rig: Rig) -> None:
    history = "The user asked a long question. " * 200  # ~1,600 tokens every comparison shares
    reqs = {}
    for i in range(3):
        text = f"<conversation>\n{history}\n</conversation>\n\n" + PROMPT.format(i=i)
        r = rig.judge.options.request([Message("user", text)], rig.judge.identity, max_tokens=64)
        reqs[cache_key(rig.judge.identity, r)] = r
    await rig.run(reqs)
    usage = [c.usage for c in rig.cache.get_many(reqs).values()]
    assert sum(u.cached_input_tokens for u in usage) >= 2 * 1024
    if rig.api.provider == "anthropic":  # written once, at 1.25x, then read at 0.1x
        assert sum(u.cache_write_tokens > 0 for u in usage) == 1


def test_prompt_cache_breakpoint_after_the_conversation() -> None:
    from judges.prompt_cache import anthropic_content

    text = "<conversation>\n[User]\nhi\n</conversation>\n\n<response A>\nx\n</response A>"
    head, tail = anthropic_content(text)  # type: ignore[misc]
    assert head["cache_control"] == {"type": "ephemeral"} and head["text"].endswith(
        "</conversation>"
    )
    assert head["text"] + tail["text"] == text and "cache_control" not in tail
    assert anthropic_content("no shared part") == "no shared part"


def test_batch_and_cache_discounts() -> None:
    from judges.base import Usage
    from judges.pricing import Rates

    rates = Rates(2.0, 8.0, 0.5, "gpt-4.1")  # cached input at a quarter
    assert rates.cost(Usage(1_000_000, 100_000)) == pytest.approx(2.8)
    assert rates.cost(Usage(1_000_000, 100_000, batch=True)) == pytest.approx(1.4)
    cached = Usage(1_000_000, 100_000, cached_input_tokens=500_000, batch=True)
    assert rates.cost(cached) == pytest.approx((0.5 * 2 + 0.5 * 0.5 + 0.8) / 2)
    written = Usage(1_000_000, 0, cached_input_tokens=200_000, cache_write_tokens=100_000)
    assert Rates(3.0, 15.0, 0.3, "claude-sonnet-4-5").cost(written) == pytest.approx(
        (0.7 + 0.2 * 0.1 + 0.1 * 1.25) * 3.0
    )


def test_batches_cli_list_status_cancel_collect(
    server: BatchServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmark.cli import main

    rig = Rig(server, "openai", tmp_path / "cache")
    server.configure(process_s=30.0)
    reqs = rig.requests(6)

    async def submit() -> None:
        await rig.run(reqs, wait=False)
        await rig.close()

    asyncio.run(submit())
    cache = ["--cache-dir", str(tmp_path / "cache")]
    assert main(["batches", "list", *cache]) == 0
    listed = capsys.readouterr().out
    assert "openai:judge-1" in listed and "6 requests" in listed
    server.advance(0.5)  # past validation
    assert main(["batches", "status", *cache]) == 0
    assert "in_progress" in capsys.readouterr().out
    server.advance(5.0)  # 1/6 of the lines done
    assert main(["batches", "cancel", *cache]) == 0
    assert "cancelling" in capsys.readouterr().out
    server.advance(1.0)
    assert main(["batches", "collect", *cache]) == 0
    assert "answers collected" in capsys.readouterr().out
    assert main(["batches", "list", *cache]) == 0
    assert "no open batch jobs" in capsys.readouterr().out
    with CacheStore(tmp_path / "cache") as store:
        assert 1 <= len(store.present(reqs)) < 6


async def test_a_batch_the_provider_no_longer_knows_frees_its_keys(rig: Rig) -> None:
    reqs = rig.requests(3)
    rig.srv.configure(process_s=30.0)
    await rig.run(reqs, wait=False)
    (job,) = rig.jobs.jobs(identity=rig.judge.identity)
    rig.jobs.update(
        job.id, batch_id="batch_unknown" if rig.api.provider == "openai" else "msgbatch_unknown"
    )
    rig.srv.configure(process_s=0.3)
    out = await rig.run(reqs)  # the lost job is done; its keys go into a new batch
    assert out.collected == 3 and rig.jobs.get(job.id).status == "gone"  # type: ignore[union-attr]
