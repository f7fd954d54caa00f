"""Judge answers built to hurt a parser: each the worst case of one pattern, at any size. Used by
the property tests (tests/test_parsers_hostile.py) and the throughput bench (bench/parsers.py)."""

from __future__ import annotations

from collections.abc import Callable


def _fill(unit: str, size: int, head: str = "", tail: str = "") -> str:
    body = size - len(head) - len(tail)
    return head + (unit * (body // len(unit) + 1))[: max(0, body)] + tail


# name -> size in characters -> answer
HOSTILE: dict[str, Callable[[int], str]] = {
    "unclosed <think>": lambda n: _fill("<think>x", n),
    "unclosed <think> then a verdict": lambda n: _fill("<think>", n, tail="\n[[A]]"),
    "stray </think>": lambda n: _fill("</think >", n, tail="[[B]]"),
    "nested [": lambda n: _fill("[", n, head='{"winner": ', tail="]"),
    "nested {": lambda n: _fill("{", n),
    'nested {"a":': lambda n: _fill('{"a":', n, tail='"A"'),
    "unclosed JSON string of {": lambda n: _fill("{", n, head='{"winner": "'),
    "many small JSON objects": lambda n: _fill('{"winner": "A"} ', n),
    "huge number in JSON": lambda n: _fill("9", n, head='{"winner": "A", "n": ', tail="}"),
    "[[ then spaces": lambda n: _fill(" ", n, head="[[ a", tail="x"),
    "many [[": lambda n: _fill("[[", n),
    "verdict: repeated on a line": lambda n: _fill("verdict: ", n),
    "verdict then spaces": lambda n: _fill(" ", n, head="Final verdict", tail="x"),
    "verdict is then spaces": lambda n: _fill(" ", n, head="the verdict is", tail="x"),
    "spaces before a slash": lambda n: _fill(" ", n, head="Rating: 7", tail="x"),
    "A or B repeated": lambda n: _fill(" or ", n, head="Verdict: A", tail="B"),
    "one long word": lambda n: _fill("a", n, head="Answer: "),
    "many lines": lambda n: _fill("Response A is better.\n", n),
    "many blank lines": lambda n: _fill("\n", n, head="[[A]]"),
    "markup": lambda n: _fill("*_`#", n, head="Verdict: "),
    "unicode": lambda n: _fill("Ａ判决：", n),
}
