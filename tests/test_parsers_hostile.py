"""Judge answers are untrusted input: every parser is linear in the answer's length, never
raises, and an answer that once crashed a parser re-scores as an invalid verdict with its
reason. Timed with CPU time and generous bounds (a quadratic parser misses them by orders of
magnitude); the throughput target itself is in `make bench` (bench/parsers.py)."""

from __future__ import annotations

import dataclasses
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.hostile_answers import HOSTILE
from test_runner import read_judged, subprocess_cmd, write_items
from test_runner_cli import run_cli

from judges.base import Completion
from prompts import parsers as verdicts
from prompts.parsers import PARSERS, Verdict, answer_text, parse

N_SHOWN = {"verdict-index": 3}


def read(parser: str, text: str) -> Verdict:
    return parse(parser, Completion(text), N_SHOWN.get(parser, 2))


def cpu_of(fn: object, *args: object) -> float:
    t = time.process_time()
    fn(*args)  # type: ignore[operator]
    return time.process_time() - t


@pytest.mark.parametrize("family", sorted(HOSTILE))
def test_each_hostile_pattern_is_read_in_linear_time(family: str) -> None:
    for parser in PARSERS:
        small = min(cpu_of(read, parser, HOSTILE[family](30_000)) for _ in range(2))
        big = min(cpu_of(read, parser, HOSTILE[family](300_000)) for _ in range(2))
        # 10x the text: a linear parser takes ~10x; a quadratic one ~100x (and seconds)
        assert big < 1.0 and big < 30 * small + 0.05, (parser, family, small, big)
        assert isinstance(read(parser, HOSTILE[family](3000)), Verdict)


def test_the_answers_that_crashed_or_hung_before() -> None:
    nested = '{"winner": ' + "[" * 1000 + "]" * 1000 + "}"  # RecursionError in json-winner
    v = read("json-winner", nested)
    assert v.kind == "invalid"
    t = cpu_of(read, "verdict-ab", "<think>" * 40_000)  # 280 KB: 45 s before
    assert t < 1.0
    assert read("verdict-ab", "<think>" * 20_000 + "</think>Final verdict: [[B]]").choice == 1


def test_any_parser_exception_is_an_invalid_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(c: Completion, n: int) -> Verdict:
        raise RecursionError("maximum recursion depth exceeded")

    table = verdicts.PARSER_TABLE
    monkeypatch.setitem(table, "verdict-ab", dataclasses.replace(table["verdict-ab"], fn=broken))
    v = read("verdict-ab", "[[A]]")
    assert v.kind == "invalid" and "RecursionError" in v.reason


def test_an_answer_over_the_cap_is_invalid_unread() -> None:
    v = read("verdict-ab", "x" * (verdicts.MAX_ANSWER_CHARS + 1) + "[[A]]")
    assert v.kind == "invalid" and "over" in v.reason and len(v.reason) < 400


def test_a_reason_never_quotes_a_whole_answer() -> None:
    v = read("verdict-ab", "Final verdict: " + "Q" * 100_000)
    assert v.kind == "invalid" and len(v.reason) <= 300


PIECES = [
    "<think>",
    "</think>",
    "<thinking>",
    "</THINK >",
    "<reasoning>",
    "</reasoning>",
    "{",
    "}",
    '"winner"',
    ": ",
    '"A"',
    '"B"',
    "[",
    "]",
    "[[",
    "]]",
    " ",
    "   ",
    "\n",
    "*",
    "verdict",
    "Final verdict",
    " is ",
    "answer",
    " or ",
    "/",
    "A",
    "B",
    "C",
    "7",
    "10",
    "Rating",
    "a",
    "better response",
    "\\",
    '"',
    "tie",
    "=",
    "：",
]
answers = st.lists(st.sampled_from(PIECES), max_size=400).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers, st.sampled_from(sorted(PARSERS)))
def test_no_answer_makes_a_parser_raise(text: str, parser: str) -> None:
    assert isinstance(read(parser, text), Verdict)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers.filter(bool), st.integers(2_000, 20_000), st.sampled_from(sorted(PARSERS)))
def test_a_repeated_pattern_is_read_in_time_proportional_to_its_size(
    unit: str, size: int, parser: str
) -> None:
    text = (unit * (size // len(unit) + 1))[:size]
    cpu = cpu_of(read, parser, text)
    assert cpu < 0.02 + size * 2e-6, (parser, size, cpu)  # 2 s per MB: well above linear cost


# the thinking rule as it was written before (quadratic on unclosed tags): the linear version
# must read every answer the same way
_PAIR = re.compile(r"<(think|thinking|reasoning)>.*?</\1\s*>", re.S | re.I)
_CLOSE = re.compile(r"</(?:think|thinking|reasoning)\s*>", re.I)
_OPEN = re.compile(r"<(?:think|thinking|reasoning)>", re.I)


def reference_answer_text(text: str) -> str:
    text = _PAIR.sub("", text)
    closes = list(_CLOSE.finditer(text))
    if closes:
        text = text[closes[-1].end() :]
    opened = _OPEN.search(text)
    return text[: opened.start()] if opened else text


@settings(max_examples=500, deadline=None)
@given(answers)
def test_thinking_is_removed_as_before(text: str) -> None:
    assert answer_text(text) == reference_answer_text(text)


def test_a_run_and_its_report_read_answers_that_crashed_the_parser(
    loopback: Any, tmp_path: Path
) -> None:
    """The server answers 1,000 nested brackets: before, every request was paid, then the run
    and every `rmb report` died with RecursionError."""
    loopback.configure(policy="fixed:" + '{"winner": ' + "[" * 1000 + "]" * 1000 + "}")
    data = write_items(tmp_path / "items.jsonl", 5)
    cmd = subprocess_cmd(loopback, data, tmp_path, "--run-id", "r", "--template", "pairwise-json")
    r = run_cli(cmd)
    assert "Traceback" not in r.stderr
    lines = read_judged(tmp_path / "runs" / "r")
    assert len(lines) == 10 and all(j.verdict.kind == "invalid" for j in lines)
    rep = run_cli([sys.executable, "-m", "benchmark.cli", "report", str(tmp_path / "runs" / "r")])
    assert rep.returncode == 0 and "Traceback" not in rep.stderr, rep.stderr
