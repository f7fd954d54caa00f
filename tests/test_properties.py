"""Property tests (hypothesis): malformed input never escapes as anything but a clear error.

- RMB records, however broken, either parse into an item or raise a `UserError` that names the
  file and record; a broken file through `benchmark.data.load` does the same.
- Judge outputs, however broken (any text, any finish reason, odd logprobs), parse into a
  `Verdict` under every parser: a choice inside the shown range, a tie, a score on the scale, or
  invalid with a reason. Never an exception."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from benchmark.data import BoNItem, PairwiseItem, load, parse_record
from judges.base import Completion, TokenLogprob, Usage
from judges.errors import UserError
from prompts.parsers import PARSERS, Verdict, parse

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------------------- RMB records

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=12),
)
json_any = st.recursive(
    json_leaf,
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3)
    ),
    max_leaves=8,
)
category_paths = st.one_of(
    st.sampled_from(
        [
            "Pairwise_set/Helpfulness/Code/Data Management",
            "Pairwise_set/Harmlessness/S1",
            "BoN_set/Helpfulness/Chat/Open QA",
            "BoN_set/Harmlessness/S7",
            "Pairwise_set/Helpfulness",
            "BoN_set//x",
            "/Pairwise_set/Helpfulness/a/b/c/",
            "",
        ]
    ),
    st.text(max_size=30),
    json_any,
)
message = st.fixed_dictionaries(
    {
        "role": st.one_of(st.sampled_from(["user", "assistant", "system", "tool", ""]), json_any),
        "content": st.one_of(st.text(max_size=20), json_any),
    }
)
conversation = st.one_of(st.lists(message, max_size=4), json_any)
response = st.one_of(
    st.fixed_dictionaries(
        {"llm_name": st.one_of(st.text(max_size=8), json_any), "answer": st.text(max_size=20)}
    ),
    st.fixed_dictionaries({"answer": json_any}),
    json_any,
)


def _valid_pair() -> dict[str, Any]:
    return {
        "pair_uid": "p1",
        "category_path": "Pairwise_set/Helpfulness/Code/Data Management",
        "conversation_input": [{"role": "user", "content": "hi"}],
        "chosen": {"llm_name": "a", "answer": "good"},
        "reject": {"llm_name": "b", "answer": "bad"},
    }


def _valid_bon() -> dict[str, Any]:
    return {
        "bon_uid": "b1",
        "category_path": "BoN_set/Harmlessness/S3",
        "conversation_input": [{"role": "user", "content": "hi"}],
        "bon_best": {"llm_name": "a", "answer": "good"},
        "loser_list": [{"llm_name": "b", "answer": "bad"}],
    }


FIELD_VALUES: dict[str, Any] = {
    "pair_uid": json_any,
    "bon_uid": json_any,
    "category_path": category_paths,
    "conversation_input": conversation,
    "chosen": response,
    "reject": response,
    "bon_best": response,
    "loser_list": st.one_of(st.lists(response, max_size=3), json_any),
}


@st.composite
def broken_records(draw: st.DrawFn) -> Any:
    """A valid record with some fields replaced, dropped or added; sometimes not an object."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_any)
    rec = draw(st.sampled_from([_valid_pair, _valid_bon]))()
    for name in draw(st.lists(st.sampled_from(sorted(FIELD_VALUES)), max_size=4, unique=True)):
        action = draw(st.sampled_from(["replace", "drop"]))
        if action == "drop":
            rec.pop(name, None)
        else:
            rec[name] = draw(FIELD_VALUES[name])
    return rec


def _check_item(item: Any) -> None:
    assert isinstance(item, PairwiseItem | BoNItem)
    assert item.conversation and item.conversation[-1].role == "user"
    assert all(isinstance(r.text, str) for r in item.candidates().values())


@pytest.mark.slow
@SETTINGS
@given(rec=broken_records(), jsonl=st.booleans(), index=st.integers(0, 10_000))
@example(rec=_valid_pair(), jsonl=True, index=0)
@example(rec=_valid_bon(), jsonl=False, index=3)
def test_malformed_record_parses_or_raises_a_user_error(rec: Any, jsonl: bool, index: int) -> None:
    file = "Pairwise_set/x.jsonl" if jsonl else "BoN_set/y.json"
    try:
        item = parse_record(rec, file, index)
    except UserError as e:
        msg = str(e)
        assert file in msg and "\n" not in msg, msg
        where = f"line {index + 1}" if jsonl else f"record {index}"
        assert where in msg, msg
        return
    _check_item(item)


file_bodies = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    st.lists(broken_records(), max_size=4).map(lambda rs: json.dumps(rs).encode()),
    st.lists(broken_records(), max_size=4).map(
        lambda rs: "".join(json.dumps(r) + "\n" for r in rs).encode()
    ),
    # a valid file cut anywhere
    st.integers(0, 400).map(lambda n: json.dumps([_valid_pair(), _valid_pair()]).encode()[:n]),
    json_any.map(lambda v: json.dumps(v).encode()),
)


@pytest.mark.slow
@SETTINGS
@given(body=file_bodies, suffix=st.sampled_from([".json", ".jsonl"]))
def test_malformed_file_loads_or_raises_a_user_error(
    tmp_path_factory: pytest.TempPathFactory, body: bytes, suffix: str
) -> None:
    path = tmp_path_factory.mktemp("rmb") / f"records{suffix}"
    path.write_bytes(body)
    try:
        items = load(path)
    except UserError as e:
        assert str(path) in str(e) and "\n" not in str(e), str(e)
        return
    for item in items:
        _check_item(item)


# ---------------------------------------------------------------------------- judge outputs

# pieces judges really write, shuffled together with noise
fragments = st.sampled_from(
    [
        "[[A]]",
        "[[B]]",
        "[[C]]",
        "[[ a ]]",
        "[[Assistant B]]",
        "[[1]]",
        "[[3]]",
        "[[7]]",
        "[[11]]",
        "[[0]]",
        "[[2.5]]",
        "[[7/10]]",
        "[[4/5]]",
        "[[]]",
        "[[[A]]]",
        "Final verdict: A",
        "Final verdict: A or B",
        "My final verdict is B.",
        "Answer = 2",
        "Rating: 9/10",
        "Rating: -3",
        "Rating: 1e309",
        "**B**",
        "7",
        '{"winner": "A"}',
        '{"winner": "B", "reasoning": "x"}',
        '{"winner": 1}',
        '{"winner": null}',
        '{"winner": ["A"]}',
        '{"winner": "A"',
        '"winner": "B"',
        '```json\n{"winner": "B"}\n```',
        "<think>[[B]]</think>",
        "<think>",
        "</think>",
        "<reasoning>A</reasoning>",
        "\n",
        " ",
        "tie",
        "Response 2 is better",
        "\x00",
        "\u200b",
        "：",
    ]
)
judge_texts = st.one_of(
    st.text(max_size=80),
    st.lists(st.one_of(fragments, st.text(max_size=10)), max_size=8).map("".join),
    st.lists(fragments, max_size=6).map("\n".join),
)
finish_reasons = st.one_of(
    st.sampled_from(["stop", "length", "content_filter", "refused", "error", "tool_calls", ""]),
    st.text(max_size=8),
)
odd_floats = st.one_of(
    st.floats(min_value=-50, max_value=0),
    st.sampled_from([0.0, -1e-300, -1000.0, -1e308, float("-inf"), float("inf"), float("nan")]),
    st.floats(),
)
label_tokens = st.sampled_from(["A", "B", " A", "**B", "a", "C", "", " ", "The", "\n", "[["])
token_logprobs = st.builds(
    TokenLogprob,
    token=st.one_of(label_tokens, st.text(max_size=4)),
    logprob=odd_floats,
    top=st.lists(
        st.tuples(st.one_of(label_tokens, st.text(max_size=3)), odd_floats), max_size=5
    ).map(tuple),
)
completions = st.builds(
    Completion,
    text=judge_texts,
    finish_reason=finish_reasons,
    usage=st.just(Usage(10, 5)),
    logprobs=st.one_of(st.none(), st.lists(token_logprobs, max_size=4).map(tuple)),
    error=st.one_of(st.none(), st.text(min_size=1, max_size=10)),
)


def _check_verdict(v: Verdict, parser: str, n_shown: int) -> None:
    assert isinstance(v, Verdict)
    assert v.kind in ("choice", "tie", "score", "invalid")
    if v.kind == "invalid":
        assert v.reason, "an invalid verdict says why"
    if v.kind == "choice":
        assert v.choice is not None and 0 <= v.choice < max(n_shown, 2)
        if v.probs is not None:
            assert all(math.isfinite(p) and 0 <= p <= 1 for p in v.probs), v.probs
            assert math.isclose(sum(v.probs), 1.0, abs_tol=1e-9), v.probs
    if v.kind == "score":
        top = 5 if parser == "rating-5" else 10
        assert v.score is not None and 1 <= v.score <= top
    if v.kind == "tie":
        assert parser == "verdict-abc"


@SETTINGS
@given(
    completion=completions,
    parser=st.sampled_from(sorted(PARSERS)),
    n_shown=st.integers(1, 9),
)
@example(
    completion=Completion("A", "length", logprobs=(TokenLogprob("A", -1000.0, (("B", -1000.0),)),)),
    parser="logprob-ab",
    n_shown=2,
)
@example(
    completion=Completion("A", "stop", logprobs=(TokenLogprob("A", float("nan"), ()),)),
    parser="logprob-ab",
    n_shown=2,
)
@example(
    completion=Completion("B", "stop", logprobs=(TokenLogprob("B", 800.0, (("A", 0.0),)),)),
    parser="logprob-ab",
    n_shown=2,
)
@pytest.mark.slow
def test_any_judge_output_parses_to_a_verdict(
    completion: Completion, parser: str, n_shown: int
) -> None:
    v = parse(parser, completion, n_shown)
    _check_verdict(v, parser, n_shown)
    if not completion.is_answer and not (
        parser == "logprob-ab" and completion.finish_reason == "length" and not completion.error
    ):
        assert v.kind == "invalid", (completion, v)


def test_unparseable_loopback_text_is_invalid_under_every_text_parser() -> None:
    # the exact text the loopback server's "unparseable" fault sends (tests/test_faults.py)
    text = "Both responses have strengths and weaknesses; it is hard to say which is better."
    for parser in PARSERS:
        v = parse(parser, Completion(text), 2)
        assert v.kind == "invalid" and v.reason, (parser, v)
