"""The runner end to end: the real `openai` SDK against the loopback server (tests/support/loopback_server.py).

Must show: a cached rerun makes zero requests (its speed is `make bench`'s); a SIGKILLed run resumes paying at most
`concurrency` answers twice; two processes share one cache; a template or temperature change
misses the cache and a parser change does not; a BoN pair equal to a pairwise pair is asked once."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support.commands import rmb_run_cmd
from support.items import write_items
from support.runs import KEY_ENV, MODEL, answered, go

from benchmark.api import MANIFEST_FILE, RunResult
from benchmark.rundir import read_judged
from benchmark.runner.prepare import SPOT_CHECKS
from judges.base import JudgeIdentity, Usage
from judges.cache import CacheStore

REPO = Path(__file__).resolve().parent.parent


def subprocess_cmd(srv: Any, data: Path, tmp: Path, *extra: str, concurrency: int = 8) -> list[str]:
    """The same run as `go`, as a user types it."""
    return rmb_run_cmd(
        srv, data, tmp, *extra, model=MODEL, key_env=KEY_ENV, concurrency=concurrency
    )


def popen(cmd: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "LOOPBACK_KEY": os.environ.get("LOOPBACK_KEY", "sk-loopback")}
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO
    )


# ---------------------------------------------------------------------------- tests


@pytest.mark.slow
def test_rerun_makes_no_request(loopback: Any, tmp_path: Path) -> None:
    """A cached rerun of 2,000 comparisons asks nothing and reads the same verdicts (how fast
    it is, process start included, is `make bench`'s cached-rerun line)."""
    loopback.configure(latency=0.005, latency_jitter=0.015)
    data = write_items(tmp_path / "items.jsonl", 1000)
    first = go(loopback, data, tmp_path, concurrency=64)
    assert first.status == "complete" and first.comparisons == 2000
    assert first.sent == first.requests == 2000 and first.cache_hits == 0
    paid = answered(loopback)
    assert paid == 2000
    requests_before = loopback.stats()["requests"]

    again = go(loopback, data, tmp_path, concurrency=64)
    assert loopback.stats()["requests"] == requests_before  # not one request
    assert again.run_dir == first.run_dir and again.status == "complete"
    assert again.cache_hits == 2000 and again.sent == 0
    lines = read_judged(again.run_dir)
    assert len(lines) == 2000 and all(j.cached for j in lines)
    assert [j.verdict for j in lines] == [j.verdict for j in first.judged]
    assert all(j.verdict.kind == "choice" for j in lines)
    manifest = json.loads((again.run_dir / MANIFEST_FILE).read_text())
    assert manifest["status"] == "complete" and manifest["counts"]["sent"] == 0
    assert manifest["options"]["concurrency"] == 64  # RunOptions, field by field
    assert (
        manifest["template"]["parser"] == "verdict-ab"
        and len(manifest["template"]["text_hash"]) == 64
    )
    assert "sk-" not in json.dumps(manifest)


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_pays_at_most_concurrency_twice(
    loopback: Any, tmp_path: Path
) -> None:
    loopback.configure(latency=0.01, latency_jitter=0.01)
    data = write_items(tmp_path / "items.jsonl", 100, n_bon=25, losers=2)  # 200 + 100 requests
    concurrency = 8
    proc = popen(subprocess_cmd(loopback, data, tmp_path, concurrency=concurrency))
    kill_at = random.Random().randint(20, 250)
    deadline = time.monotonic() + 120
    while (
        loopback.stats()["requests"] < kill_at
        and proc.poll() is None
        and time.monotonic() < deadline
    ):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_after = answered(loopback)
    assert 0 < killed_after < 300, f"the kill at {kill_at} requests came too late"

    result = go(loopback, data, tmp_path, concurrency=concurrency)
    assert result.status == "complete" and result.requests == 300
    assert answered(loopback) <= result.requests + concurrency, (
        kill_at,
        killed_after,
        answered(loopback),
    )
    assert len(loopback.stats()["answers"]) == 300  # every request answered at least once
    lines = read_judged(result.run_dir)
    assert len(lines) == result.comparisons == 300
    assert all(j.verdict.kind == "choice" for j in lines)
    assert result.cache_hits >= killed_after - concurrency


@pytest.mark.slow
def test_sigterm_stops_cleanly_and_says_how_to_resume(loopback: Any, tmp_path: Path) -> None:
    loopback.configure(latency=0.03)
    data = write_items(tmp_path / "items.jsonl", 100)
    proc = popen(subprocess_cmd(loopback, data, tmp_path, concurrency=4))
    while loopback.stats()["requests"] < 20 and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "to resume" in err and "rmb run --judge" in err and "--base-url" in err
    (run_dir,) = (tmp_path / "runs").iterdir()
    manifest = json.loads((run_dir / MANIFEST_FILE).read_text())
    assert manifest["status"] == "interrupted" and manifest["resume"].startswith("rmb run")
    stopped = answered(loopback)
    assert stopped < 200
    with CacheStore(tmp_path / "cache") as store:
        # in-flight answers were awaited (grace period) and every answer got was committed
        assert store.stats().entries == stopped
    result = go(loopback, data, tmp_path, concurrency=4)
    assert result.status == "complete" and result.run_dir == run_dir
    assert answered(loopback) == 200  # nothing paid twice


@pytest.mark.slow
def test_two_processes_on_one_cache(loopback: Any, tmp_path: Path) -> None:
    # ~10 s of requests each, so the two runs overlap even on a busy machine
    loopback.configure(latency=0.4)
    data = write_items(tmp_path / "items.jsonl", 150)
    procs = [
        popen(
            subprocess_cmd(
                loopback,
                data,
                tmp_path,
                "--limit",
                "100",
                "--seed",
                str(seed),
                "--run-id",
                f"r{seed}",
            )
        )
        for seed in (1, 2)
    ]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in outs]
    # each process keeps at most 8 requests in flight: more at once means both were running
    assert loopback.stats()["max_in_flight"] > 8
    keys = {j.key for seed in (1, 2) for j in read_judged(tmp_path / "runs" / f"r{seed}")}
    assert 200 < len(keys) < 400  # the two selections overlap but are not the same
    with CacheStore(tmp_path / "cache") as store:
        assert set(store.get_many(keys)) == keys  # nothing lost
        assert store.stats().entries == len(keys)


def test_template_and_temperature_miss_the_cache_a_parser_does_not(
    loopback: Any, tmp_path: Path
) -> None:
    from prompts import BUILTIN_DIR

    data = write_items(tmp_path / "items.jsonl", 20)
    base = go(loopback, data, tmp_path)
    assert base.sent == 40

    def sent_for(**kw: Any) -> int:
        before = loopback.stats()["requests"]
        r = go(loopback, data, tmp_path, **kw)
        assert r.status == "complete" and len(r.judged) == 40
        assert r.sent == loopback.stats()["requests"] - before
        return r.sent

    source = (BUILTIN_DIR / "pairwise.j2").read_text()
    reworded = tmp_path / "pairwise-reworded.j2"
    reworded.write_text(source.replace("You must pick one.", "You must pick exactly one."))
    other_parser = tmp_path / "pairwise-tieparser.j2"
    assert 'parser = "verdict-ab"' in source
    other_parser.write_text(source.replace('parser = "verdict-ab"', 'parser = "verdict-abc"'))

    assert sent_for(template=str(reworded)) == 40
    assert sent_for(temperature=0.7) == 40
    assert sent_for(template=str(other_parser)) == 0
    assert sent_for() == 0


def test_bon_pair_identical_to_a_pairwise_pair_is_asked_once(loopback: Any, tmp_path: Path) -> None:
    conv = [{"role": "user", "content": "Which is the capital of France?"}]
    cat = "Helpfulness/Code/Data Management"
    records = [
        {
            "pair_uid": "p1",
            "category_path": f"Pairwise_set/{cat}",
            "conversation_input": conv,
            "chosen": {"llm_name": "a", "answer": "Paris."},
            "reject": {"llm_name": "b", "answer": "Lyon."},
        },
        {
            "bon_uid": "b1",
            "category_path": f"BoN_set/{cat}",
            "conversation_input": conv,
            "bon_best": {"llm_name": "a", "answer": "Paris."},
            "loser_list": [
                {"llm_name": "b", "answer": "Lyon."},
                {"llm_name": "c", "answer": "Nice."},
            ],
        },
    ]
    data = tmp_path / "items.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    r = go(loopback, data, tmp_path)
    assert r.comparisons == 2 + 4 and r.requests == 4 and r.sent == 4
    assert answered(loopback) == 4 and max(loopback.stats()["answers"].values()) == 1
    by_id = {j.comparison.id: j for j in r.judged}
    dup = by_id["bon:b1|bon-pairwise|best,loser1|v0|s0"]
    orig = by_id["pair:p1|pairwise|chosen,rejected|v0|s0"]
    assert dup.key == orig.key and dup.verdict == orig.verdict
    assert dup.cached != orig.cached  # one paid, the other read its answer


def test_samples_are_separate_requests_and_cached_each(loopback: Any, tmp_path: Path) -> None:
    data = write_items(tmp_path / "items.jsonl", 10)
    r = go(loopback, data, tmp_path, samples=3, temperature=0.8)
    assert r.comparisons == 60 and r.requests == 60 and r.sent == 60
    assert len({j.key for j in r.judged}) == 60
    assert {j.comparison.sample_index for j in r.judged} == {0, 1, 2}
    again = go(loopback, data, tmp_path, samples=3, temperature=0.8)
    assert again.sent == 0 and answered(loopback) == 60
    one = go(loopback, data, tmp_path, samples=1, temperature=0.8)
    assert one.sent == 0  # sample 0 of the same prompt is the same request


def test_cached_rerun_renders_nothing_unless_its_saved_keys_are_stale(
    loopback: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prompts.templates import Template

    renders = 0
    real_render = Template.render

    def counting(self: Template, **kw: Any) -> Any:
        nonlocal renders
        # the runner's renders only (a report renders a few example prompts too), through
        # render_comparison
        renders += sys._getframe(2).f_code.co_filename.endswith("prepare.py")
        return real_render(self, **kw)

    monkeypatch.setattr(Template, "render", counting)
    data = write_items(tmp_path / "items.jsonl", 20)
    first_keys = [j.key for j in go(loopback, data, tmp_path).judged]
    assert renders == 40 + 40  # once for the keys, once more to send each miss

    renders = 0
    again = go(loopback, data, tmp_path)
    assert renders == SPOT_CHECKS and again.sent == 0  # only the spot check of the saved keys
    assert [j.key for j in again.judged] == first_keys

    # keys an older rmb-judge rendered differently: the first spot check fails, all are rendered
    saved = again.run_dir / "keys.json"
    stale = json.loads(saved.read_text())
    stale["keys"] = [[cid, key[::-1]] for cid, key in stale["keys"]]
    saved.write_text(json.dumps(stale))
    renders = 0
    third = go(loopback, data, tmp_path)
    assert renders == 1 + 40 and third.sent == 0
    assert [j.key for j in third.judged] == first_keys


def test_saved_keys_follow_their_comparisons_when_the_plan_changes(
    loopback: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stale-keys bug: keys.json was zipped with the comparisons by position, so a change to
    what comparison i is (here the plan's seeded order coin) read each key's answer for another
    order: an always-right judge went from 1.0 to 0.0 with no request sent."""
    import benchmark.plan

    loopback.configure(policy="prefer:Use sorted()")  # the chosen answer of every item
    data = write_items(tmp_path / "items.jsonl", 20)
    first = go(loopback, data, tmp_path, orders="random")
    assert first.scores.overall.accuracy == 1.0 and first.sent == 20

    real_digest = benchmark.plan._digest

    def other_coin(seed: int, *parts: str) -> bytes:
        d = real_digest(seed, *parts)
        return bytes([d[0] ^ 1]) + d[1:]

    monkeypatch.setattr(benchmark.plan, "_digest", other_coin)
    again = go(loopback, data, tmp_path, orders="random")
    assert again.run_dir == first.run_dir  # same inputs: the saved keys are consulted
    # every comparison now shows the other order: a new request each, still always right
    assert again.sent == 20 and again.scores.overall.accuracy == 1.0
    assert all(
        b.comparison.shown == a.comparison.shown[::-1]
        for a, b in zip(first.judged, again.judged, strict=True)
    )


def test_a_changed_imported_macro_misses_the_cache(loopback: Any, tmp_path: Path) -> None:
    from prompts import BUILTIN_DIR

    mine = tmp_path / "templates"
    mine.mkdir()
    (mine / "mine.j2").write_text(
        (BUILTIN_DIR / "pairwise.j2").read_text().replace('name = "pairwise"', 'name = "mine"')
    )
    common = (BUILTIN_DIR / "_common.j2").read_text()
    (mine / "_common.j2").write_text(common)  # found before the built-in one
    data = write_items(tmp_path / "items.jsonl", 20)
    first = go(loopback, data, tmp_path, template=str(mine / "mine.j2"))
    assert first.sent == 40
    assert go(loopback, data, tmp_path, template=str(mine / "mine.j2")).sent == 0
    # the template file is the same, the macro it imports is not: the requests change, and so
    # does the template's hash and with it the run (the old run's reports stay as they were)
    (mine / "_common.j2").write_text(
        common.replace("<conversation>", "<dialogue>").replace("</conversation>", "</dialogue>")
    )
    again = go(loopback, data, tmp_path, template=str(mine / "mine.j2"))
    assert again.sent == 40 and answered(loopback) == 80
    assert again.run_dir != first.run_dir
    hashes = [
        json.loads((r.run_dir / "manifest.json").read_text())["template"]["text_hash"]
        for r in (first, again)
    ]
    assert hashes[0] != hashes[1]


def test_dry_run_sends_nothing(loopback: Any, tmp_path: Path) -> None:
    data = write_items(tmp_path / "items.jsonl", 30, n_bon=5, losers=2)
    dry = go(loopback, data, tmp_path, dry_run=True)
    assert loopback.stats()["requests"] == 0
    assert dry.status == "dry-run" and dry.estimate is not None
    assert (dry.estimate.comparisons, dry.estimate.requests, dry.estimate.cached) == (80, 80, 0)
    assert dry.estimate.input_tokens > 80 * 50
    go(loopback, data, tmp_path)
    again = go(loopback, data, tmp_path, dry_run=True)
    assert (
        again.estimate is not None
        and again.estimate.cached == 80
        and again.estimate.input_tokens == 0
    )


def test_bad_key_stops_the_run_at_once(
    loopback: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from judges.errors import JudgeSetupError

    loopback.configure(expected_key="sk-right", latency=0.01)
    monkeypatch.setenv("LOOPBACK_KEY", "sk-wrong")
    data = write_items(tmp_path / "items.jsonl", 200)
    with pytest.raises(JudgeSetupError):
        go(loopback, data, tmp_path, concurrency=8)
    assert loopback.stats()["requests"] <= 16  # stopped at once, not after 400 tries


GPT4O = JudgeIdentity("openai", "gpt-4o", "")


class PricedAs:
    """The real loopback judge, billed as a hosted model so the budget has prices to work with."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.identity = GPT4O
        self.stats = inner.stats

    async def complete(self, request: Any) -> Any:
        return await self.inner.complete(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_max_cost_stops_before_the_budget(loopback: Any, tmp_path: Path) -> None:
    from judges.pricing import cost_usd

    data = write_items(tmp_path / "items.jsonl", 100)

    def attempt(budget: float | None, dry: bool = False) -> RunResult:
        return go(
            loopback, data, tmp_path, concurrency=8, max_cost=budget, dry_run=dry, wrap=PricedAs
        )

    dry = attempt(None, dry=True)
    assert dry.estimate is not None and 0 < dry.estimate.cost_input_usd < dry.estimate.cost_max_usd
    stopped = attempt(0.05)
    assert stopped.status == "budget"
    assert 0 < stopped.sent < 200 and stopped.spent_usd <= 0.05
    paid = answered(loopback)
    assert paid == stopped.sent
    # what each paid answer cost (a repeated system prompt is billed as cached input, cheaper
    # than the same tokens at the full input rate)
    billed = sum(j.cost_usd for j in stopped.judged if not j.cached)
    undiscounted = sum(
        cost_usd(GPT4O, Usage(j.input_tokens, j.output_tokens)) or 0
        for j in stopped.judged
        if not j.cached
    )
    assert billed == pytest.approx(stopped.spent_usd) and billed < undiscounted
    manifest = json.loads((stopped.run_dir / MANIFEST_FILE).read_text())
    assert manifest["status"] == "budget"
    done = attempt(None)
    assert done.status == "complete" and done.sent == 200 - paid and answered(loopback) == 200


class Batched:
    """A batch backend's shape (in-process vLLM's `complete_many`), answering through the real
    loopback judge, to show the runner hands misses over in chunks and commits each chunk."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.identity = inner.identity
        self.stats = inner.stats
        self.batches: list[int] = []

    async def complete(self, request: Any) -> Any:
        raise AssertionError("a batch judge gets complete_many")

    async def complete_many(self, requests: Any) -> list[Any]:
        import asyncio

        self.batches.append(len(requests))
        return list(await asyncio.gather(*(self.inner.complete(r) for r in requests)))

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_batch_judge_gets_chunks_and_each_is_committed(loopback: Any, tmp_path: Path) -> None:
    data = write_items(tmp_path / "items.jsonl", 150)
    judges: list[Batched] = []

    def batched(judge: Any) -> Batched:
        judges.append(Batched(judge))
        return judges[-1]

    result = go(loopback, data, tmp_path, concurrency=64, wrap=batched)
    assert result.status == "complete" and result.sent == 300
    assert judges[-1].batches == [256, 44]
    with CacheStore(tmp_path / "cache") as store:
        assert store.stats().entries == 300
    again = go(loopback, data, tmp_path, concurrency=64, wrap=batched)
    assert again.sent == 0 and judges[-1].batches == []


def test_progress_bar_shows_the_counters() -> None:
    from benchmark.runner.progress import Counters, ProgressView
    from judges.base import JudgeStats

    class J:
        identity = GPT4O
        stats = JudgeStats(retries=3)

    c = Counters(
        total=10,
        cache_hits=4,
        sent=2,
        answered=2,
        input_tokens=900,
        output_tokens=100,
        spent_usd=0.0123,
    )
    judge = J()
    view = ProgressView(c, judge, enabled=True)  # type: ignore[arg-type]
    judge.stats.retries += 2  # retries during this run count, not the judge's earlier ones
    view.refresh()
    task = view._progress.tasks[0]
    assert task.completed == 6 and task.total == 10
    info = task.fields["info"]
    assert "hits 4" in info and "retries 2" in info and "1000 tok" in info and "$0.01" in info
    assert "req/s" in info
    assert ProgressView(c, J(), enabled=False)._progress is None  # type: ignore[arg-type]


def test_one_token_verdicts_cut_at_the_limit_are_cached(loopback: Any, tmp_path: Path) -> None:
    # llama.cpp ends a max_tokens=1 answer with finish_reason "length": for a first-token
    # verdict that is the designed length, so the answer is cached, not paid again
    loopback.configure(policy="fixed:A is the better reply")
    data = write_items(tmp_path / "items.jsonl", 5)
    first = go(loopback, data, tmp_path, template="pairwise-logprob")
    assert first.sent == 10
    assert {j.finish_reason for j in first.judged} == {"length"}
    assert all(j.verdict.kind == "choice" for j in first.judged)
    again = go(loopback, data, tmp_path, template="pairwise-logprob")
    assert again.sent == 0 and again.cache_hits == 10
