"""Pure parts of the judge backends: request mapping, response reading, error classes, prices,
limits; and that the loopback server's judge text is what the team's parsers read."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest
from support.loopback_server import LoopbackServer

from judges.base import ChatRequest, Completion, JudgeIdentity, JudgeOptions, Message, Usage
from judges.errors import JudgeSetupError, UserError
from judges.http.judge import classify_status, parse_retry_after
from judges.limits import TokenBucket, TransientError
from judges.pricing import FREE, cost_usd, describe, load_prices, rates_of, reset_prices
from judges.providers.anthropic_api import messages_body, parse_message
from judges.providers.openai_api import chat_body, parse_chat_completion
from judges.registry import build_judge

REQ = ChatRequest(
    messages=(Message("system", "Be fair."), Message("user", "Which is better?")),
    model="m",
    temperature=0.7,
    max_tokens=64,
    seed=3,
    top_logprobs=5,
    response_format="json",
)


def test_openai_body_maps_every_sampling_field() -> None:
    body = chat_body(REQ)
    assert body == {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be fair."},
            {"role": "user", "content": "Which is better?"},
        ],
        "temperature": 0.7,
        "max_tokens": 64,
        "seed": 3,
        "logprobs": True,
        "top_logprobs": 5,
        "response_format": {"type": "json_object"},
    }
    o3 = ChatRequest(messages=REQ.messages, model="o3", temperature=None, reasoning_effort="low")
    hosted = chat_body(o3, hosted=True)
    assert "max_tokens" not in hosted and hosted["max_completion_tokens"] == 1024
    assert "seed" not in hosted and "logprobs" not in hosted and "response_format" not in hosted
    assert "temperature" not in hosted and hosted["reasoning_effort"] == "low"
    # the family decides the field, not who hosts it: OpenRouter's openai/gpt-5 too
    routed = chat_body(ChatRequest(messages=REQ.messages, model="openai/gpt-5"))
    assert "max_completion_tokens" in routed and "max_tokens" not in routed
    extra = ChatRequest(
        messages=REQ.messages,
        model="qwen3",
        chat_template_kwargs={"enable_thinking": False},
        extra_body={"top_k": 20},
    )
    body = chat_body(extra)
    assert body["chat_template_kwargs"] == {"enable_thinking": False} and body["top_k"] == 20


def test_anthropic_body_moves_system_out_and_drops_what_it_lacks() -> None:
    body = messages_body(REQ)
    assert body["system"] == "Be fair."
    assert body["messages"] == [{"role": "user", "content": "Which is better?"}]
    assert body["temperature"] == 0.7 and body["max_tokens"] == 64
    assert "seed" not in body and "top_logprobs" not in body


def test_openai_response_reading() -> None:
    data = {
        "choices": [
            {
                "message": {"content": "A", "reasoning_content": "thinking..."},
                "finish_reason": "length",
                "logprobs": {
                    "content": [
                        {
                            "token": "A",
                            "logprob": -0.1,
                            "top_logprobs": [
                                {"token": "A", "logprob": -0.1},
                                {"token": "B", "logprob": -2.4},
                            ],
                        }
                    ]
                },
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 1},
    }
    c = parse_chat_completion(data)
    assert c.text == "A" and c.finish_reason == "length" and c.reasoning == "thinking..."
    assert c.usage == Usage(12, 1)
    assert c.logprobs is not None and c.logprobs[0].top == (("A", -0.1), ("B", -2.4))
    refusal = parse_chat_completion(
        {"choices": [{"message": {"content": None, "refusal": "I can't"}, "finish_reason": "stop"}]}
    )
    assert refusal.finish_reason == "refused" and refusal.error == "refusal: I can't"
    bad: object
    for bad in ({}, [1]):
        with pytest.raises((KeyError, IndexError, TypeError)):
            parse_chat_completion(bad)
    # answered (and billed) but with no message: an error with its reason, never re-bought
    for empty in ({"choices": []}, {"choices": [{"index": 0, "finish_reason": "stop"}]}):
        c = parse_chat_completion({**empty, "usage": {"prompt_tokens": 9, "completion_tokens": 0}})
        assert c.finish_reason == "error" and "without choices[0].message" in (c.error or "")
        assert c.usage.input_tokens == 9


def test_anthropic_response_reading() -> None:
    c = parse_message(
        {
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "x"},
                {"type": "text", "text": "[[B]]"},
            ],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 10, "output_tokens": 3, "cache_read_input_tokens": 5},
        }
    )
    usage = Usage(15, 3, cached_input_tokens=5)
    assert (c.text, c.reasoning, c.finish_reason, c.usage) == ("[[B]]", "hmm", "stop", usage)
    assert parse_message({"content": [], "stop_reason": "max_tokens"}).finish_reason == "length"


def classify(
    status: int, message: str, code: str | None = None, ra: float | None = None
) -> Completion:
    return classify_status(status, message, code, ra, who="openai:m", key_hint="$KEY")


def test_error_classes() -> None:
    for status, msg in ((401, "bad key"), (403, "forbidden"), (404, "no such model")):
        with pytest.raises(JudgeSetupError, match=msg):
            classify(status, msg)
    with pytest.raises(JudgeSetupError, match="quota"):
        classify(429, "You exceeded your current quota", "insufficient_quota")
    with pytest.raises(JudgeSetupError, match="request option"):
        classify(400, "Unsupported parameter: 'max_tokens' is not supported with this model.")
    for status in (408, 409, 429, 500, 502, 503, 529):
        with pytest.raises(TransientError):
            classify(status, "busy", ra=1.0)
    assert classify(400, "x", "context_length_exceeded").finish_reason == "refused"
    assert classify(400, "prompt is too long: 300000 tokens > 200000").finish_reason == "refused"
    llama = "the request exceeds the available context size, try increasing it"
    assert classify(400, llama, "exceed_context_size_error").finish_reason == "refused"
    assert classify(400, "filtered", "content_filter").finish_reason == "refused"
    assert classify(400, "messages: roles must alternate").finish_reason == "error"
    # llama.cpp: a request it cannot read comes back as 500; retrying cannot help
    assert classify(500, "Invalid request: 'messages' must be an array").finish_reason == "error"
    # a server asking for a very long wait: give this request up rather than stall the run
    assert classify(429, "slow down", ra=3600).finish_reason == "error"


def test_retry_after_headers() -> None:
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "30", "retry-after-ms": "250"}) == 0.25
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 5))
    assert 3.0 < (parse_retry_after({"retry-after": date}) or 0) <= 5.0
    assert parse_retry_after({"retry-after": "soon"}) is None and parse_retry_after({}) is None


def test_prices_come_from_genai_prices_offline(tmp_path: Path) -> None:
    """List prices from the bundled genai-prices data (no network here), cached input at its
    discount, long-context tiers per request, a user table over it, unknown = None."""
    import genai_prices

    usage = Usage(1_000_000, 100_000)
    assert cost_usd(JudgeIdentity("openai", "gpt-4o-2024-08-06"), usage) == pytest.approx(3.5)
    # the old hand table priced claude-opus-4-7 by its claude-opus-4 prefix at $15/$75
    assert cost_usd(JudgeIdentity("anthropic", "claude-opus-4-7"), usage) == pytest.approx(7.5)
    assert cost_usd(JudgeIdentity("openai", "o3-pro"), usage) == pytest.approx(28.0)
    cached = Usage(1_000_000, 0, cached_input_tokens=800_000)
    assert cost_usd(JudgeIdentity("openai", "gpt-4.1"), cached) == pytest.approx(0.4 + 0.4)
    # the same numbers as the library's own calculation, tiers included
    for model, n_in in (("claude-sonnet-4-5", 150_000), ("claude-sonnet-4-5", 250_000)):
        lib = genai_prices.calc_price(
            genai_prices.Usage(input_tokens=n_in, output_tokens=2_000),
            model,
            provider_id="anthropic",
        )
        ours = cost_usd(JudgeIdentity("anthropic", model), Usage(n_in, 2_000))
        assert ours == pytest.approx(float(lib.total_price))
    assert cost_usd(JudgeIdentity("openai", "my-finetune"), usage) is None
    remote = JudgeIdentity("openai", "my-model", "https://my.server.example/v1")
    assert cost_usd(remote, usage) is None and "cost unknown" in describe(remote)
    assert cost_usd(JudgeIdentity("openai", "qwen", "http://127.0.0.1:8000/v1"), usage) == 0.0
    assert cost_usd(JudgeIdentity("vllm", "/models/qwen"), usage) == 0.0
    table = tmp_path / "prices.json"
    table.write_text(json.dumps({"my-finetune": {"input": 1, "output": 2}}))
    try:
        load_prices(table)
        assert cost_usd(JudgeIdentity("openai", "my-finetune-v2"), usage) == pytest.approx(1.2)
        assert str(table) in (rates_of(JudgeIdentity("openai", "my-finetune")) or FREE).source
        bad = tmp_path / "bad.toml"
        bad.write_text('[x]\ninput = "cheap"\n')
        with pytest.raises(UserError, match=r"bad\.toml: entry 'x'"):
            load_prices(bad)
    finally:
        reset_prices()


async def test_token_bucket_waits_for_its_refill() -> None:
    bucket = TokenBucket(per_minute=600)  # 10 tokens/s
    t0 = time.perf_counter()
    await bucket.acquire(600)
    await bucket.acquire(5)  # empty: 0.5 s of refill
    assert 0.45 <= time.perf_counter() - t0 < 1.5
    bucket.charge(10)  # output tokens known afterwards push it below zero
    t1 = time.perf_counter()
    await bucket.acquire(1)
    assert time.perf_counter() - t1 >= 0.95


def test_missing_vllm_is_a_clear_setup_error(tmp_path: Path) -> None:
    # the registry imports a backend only when asked for; a missing vllm says how to get it
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(JudgeSetupError, match=r"(?i)vllm.*not installed"):
        build_judge(f"vllm:{tmp_path}", JudgeOptions())


async def test_loopback_verdicts_parse_with_every_template(loopback: LoopbackServer) -> None:
    """The test server reads each built-in template's instructions and answers in its format,
    so the team's parsers read a valid verdict from every one of them."""
    from benchmark.data import Category
    from prompts import parsers, templates

    cat = Category.parse("Pairwise_set/Helpfulness/Code/Data Management")
    options = JudgeOptions(base_url=loopback.openai_base_url)
    judge = build_judge("openai:judge-1", options)
    try:
        for t in templates.list_templates():
            n = {"pairwise": 2, "listwise": 5, "pointwise": 1}[t.mode]
            msgs = t.render(
                conversation=[Message("user", "Sort a list in Python.")],
                responses=[f"answer {i}" for i in range(n)],
                goal="helpfulness",
                category=cat,
            )
            for k in range(4):  # several samples: several verdicts from the hash policy
                req = options.request(
                    msgs,
                    "judge-1",
                    sample_index=k,
                    max_tokens=t.max_tokens,
                    top_logprobs=t.top_logprobs,
                    response_format=t.response_format,
                )
                c = await judge.complete(req)
                v = parsers.PARSERS[t.parser](c, n)
                assert v.kind != "invalid", (t.name, c.text, v.reason)
    finally:
        await judge.aclose()


async def test_loopback_policies_and_paid_answer_counts(loopback: LoopbackServer) -> None:
    options = JudgeOptions(base_url=loopback.openai_base_url)
    judge = build_judge("openai:judge-1", options)
    pair = [Message("user", "Which is better? Answer [[A]] or [[B]].")]
    try:
        loopback.configure(policy="first")
        firsts = [
            await judge.complete(options.request(pair, "judge-1", sample_index=k)) for k in range(3)
        ]
        loopback.configure(policy="fixed:no verdict here")
        fixed = await judge.complete(options.request(pair, "judge-1", sample_index=9))
        again = await judge.complete(options.request(pair, "judge-1", sample_index=9))
    finally:
        await judge.aclose()
    assert all(c.text.endswith("[[A]]") for c in firsts)
    assert fixed.text == again.text == "no verdict here"
    answers = loopback.stats()["answers"]
    assert sorted(answers.values()) == [1, 1, 1, 2]  # the repeated request was paid twice


async def test_loopback_oracle_policy_prefers_the_marked_response(loopback: LoopbackServer) -> None:
    from benchmark.data import Category
    from prompts import templates

    loopback.configure(policy="prefer:GOLD")
    options = JudgeOptions(base_url=loopback.openai_base_url)
    judge = build_judge("openai:judge-1", options)
    cat = Category.parse("Pairwise_set/Helpfulness/Code/Data Management")
    conv = [Message("user", "Sort a list.")]
    try:
        pair = templates.load_template("pairwise")
        texts = []
        for shown in (["GOLD answer", "other"], ["other", "GOLD answer"]):
            msgs = pair.render(conversation=conv, responses=shown, goal="helpfulness", category=cat)
            texts.append((await judge.complete(options.request(msgs, "judge-1"))).text)
        rate = templates.load_template("pointwise")
        scores = []
        for one in (["GOLD answer"], ["other"]):
            msgs = rate.render(conversation=conv, responses=one, goal="helpfulness", category=cat)
            scores.append((await judge.complete(options.request(msgs, "judge-1"))).text)
    finally:
        await judge.aclose()
    assert texts[0].endswith("[[A]]") and texts[1].endswith("[[B]]")
    assert scores[0].endswith("[[10]]") and scores[1].endswith("[[1]]")
