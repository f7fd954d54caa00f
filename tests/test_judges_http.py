"""The OpenAI and Anthropic backends against the loopback server: the official SDKs, and the
lean aiohttp transport (every test that builds a judge runs on both)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from support.loopback_server import LoopbackServer

from judges.base import ChatRequest, JudgeOptions, Message
from judges.errors import JudgeSetupError, UserError
from judges.http.judge import HttpJudge
from judges.providers.anthropic_api import AnthropicJudge
from judges.providers.openai_api import OpenAIJudge
from judges.registry import build_judge, default_judge_spec, parse_spec

SECRET = "sk-test-SECRET-0123456789abcdef"
PAIRWISE = "Compare the two responses.\n<response A>\nyes\n</response A>\n<response B>\nno\n</response B>\nAnswer [[A]] or [[B]]."


def opts(srv: LoopbackServer, api: str = "openai", **kw: object) -> JudgeOptions:
    url = srv.openai_base_url if api == "openai" else srv.anthropic_base_url
    defaults: dict[str, object] = {"base_url": url, "timeout_s": 2.0, "backoff_s": 0.02}
    return JudgeOptions(**{**defaults, **kw})  # type: ignore[arg-type]


Make = Callable[..., HttpJudge]


@pytest.fixture(params=["sdk", "lean"])
def transport(request: pytest.FixtureRequest) -> str:
    """The judge's transport: the official SDK or the lean aiohttp session."""
    return str(request.param)


@pytest.fixture
async def judge(loopback: LoopbackServer, transport: str) -> AsyncIterator[Make]:
    """Build judges against the loopback server; all are closed after the test."""
    made: list[HttpJudge] = []

    def make(api: str = "openai", **kw: object) -> HttpJudge:
        kw.setdefault("transport", transport)
        j = build_judge(f"{api}:judge-1", opts(loopback, api, **kw))
        assert isinstance(j, HttpJudge)
        made.append(j)
        return j

    yield make
    for j in made:
        await j.aclose()


def ask(j: HttpJudge, text: str = PAIRWISE, i: int = 0, **kw: Any) -> ChatRequest:
    msgs = [Message("system", "You judge replies."), Message("user", f"{i} {text}")]
    return j.options.request(msgs, j.identity, **kw)


async def test_answer_round_trip(loopback: LoopbackServer, judge: Make, transport: str) -> None:
    j = judge()
    c = await j.complete(ask(j))
    assert c.is_answer and c.text.rstrip().endswith(("[[A]]", "[[B]]")), c
    assert c.usage.input_tokens > 0 and c.usage.output_tokens > 0
    assert c.attempts == 1 and c.latency_s > 0 and c.created_at > 0
    assert j.identity.base_url == loopback.openai_base_url
    assert j.stats.requests == 1 and j.stats.cost_usd == 0.0  # a loopback server is free
    assert isinstance(j, OpenAIJudge) and j.transport == transport


def test_transport_default_and_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    custom = "http://127.0.0.1:9/v1"
    for options, expected in (
        (JudgeOptions(), "sdk"),  # OpenAI's own API
        (JudgeOptions(base_url=custom), "lean"),  # a custom server: throughput matters
        (JudgeOptions(transport="sdk", base_url=custom), "sdk"),
        (JudgeOptions(transport="lean"), "lean"),
    ):
        j = build_judge("openai:gpt-4o", options)
        assert isinstance(j, OpenAIJudge) and j.transport == expected
    with pytest.raises(JudgeSetupError, match="unknown transport 'grpc'"):
        build_judge("openai:gpt-4o", JudgeOptions(transport="grpc"))
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    assert build_judge("anthropic:claude-haiku-4-5", JudgeOptions()).transport == "sdk"
    assert build_judge("anthropic:m", JudgeOptions(base_url="http://127.0.0.1:9")).transport == (
        "lean"
    )


async def test_transient_failures_are_retried_until_an_answer(
    loopback: LoopbackServer, judge: Make
) -> None:
    loopback.configure(script=["500", "reset", "malformed", "hang", "503", "429"], retry_after=0.05)
    j = judge(timeout_s=0.5)
    c = await j.complete(ask(j))
    st = loopback.stats()
    assert c.is_answer, c
    assert c.attempts == 7 and j.stats.retries == 6
    assert st["requests"] == 7
    assert list(st["answers"].values()) == [1]  # one paid answer


async def test_retry_after_is_waited(loopback: LoopbackServer, judge: Make) -> None:
    loopback.configure(script=["429"], retry_after=0.8)
    j = judge(backoff_s=5.0)  # the server's wait wins over our own backoff
    c = await j.complete(ask(j))
    ts = loopback.stats()["timestamps"]
    assert c.is_answer and c.attempts == 2
    assert 0.8 <= ts[1] - ts[0] < 2.0
    assert c.latency_s >= 0.8


async def test_retry_after_ms_is_preferred(loopback: LoopbackServer, judge: Make) -> None:
    loopback.configure(script=["429"], retry_after=30, retry_after_ms=300)
    j = judge()
    c = await j.complete(ask(j))
    ts = loopback.stats()["timestamps"]
    assert c.is_answer and 0.3 <= ts[1] - ts[0] < 2.0


async def test_exhausted_retries_give_an_error_completion(
    loopback: LoopbackServer, judge: Make
) -> None:
    loopback.configure(faults={"500": 1.0})
    j = judge(max_retries=2)
    c = await j.complete(ask(j))
    assert c.finish_reason == "error" and not c.is_answer
    assert c.attempts == 3 and loopback.stats()["requests"] == 3
    assert c.error is not None and "HTTP 500" in c.error and "3 attempts" in c.error
    assert j.stats.errors == 1


async def test_invalid_request_500_is_not_retried(loopback: LoopbackServer, judge: Make) -> None:
    loopback.configure(script=["invalid500"])
    j = judge()
    c = await j.complete(ask(j))
    assert c.finish_reason == "error" and c.attempts == 1
    assert loopback.stats()["requests"] == 1


@pytest.mark.parametrize("kind", ["context_length", "content_filter"])
async def test_refusal_is_a_marked_completion_not_retried(
    loopback: LoopbackServer, judge: Make, kind: str
) -> None:
    loopback.configure(script=[kind])
    j = judge()
    c = await j.complete(ask(j))
    assert c.finish_reason == "refused" and c.attempts == 1 and not c.is_answer
    assert c.error and c.error.startswith(kind.replace("_length", " too long").replace("_", " "))
    assert loopback.stats()["requests"] == 1


async def test_bad_key_fails_fast_with_the_message_and_never_the_key(
    loopback: LoopbackServer,
    judge: Make,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    loopback.configure(expected_key="sk-the-right-one", leak_key_in_errors=True)
    monkeypatch.setenv("RMB_TEST_KEY", SECRET)
    j = judge(api_key_env="RMB_TEST_KEY")
    with pytest.raises(JudgeSetupError) as err:
        await j.complete(ask(j))
    msg = str(err.value)
    assert "Incorrect API key provided" in msg and "$RMB_TEST_KEY" in msg  # says what to fix
    assert SECRET not in msg and "[redacted]" in msg  # the server echoed it; we did not
    assert loopback.stats()["requests"] == 1
    assert SECRET not in caplog.text


@pytest.mark.slow
async def test_right_key_is_sent(
    loopback: LoopbackServer, judge: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    loopback.configure(expected_key=SECRET)
    monkeypatch.setenv("RMB_TEST_KEY", SECRET)
    for api in ("openai", "anthropic"):
        j = judge(api, api_key_env="RMB_TEST_KEY")
        assert (await j.complete(ask(j))).is_answer


async def test_unknown_model_stops_the_run(loopback: LoopbackServer, judge: Make) -> None:
    loopback.configure(models=["another-model"])
    j = judge()
    with pytest.raises(JudgeSetupError, match=r"judge-1.*does not exist.*model name"):
        await j.complete(ask(j))


async def test_in_flight_never_exceeds_the_cap(loopback: LoopbackServer, judge: Make) -> None:
    loopback.configure(latency=0.05)
    j = judge(concurrency=5)
    done = await asyncio.gather(*(j.complete(ask(j, i=i)) for i in range(40)))
    assert all(c.is_answer for c in done)
    assert loopback.stats()["max_in_flight"] == 5


async def test_request_rate_throttle_holds(loopback: LoopbackServer, judge: Make) -> None:
    j = judge(concurrency=50, requests_per_s=10)
    t0 = time.perf_counter()
    await asyncio.gather(*(j.complete(ask(j, i=i)) for i in range(25)))
    elapsed = time.perf_counter() - t0
    ts = sorted(loopback.stats()["timestamps"])
    assert elapsed >= 2.3  # 25 requests paced at 10/s
    assert (len(ts) - 1) / (ts[-1] - ts[0]) <= 10.5
    # no second ever saw more than the rate (slack for send jitter on a busy machine)
    assert max(sum(1 for u in ts if t <= u < t + 1.0) for t in ts) <= 12


async def test_logprobs_come_back_parsed(loopback: LoopbackServer, judge: Make) -> None:
    j = judge()
    c = await j.complete(
        ask(j, "Answer with the single letter A or B.", max_tokens=1, top_logprobs=2)
    )
    assert c.is_answer and c.text in ("A", "B") and c.logprobs is not None
    (pos,) = c.logprobs
    assert pos.token == c.text and {t for t, _ in pos.top} == {"A", "B"}
    assert pos.top[0] == (c.text, pos.logprob) and pos.logprob < 0


async def test_truncated_answer_is_marked_length(loopback: LoopbackServer, judge: Make) -> None:
    j = judge()
    c = await j.complete(ask(j, max_tokens=5))
    assert c.finish_reason == "length" and not c.is_answer and c.text


@pytest.mark.parametrize("api", ["openai", "anthropic"])
async def test_reasoning_is_kept_apart(loopback: LoopbackServer, judge: Make, api: str) -> None:
    loopback.configure(reasoning="field")
    j = judge(api)
    c = await j.complete(ask(j))
    loopback.configure(reasoning="think")
    inline = await j.complete(ask(j, i=1))
    assert c.reasoning and "compare" in c.reasoning and "think" not in c.text
    assert c.text.rstrip().endswith(("[[A]]", "[[B]]"))
    assert inline.reasoning is None and inline.text.startswith("<think>")  # the parser's job


async def test_anthropic_path(loopback: LoopbackServer, judge: Make, transport: str) -> None:
    loopback.configure(script=["429", "content_filter"], retry_after=0.05)
    j = judge("anthropic")
    first = await j.complete(ask(j))  # 429 then a refusal stop reason
    second = await j.complete(ask(j, max_tokens=5))
    third = await j.complete(ask(j, i=2))
    assert first.finish_reason == "refused" and first.attempts == 2
    assert second.finish_reason == "length"
    assert third.is_answer and third.text.rstrip().endswith(("[[A]]", "[[B]]"))
    assert j.identity.provider == "anthropic" and j.stats.retries == 1
    assert isinstance(j, AnthropicJudge) and j.transport == transport


async def test_anthropic_refuses_logprobs_before_any_request(
    loopback: LoopbackServer, judge: Make
) -> None:
    with pytest.raises(JudgeSetupError, match="no logprobs"):
        judge("anthropic", top_logprobs=5)
    j = judge("anthropic")
    with pytest.raises(UserError, match="no logprobs"):  # the model rules say so first
        await j.complete(ask(j, top_logprobs=5))
    assert loopback.stats()["requests"] == 0


def test_hosted_api_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(JudgeSetupError, match="OPENAI_API_KEY"):
        build_judge("openai:gpt-4o", JudgeOptions())
    with pytest.raises(JudgeSetupError, match="ANTHROPIC_API_KEY"):
        build_judge("anthropic:claude-haiku-4-5", JudgeOptions())
    assert default_judge_spec() == "local"
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    assert default_judge_spec().startswith("anthropic:")


def test_specs() -> None:
    assert parse_spec("openai:gpt-4o") == ("openai", "gpt-4o")
    assert parse_spec("vllm:/models/qwen:7b") == ("vllm", "/models/qwen:7b")
    assert parse_spec("local") == ("local", "")
    with pytest.raises(UserError, match="openai, anthropic, vllm"):
        parse_spec("gemini:pro")
    with pytest.raises(UserError, match="name a model"):
        parse_spec("openai:")


@pytest.mark.parametrize("api", ["openai", "anthropic"])
@pytest.mark.parametrize("transport", ["sdk", "lean"])
def test_one_judge_serves_one_event_loop_after_another(
    loopback: LoopbackServer, api: str, transport: str
) -> None:
    """`benchmark.run(judge=obj)` twice runs two event loops: a judge made for the first (its
    session, its concurrency cap) must not break in the second."""
    j = build_judge(f"{api}:judge-1", opts(loopback, api, transport=transport, concurrency=1))
    assert isinstance(j, HttpJudge)

    async def three(offset: int) -> list[bool]:
        # three at once through a cap of one: the second and third wait on the cap
        done = await asyncio.gather(*(j.complete(ask(j, i=offset + i)) for i in range(3)))
        return [c.is_answer for c in done]

    try:
        assert asyncio.run(three(0)) == [True] * 3
        assert asyncio.run(three(3)) == [True] * 3
    finally:
        asyncio.run(j.aclose())
    assert loopback.stats()["requests"] == 6
