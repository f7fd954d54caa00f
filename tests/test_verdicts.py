"""The parsers against a corpus of realistic judge outputs, and the rules they share."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from judges.base import Completion
from prompts.parsers import PARSER_MODES, PARSERS, Verdict, answer_text, parse

CORPUS = Path(__file__).parent / "judge_outputs" / "corpus.jsonl"
ROWS: list[dict[str, Any]] = [
    json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()
]


def completion_of(row: dict[str, Any]) -> Completion:
    return Completion.from_dict(row)


def _id(row: dict[str, Any]) -> str:
    return f"{row['parser']}:{row['habit']}"


@pytest.mark.parametrize("row", ROWS, ids=[_id(r) for r in ROWS])
def test_corpus(row: dict[str, Any]) -> None:
    n = row.get("n_shown", {"pairwise": 2, "pointwise": 1}.get(PARSER_MODES[row["parser"]], 0))
    v = parse(row["parser"], completion_of(row), n)
    expect = row["expect"]
    assert v.kind == expect["kind"], v.reason
    if "choice" in expect:
        assert v.choice == expect["choice"]
    if "score" in expect:
        assert v.score == expect["score"]
    if v.kind == "invalid":
        assert v.reason, "an invalid verdict always says why"
    if "reason_has" in row:
        assert row["reason_has"] in v.reason
    if "probs" in row:
        assert v.probs is not None and len(v.probs) == 2
        assert math.isclose(sum(v.probs), 1.0)
        for got, want in zip(v.probs, row["probs"], strict=True):
            assert math.isclose(got, want, rel_tol=1e-9)
    elif row["parser"] == "logprob-ab" and v.kind == "choice" and row.get("logprobs") is None:
        assert v.probs is None and "no logprobs" in v.reason


def test_corpus_covers_every_parser_and_habit() -> None:
    assert len(ROWS) >= 80
    assert {r["parser"] for r in ROWS} == set(PARSERS)
    habits = {r["habit"] for r in ROWS}
    for habit in (
        "bold",
        "code",
        "final-verdict-line",
        "earlier-mention",
        "lowercase",
        "stray-spaces",
        "think",
        "code-fence",
        "truncated",
        "conflict-final-line",
        "none",
        "out-of-range",
    ):
        assert habit in habits
    # every parser meets an answer it must refuse to read
    assert {r["parser"] for r in ROWS if r["expect"]["kind"] == "invalid"} == set(PARSERS)


def test_parser_table_matches_modes() -> None:
    assert set(PARSERS) == set(PARSER_MODES)
    assert set(PARSER_MODES.values()) == {"pairwise", "listwise", "pointwise"}


def test_unknown_parser_raises() -> None:
    with pytest.raises(KeyError, match="unknown parser"):
        parse("no-such-parser", Completion("[[A]]"), 2)


def test_swapping_labels_swaps_choice() -> None:
    # the same reasoning with the final verdict flipped reads the other way: the last one wins
    base = "Earlier I wrote [[{x}]] but the other one is right.\n\nFinal verdict: [[{y}]]"
    a = parse("verdict-ab", Completion(base.format(x="B", y="A")), 2)
    b = parse("verdict-ab", Completion(base.format(x="A", y="B")), 2)
    assert (a.choice, b.choice) == (0, 1)


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6, 7])
def test_listwise_every_index_in_range(n: int) -> None:
    for k in range(1, n + 1):
        assert parse("verdict-index", Completion(f"Best: [[{k}]]"), n) == Verdict(
            "choice", choice=k - 1
        )
    assert parse("verdict-index", Completion(f"[[{n + 1}]]"), n).kind == "invalid"


def test_think_stripping() -> None:
    assert answer_text("<think>[[A]]</think>\n[[B]]").strip() == "[[B]]"
    assert answer_text("reasoning [[A]]</think>[[B]]") == "[[B]]"
    assert answer_text("<think>never closed [[A]]") == ""
    assert answer_text("<THINKING>x</THINKING>y") == "y"


def test_length_is_invalid_except_single_token() -> None:
    cut = Completion("[[A]]", finish_reason="length")
    assert parse("verdict-ab", cut, 2) == Verdict("invalid", reason="truncated")
    # max_tokens 1 always ends with "length": that is how a single-token verdict finishes
    assert parse("logprob-ab", Completion("A", finish_reason="length"), 2).choice == 0


def test_an_answer_emptied_by_reasoning_is_invalid_with_that_reason() -> None:
    why = "reasoning used the whole token limit (1,024 reasoning tokens of 1,024 output tokens, billed)"
    emptied = Completion("", finish_reason="length", error=why)
    for parser in ("verdict-ab", "logprob-ab"):
        assert parse(parser, emptied, 2) == Verdict("invalid", reason=why)
