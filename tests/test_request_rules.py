"""Per-family request rules (judges/models.py), how failures are read (judges/http/status.py),
and each frontier family answered through the real SDKs and the lean transport by a test
server that rejects what the live APIs reject (tests/loopback_server.py, "provider rules")."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import pytest
from support.loopback_server import LoopbackServer

from judges import models
from judges.base import ChatRequest, Completion, JudgeIdentity, JudgeOptions, Message
from judges.errors import JudgeSetupError, UserError
from judges.http.status import RejectionStreak, classify_status, error_message
from judges.registry import build_judge

KEY_ENV = "LOOPBACK_KEY"
PROMPT = (
    Message("system", "You judge AI assistant replies."),
    Message(
        "user",
        "Which reply is better?\n<response A>x</response A>\n<response B>y</response B>\nEnd with [[A]] or [[B]].",
    ),
)


def shaped(
    provider: str,
    model: str,
    *,
    template_max_tokens: int | None = None,
    top_logprobs: int | None = None,
    **options: Any,
) -> models.Shaped:
    """What a judge on `provider:model` with these options sends (hosted: no base URL)."""
    return JudgeOptions(**options).shaped(
        JudgeIdentity(provider, model), max_tokens=template_max_tokens, top_logprobs=top_logprobs
    )


# ---------------------------------------------------------------------------- the rules table


@pytest.mark.parametrize(
    ("provider", "model", "kw", "temperature", "max_tokens", "effort"),
    [
        ("openai", "gpt-4.1", {}, 0.0, 1024, None),
        ("openai", "gpt-4o-2024-08-06", {}, 0.0, 1024, None),
        ("openai", "gpt-5", {}, None, 16384, None),  # medium by default: room to reason
        ("openai", "gpt-5-2025-08-07", {"reasoning_effort": "minimal"}, None, 16384, "minimal"),
        ("openai", "o3", {}, None, 16384, None),
        ("openai", "gpt-5.1", {}, 0.0, 1024, "none"),  # temperature only at effort none: say it
        # the one-token logprob template: logprobs only at effort none, asked explicitly
        ("openai", "gpt-5.1", {"top_logprobs": 5, "template_max_tokens": 1}, 0.0, 1, "none"),
        ("openai", "gpt-5.1", {"reasoning_effort": "high"}, None, 16384, "high"),
        ("openai", "gpt-5.6-sol", {}, None, 1024, None),  # effort none by default, temp 1 only
        ("openai", "gpt-5.6-sol", {"top_logprobs": 5}, None, 1024, "none"),
        ("anthropic", "claude-sonnet-4-5", {}, None, 1024, None),  # 2026-10-21: no sampling
        ("anthropic", "claude-sonnet-4-5", {"api_version": "2023-06-01"}, 0.0, 1024, None),
        ("anthropic", "claude-opus-4-7", {"api_version": "2023-06-01"}, None, 1024, None),
        ("anthropic", "claude-opus-5", {}, None, 16384, None),  # thinks by default
        ("anthropic", "claude-opus-5", {"thinking": "disabled"}, None, 1024, None),
        ("openai", "my-local-qwen", {}, 0.0, 1024, None),  # unknown: passed through
    ],
)
def test_each_family_sends_what_its_api_takes(
    provider: str,
    model: str,
    kw: dict[str, Any],
    temperature: float | None,
    max_tokens: int,
    effort: str | None,
) -> None:
    s = shaped(provider, model, **kw)
    assert (s.temperature, s.max_tokens, s.reasoning_effort) == (temperature, max_tokens, effort)


@pytest.mark.parametrize(
    ("provider", "model", "kw", "says"),
    [
        ("openai", "gpt-5", {"top_logprobs": 5}, r"no logprobs.*template without top_logprobs"),
        (
            "openai",
            "gpt-5.1",
            {"top_logprobs": 5, "reasoning_effort": "low"},
            "--reasoning-effort none",
        ),
        (
            "openai",
            "gpt-5",
            {"temperature": 0.5},
            r"temperature 0\.5 is not accepted.*drop --temperature",
        ),
        ("openai", "gpt-5.1", {"reasoning_effort": "minimal"}, r"none\|low\|medium\|high"),
        ("openai", "gpt-4.1", {"reasoning_effort": "low"}, "takes none"),
        ("openai", "gpt-4.1", {"verbosity": "low"}, "drop --verbosity"),
        ("anthropic", "claude-sonnet-4-5", {"temperature": 0.0}, "temperature 0 is not accepted"),
        (
            "anthropic",
            "claude-opus-5",
            {"thinking": "disabled", "reasoning_effort": "max"},
            "cannot be disabled",
        ),
        (
            "anthropic",
            "claude-opus-4-7",
            {"thinking": "4096"},
            r"thinking 'budget' is not accepted",
        ),
        ("anthropic", "claude-haiku-4-5", {"thinking": "512"}, "at least 1024"),
    ],
)
def test_what_a_family_refuses_is_an_error_before_any_request(
    provider: str, model: str, kw: dict[str, Any], says: str
) -> None:
    with pytest.raises(UserError, match=says):
        shaped(provider, model, **kw)


def test_budget_thinking_leaves_room_for_the_answer() -> None:
    s = shaped("anthropic", "claude-sonnet-4-5", thinking="4096", api_version="2023-06-01")
    assert s.thinking == "4096" and s.max_tokens > 4096 and s.temperature is None


def test_user_rules_override_the_table(tmp_path: Any) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[families.acme]\nlike = "openai-gpt-5"\nmatch = "acme-"\n')
    try:
        models.load_rules(rules)
        assert shaped("openai", "acme-reasoner-1").temperature is None
        assert models.family_of("openai", "acme-1").token_field == "max_completion_tokens"
        bad = tmp_path / "bad.toml"
        bad.write_text('[families.x]\ntemprature = "no"\n')
        with pytest.raises(UserError, match=r"bad\.toml: family 'x': unknown rule"):
            models.load_rules(bad)
    finally:
        models.reset_rules()
    assert shaped("openai", "acme-reasoner-1").temperature == 0.0


def test_anthropic_version_is_the_sdks_own() -> None:
    from anthropic import _constants

    assert models.ANTHROPIC_VERSION == _constants.ANTHROPIC_API_VERSION


def test_new_request_fields_leave_old_cache_keys_alone() -> None:
    plain = ChatRequest(messages=PROMPT, model="m")
    assert "reasoning_effort" not in plain.canonical_json()
    assert '"reasoning_effort":"low"' in replace(plain, reasoning_effort="low").canonical_json()


# ---------------------------------------------------------------------------- failures


def test_error_bodies_of_every_shape_are_read() -> None:
    gemini = [
        {
            "error": {
                "code": 400,
                "message": "Request contains an invalid argument.",
                "status": "INVALID_ARGUMENT",
            }
        }
    ]
    assert error_message(gemini, "(none)") == ("Request contains an invalid argument.", "400", None)
    html = "<html><head><title>502 Bad Gateway</title></head><body><h1>502</h1></body></html>"
    assert error_message(html, "(none)")[0] == "502 Bad Gateway"
    assert error_message("  upstream timed out \n", "(none)")[0] == "upstream timed out"
    oai = {
        "error": {
            "message": "m",
            "type": "invalid_request_error",
            "param": "temperature",
            "code": "unsupported_value",
        }
    }
    assert error_message(oai, "") == ("m", "unsupported_value", "temperature")
    assert error_message(b"", "(none)")[0] == "(none)"


def classify(
    status: int, message: str, code: str | None = None, ra: float | None = None
) -> Completion:
    return classify_status(status, message, code, ra, who="j", key_hint="$K")


def test_billing_and_credit_errors_stop_at_once() -> None:
    credit = (
        "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing"
    )
    for status, msg, code in (
        (400, credit, "invalid_request_error"),
        (402, "Insufficient credits", None),
        (
            429,
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota",
        ),
    ):
        with pytest.raises(JudgeSetupError, match="out of credit or quota"):
            classify(status, msg, code)
    # Gemini's per-minute limit also says "quota", with a wait: that one is retried
    from judges.limits import TransientError

    with pytest.raises(TransientError):
        classify(
            429, "You exceeded your current quota ... Please retry in 35.6s.", "RESOURCE_EXHAUSTED"
        )
    with pytest.raises(JudgeSetupError, match=r"Change the template"):
        classify(400, "Logprobs is not enabled for models/gemini-2.5-pro")


def test_the_same_rejection_k_times_in_a_row_stops() -> None:
    streak = RejectionStreak(k=3)
    rejected = Completion(
        text="", finish_reason="error", error="request rejected: HTTP 400: bad 12"
    )
    other = Completion(text="", finish_reason="error", error="request rejected: HTTP 400: other")
    streak.see(rejected, "j")
    streak.see(replace(rejected, error="request rejected: HTTP 400: bad 13"), "j")  # digits vary
    streak.see(Completion(text="[[A]]"), "j")  # an answer resets it
    streak.see(rejected, "j")
    streak.see(other, "j")  # a different rejection starts over
    streak.see(other, "j")
    with pytest.raises(JudgeSetupError, match=r"same rejection on 3 requests in a row: .*other"):
        streak.see(other, "j")


# ---------------------------------------------------------------------------- over the wire

FAMILIES = [
    ("openai:gpt-4.1", {}, None),
    ("openai:gpt-5", {}, None),
    ("openai:gpt-5.6-sol", {}, None),
    ("openai:gpt-5.1", {}, 5),  # effort none + logprobs (the one-token logprob template)
    ("anthropic:claude-sonnet-4-5", {}, None),
    ("anthropic:claude-sonnet-4-5", {"api_version": "2023-06-01"}, None),
    ("anthropic:claude-opus-5", {}, None),
]


@pytest.mark.parametrize("transport", ["sdk", "lean"])
@pytest.mark.parametrize(("spec", "kw", "logprobs"), FAMILIES)
async def test_each_family_answers_on_both_transports(
    loopback: LoopbackServer, spec: str, kw: dict[str, Any], logprobs: int | None, transport: str
) -> None:
    os.environ.setdefault(KEY_ENV, "sk-loopback")
    base = loopback.anthropic_base_url if spec.startswith("anthropic") else loopback.openai_base_url
    options = JudgeOptions(base_url=base, api_key_env=KEY_ENV, transport=transport, **kw)
    judge = build_judge(spec, options)
    try:
        max_tokens = 1 if logprobs else None
        request = options.request(
            PROMPT, judge.identity, max_tokens=max_tokens, top_logprobs=logprobs
        )
        c = await judge.complete(request)
    finally:
        await judge.aclose()
    assert c.is_answer, c.error
    assert c.text.strip() in ("A", "B") if logprobs else "[[" in c.text
    if logprobs:
        assert c.logprobs and {t for t, _ in c.logprobs[0].top} >= {"A", "B"}
    assert loopback.stats()["status"] == {"200": 1}


async def test_the_server_rejects_what_the_live_apis_reject(loopback: LoopbackServer) -> None:
    """The requests this tool used to send, through the official SDKs: each fails as it would
    against the live API (so a regression fails a test)."""
    import anthropic
    import httpx2
    import openai

    oai = openai.AsyncOpenAI(base_url=loopback.openai_base_url, api_key="k", max_retries=0)
    ant = anthropic.AsyncAnthropic(base_url=loopback.anthropic_base_url, api_key="k", max_retries=0)
    msgs = [{"role": "user", "content": "hi"}]
    bad = {"openai": openai.BadRequestError, "anthropic": anthropic.BadRequestError}
    cases: list[tuple[Any, str, dict[str, Any], str]] = [
        (
            oai,
            "/chat/completions",
            {"model": "gpt-5", "messages": msgs, "max_tokens": 9},
            "Use 'max_completion_tokens'",
        ),
        (
            oai,
            "/chat/completions",
            {"model": "o3", "messages": msgs, "temperature": 0},
            "Only the default (1)",
        ),
        (
            oai,
            "/chat/completions",
            {"model": "gpt-5.1", "messages": msgs, "logprobs": True, "reasoning_effort": "low"},
            "'logprobs' is not supported",
        ),
        (
            ant,
            "/v1/messages",
            {"model": "claude-sonnet-4-5", "messages": msgs, "max_tokens": 9, "temperature": 0},
            "temperature: Extra inputs are not permitted",
        ),
        (
            ant,
            "/v1/messages",
            {
                "model": "claude-opus-4-7",
                "messages": msgs,
                "max_tokens": 9,
                "thinking": {"type": "enabled", "budget_tokens": 2048},
            },
            "thinking.type.enabled",
        ),
    ]
    try:
        for client, path, body, says in cases:
            with pytest.raises(bad[type(client).__module__.split(".")[0]]) as err:
                await client.post(path, body=body, cast_to=httpx2.Response)
            assert says in str(err.value)
        gemini = {"model": "gemini-2.5-pro", "messages": msgs, "logprobs": True}
        with pytest.raises(openai.BadRequestError) as err:
            await oai.post("/chat/completions", body=gemini, cast_to=httpx2.Response)
        assert isinstance(err.value.body, list)  # Gemini's JSON list of error objects
    finally:
        await oai.close()
        await ant.close()


@pytest.mark.parametrize("transport", ["sdk", "lean"])
@pytest.mark.parametrize("spec", ["openai:gpt-5", "anthropic:claude-opus-5"])
async def test_an_answer_emptied_by_reasoning_says_so_with_its_cost(
    loopback: LoopbackServer, transport: str, spec: str
) -> None:
    """gpt-5 at medium effort and Claude Opus 5 (thinking by default) spend more than 1,024
    tokens thinking: with that limit the answer is empty, billed, and says why."""
    os.environ.setdefault(KEY_ENV, "sk-loopback")
    base = loopback.anthropic_base_url if spec.startswith("anthropic") else loopback.openai_base_url
    options = JudgeOptions(base_url=base, api_key_env=KEY_ENV, transport=transport, max_tokens=1024)
    judge = build_judge(spec, options)
    try:
        c = await judge.complete(options.request(PROMPT, judge.identity))
    finally:
        await judge.aclose()
    assert c.finish_reason == "length" and not c.is_answer
    assert "used the whole token limit" in (c.error or "") and "raise --max-tokens" in (
        c.error or ""
    )
    assert c.usage.output_tokens == 1024


async def test_a_200_without_a_message_is_invalid_not_bought_again(
    loopback: LoopbackServer,
) -> None:
    os.environ.setdefault(KEY_ENV, "sk-loopback")
    loopback.configure(script=["no_message"])
    options = JudgeOptions(base_url=loopback.openai_base_url, api_key_env=KEY_ENV)
    judge = build_judge("openai:gpt-4.1", options)
    try:
        c = await judge.complete(options.request(PROMPT, judge.identity))
    finally:
        await judge.aclose()
    assert c.finish_reason == "error" and "without choices[0].message" in (c.error or "")
    assert loopback.stats()["requests"] == 1 and c.attempts == 1


@pytest.mark.parametrize(
    ("spec", "fault"),
    [
        ("anthropic:claude-haiku-4-5", "credit"),
        ("openai:gpt-4.1", "credit"),
        ("openai:gpt-4.1", "billing402"),
    ],
)
async def test_out_of_credit_stops_at_the_first_request(
    loopback: LoopbackServer, spec: str, fault: str
) -> None:
    os.environ.setdefault(KEY_ENV, "sk-loopback")
    loopback.configure(faults={fault: 1.0})
    base = loopback.anthropic_base_url if spec.startswith("anthropic") else loopback.openai_base_url
    options = JudgeOptions(base_url=base, api_key_env=KEY_ENV, transport="sdk")
    judge = build_judge(spec, options)
    try:
        with pytest.raises(JudgeSetupError, match="out of credit or quota"):
            await judge.complete(options.request(PROMPT, judge.identity))
    finally:
        await judge.aclose()
    assert loopback.stats()["requests"] == 1


@pytest.mark.parametrize("transport", ["sdk", "lean"])
async def test_a_gemini_list_error_body_is_read_and_its_streak_stops(
    loopback: LoopbackServer, transport: str
) -> None:
    """Gemini's OpenAI endpoint answers a request it refuses with a JSON *list*; a user's rules
    that wrongly claim logprobs get that on every request: read, and stopped at the fifth."""
    os.environ.setdefault(KEY_ENV, "sk-loopback")
    models.set_rules(
        {"gemini-with-logprobs": {"like": "gemini", "match": "gemini-", "logprobs": "yes"}}
    )
    options = JudgeOptions(
        base_url=loopback.openai_base_url, api_key_env=KEY_ENV, transport=transport
    )
    judge = build_judge("openai:gemini-2.5-flash", options)
    try:
        request = options.request(PROMPT, judge.identity, top_logprobs=5, max_tokens=1)
        for _ in range(4):
            c = await judge.complete(request)
            assert c.error == "request rejected: HTTP 400: Request contains an invalid argument."
        with pytest.raises(JudgeSetupError, match="same rejection on 5 requests in a row"):
            await judge.complete(request)
    finally:
        models.reset_rules()
        await judge.aclose()
    assert loopback.stats()["status"] == {"400": 5}


def test_a_templates_reasoning_settings_fill_only_what_the_user_left_unset() -> None:
    asks = {"reasoning_effort": "none", "chat_template_kwargs": {"enable_thinking": False}}
    assert JudgeOptions().with_defaults(asks).reasoning_effort == "none"
    mine = JudgeOptions(reasoning_effort="low").with_defaults(asks)
    assert mine.reasoning_effort == "low" and mine.chat_template_kwargs == {
        "enable_thinking": False
    }
    assert JudgeOptions().with_defaults({"max_tokens": 9}) == JudgeOptions()  # not a reasoning key
