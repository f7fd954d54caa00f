"""Parsed choices: one small parser per output format, each returning a `Verdict`.

A parse failure is an `invalid` verdict with a reason, never a guess. The rules every text
parser shares: thinking (`<think>…</think>`) is ignored; the final verdict wins over labels
mentioned earlier in the reasoning; two different verdicts in the final verdict position, or
none at all, are invalid.

Answers are untrusted input (a server can send anything, and a cached answer is parsed again by
every `rmb report`): every parser is linear in the answer's length (no regex that backtracks
over a run of the answer, no retry from each position), JSON nesting is bounded, answers over
`MAX_ANSWER_CHARS` are invalid unread, and any exception a parser raises becomes an invalid
verdict with its reason (`parse`), never a crash."""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from judges.base import Completion, TokenLogprob

VerdictKind = Literal["choice", "tie", "score", "invalid"]


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: VerdictKind
    # 0-based display position of the preferred response (pairwise, listwise)
    choice: int | None = None
    # pointwise rating
    score: float | None = None
    # logprob verdicts: normalised probability per display position
    probs: tuple[float, ...] | None = None
    # why invalid (or a short note on how it was read)
    reason: str = ""


MAX_ANSWER_CHARS = 4_000_000  # ~1M tokens: no judge writes that much to give a verdict
_VERDICT_WINDOW = 65_536  # the verdict is read from the answer's last 64 KB
_MAX_REASON = 300  # a reason quotes the answer: a line of 1 MB must not become one


def invalid(reason: str) -> Verdict:
    if len(reason) > _MAX_REASON:
        reason = reason[: _MAX_REASON - 1] + "…"
    return Verdict("invalid", reason=reason)


# ---------------------------------------------------------------- shared text helpers

_THINK_NAMES = ("think", "thinking", "reasoning")
_THINK_OPEN = re.compile(r"<(?:think|thinking|reasoning)>", re.I)
_ANY = "|".join(_THINK_NAMES)


@functools.cache
def _pairs(names: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(rf"<({'|'.join(names)})>.*?</\1\s*>", re.S | re.I)


@functools.cache
def _closing_reversed(names: str) -> re.Pattern[str]:
    """A closing tag of `names` ("think" or "think|thinking|reasoning") written backwards:
    its first match in the reversed text is the last closing tag, found in one pass."""
    backwards = "|".join(n[::-1] for n in names.split("|"))
    return re.compile(rf">\s*(?:{backwards})/<", re.I)


def _last_close(reversed_text: str, names: str) -> tuple[int, int] | None:
    """(start, end) of the last closing tag of `names` in the text (given reversed), or None."""
    m = _closing_reversed(names).search(reversed_text)
    n = len(reversed_text)
    return None if m is None else (n - m.end(), n - m.start())


def _drop_think_pairs(text: str) -> str:
    """`re.sub(r"<(think|thinking|reasoning)>.*?</\\1\\s*>", "", text, flags=re.S | re.I)` in
    linear time. The plain sub rescans the rest of the answer from every opening that has no
    closing after it, quadratic (140 KB of unclosed tags: 11.5 s); here a name is searched for
    only before the start of its last closing tag, so every opening tried has its closing."""
    rev = text[::-1]
    last = {n: span[0] for n in _THINK_NAMES if (span := _last_close(rev, n)) is not None}
    out, pos, scan = [], 0, 0
    while alive := tuple(n for n in _THINK_NAMES if last.get(n, -1) > scan):
        edge = min(last[n] for n in alive)  # past it, one of these names can no longer pair
        for m in _pairs(alive).finditer(text, scan):
            if m.start() >= edge:
                break
            out.append(text[pos : m.start()])
            pos = m.end()
        else:
            break
        scan = max(edge, pos)
    out.append(text[pos:])
    return "".join(out)


def answer_text(text: str) -> str:
    """The text outside thinking blocks. A close tag with no opening (chat templates that put
    `<think>` in the prompt) ends the thinking; an opening never closed hides the rest."""
    text = _drop_think_pairs(text)
    if (close := _last_close(text[::-1], _ANY)) is not None:
        text = text[close[1] :]
    opened = _THINK_OPEN.search(text)
    return text[: opened.start()] if opened else text


# `[[X]]`, tolerating stray spaces and markup inside the brackets
# the label starts and ends with a non-space, so the spaces around it are read once, never
# again for each length the label might have (quadratic in a run of spaces)
_BRACKETS = re.compile(r"\[\[\s*+([^\[\]\s](?:[^\[\]\n]{0,38}[^\[\]\s])?)\s*\]\]")
# words judges put around a label: "[[Assistant A]]", "Final verdict: Response 2", "[[Rating: 7]]"
_LABEL_WORDS = re.compile(
    r"\b(?:assistant|response|answer|output|candidate|option|model|choice|rating|score|is)\b", re.I
)
_MARKUP = re.compile(r"[\s*_`'\"#.,;:!?()\[\]]+")
_KEYWORDS = (
    r"(?:final\s+)?(?:verdict|decision|judge?ment|answer|choice|winner|rating|score)"
    r"|(?:better|best|preferred|winning)\s+(?:response|answer|one)"
)
# a line that announces the verdict: "**Final verdict:** A", "Answer = 2", "Rating: 7/10"; what
# follows the (last) match is the verdict
_COLON_LINE = re.compile(rf"\b(?:{_KEYWORDS})\b[\s*_`]*[:：=]+", re.I)
# "My final verdict is B." (a lowercase 'a' after 'is' is an article, not a label)
_IS_LINE = re.compile(rf"\b(?:{_KEYWORDS})\s+(?:is|would\s+be|goes\s+to)\b[\s*_`:]*", re.I)
# "A or B", "A/B". (?<!\s): tried once at the start of a run of spaces, not again from each of
# its characters (quadratic in the run's length); the same for _SLASH
_ALTERNATIVE = re.compile(r"(?<!\s)(?:\s+or\s+|\s*[/|]\s*(?=\D))", re.I)
_SLASH = re.compile(r"(?<!\s)\s*/\s*")

# a last line that is nothing but a label or a number: "**B**", "7", "3/5"
_ARTICLE = re.compile(r"[*_`]*[a-z]\b")  # after the match's own spaces: "is a good one"
_BARE = re.compile(r"^(?:[A-Z]|\d+(?:\.\d+)?(?:/\d+)?)$")
Norm = Callable[[str], str]


def norm_label(raw: str) -> str:
    """'**Assistant a**' -> 'A', ' 3. ' -> '3'."""
    return _MARKUP.sub(" ", _LABEL_WORDS.sub(" ", raw)).strip().upper()


def norm_rating(raw: str) -> str:
    """'**7 / 10**' -> '7/10', 'Rating: 7.5.' -> '7.5' (keeps '.' and '/')."""
    t = re.sub(r"[*_`'\"#:()\[\]]+", " ", _LABEL_WORDS.sub(" ", raw))
    return _SLASH.sub("/", t).strip().rstrip(".").strip()


@dataclass(frozen=True, slots=True)
class _Found:
    """What stands at the final verdict position: its normalised label(s) and the text."""

    labels: tuple[str, ...]  # distinct, in text order; more than one is a conflict
    shown: str


def _bracket_verdict(text: str, norm: Norm) -> _Found | None:
    """The last `[[X]]`, with any others on its line."""
    matches = list(_BRACKETS.finditer(text))
    if not matches:
        return None
    line_start = text.rfind("\n", 0, matches[-1].start()) + 1
    on_line = [m for m in matches if m.start() >= line_start]
    labels = tuple(dict.fromkeys(norm(m.group(1)) for m in on_line))
    return _Found(labels, ", ".join(m.group(0) for m in on_line))


def _first_token(rest: str, norm: Norm) -> str:
    words = norm(rest).split()
    return words[0] if words else ""


def _after_last(pattern: re.Pattern[str], line: str) -> str | None:
    """What follows the last place on the line where the pattern matches ('the answer is
    right; the rating is 9' is read at 'rating'), or None. Matches that overlap end at the same
    separator, so the last of finditer's non-overlapping matches is the last one."""
    found = None
    for found in pattern.finditer(line):  # noqa: B007 (the last one is wanted)
        pass
    return None if found is None else line[found.end() :]


def _line_verdict(text: str, norm: Norm) -> _Found | None:
    """No brackets: the last line announcing a verdict decides; failing that, a last line that
    is a bare label ('**B**')."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        rest = _after_last(_COLON_LINE, ln)
        if rest is None:
            rest = _after_last(_IS_LINE, ln)
            if rest is None or _ARTICLE.match(rest):
                continue
        # "A or B" is the instructions echoed, not a verdict
        parts = [p for p in _ALTERNATIVE.split(rest) if p.strip()][:2]
        labels = tuple(dict.fromkeys(t for p in parts if (t := _first_token(p, norm))))
        return _Found(labels, ln) if labels else None
    if lines and _BARE.match(tok := norm(lines[-1])):
        return _Found((tok,), lines[-1])
    return None


def _find_verdict(text: str, norm: Norm) -> _Found | None:
    body = _tail(answer_text(text))
    return _bracket_verdict(body, norm) or _line_verdict(body, norm)


def _tail(text: str) -> str:
    """The end of the answer where a verdict is looked for: its last _VERDICT_WINDOW characters,
    from a line start. A verdict ends the answer; reading only there keeps a 1 MB answer as
    cheap as a short one."""
    if len(text) <= _VERDICT_WINDOW:
        return text
    cut = text.find("\n", len(text) - _VERDICT_WINDOW)
    return text[cut + 1 :] if cut != -1 else text[-_VERDICT_WINDOW:]


def _pick(text: str, allowed: dict[str, str]) -> str | Verdict:
    """The canonical label of the final verdict, or an invalid Verdict saying why not."""
    found = _find_verdict(text, norm_label)
    if found is None:
        return invalid("no verdict found")
    if len(found.labels) > 1:
        return invalid(f"conflicting final verdicts: {found.shown}")
    label = found.labels[0]
    if label not in allowed:
        options = ", ".join(dict.fromkeys(allowed.values()))
        return invalid(f"verdict {found.shown!r} is not one of {options}")
    return allowed[label]


# ---------------------------------------------------------------- one parser per format

_AB = {"A": "A", "B": "B"}
_ABC = {"A": "A", "B": "B", "C": "C", "TIE": "C"}


def _choice_from_label(label: str) -> Verdict:
    return Verdict("tie") if label == "C" else Verdict("choice", choice="AB".index(label))


def verdict_ab(completion: Completion, n_shown: int) -> Verdict:
    """Pairwise, `[[A]]` or `[[B]]`; no tie."""
    got = _pick(completion.text, _AB)
    return got if isinstance(got, Verdict) else _choice_from_label(got)


def verdict_abc(completion: Completion, n_shown: int) -> Verdict:
    """Pairwise with a tie: `[[A]]`, `[[B]]` or `[[C]]`."""
    got = _pick(completion.text, _ABC)
    return got if isinstance(got, Verdict) else _choice_from_label(got)


def verdict_index(completion: Completion, n_shown: int) -> Verdict:
    """Listwise, `[[k]]` with k in 1..n_shown."""
    allowed = {str(k): str(k) for k in range(1, n_shown + 1)}
    got = _pick(completion.text, allowed)
    return got if isinstance(got, Verdict) else Verdict("choice", choice=int(got) - 1)


_RATING = re.compile(r"^(\d+(?:\.\d+)?)(?:/(\d+))?$")


def _rating(completion: Completion, top: int) -> Verdict:
    """Pointwise `[[r]]` (or 'Rating: r', 'r/top') with 1 <= r <= top."""
    found = _find_verdict(completion.text, norm_rating)
    if found is None:
        return invalid("no rating found")
    if len(found.labels) > 1:
        return invalid(f"conflicting final ratings: {found.shown}")
    m = _RATING.match(found.labels[0])
    if m is None:
        return invalid(f"rating {found.shown!r} is not a number from 1 to {top}")
    score = float(m.group(1))
    if m.group(2) is not None and int(m.group(2)) != top:
        return invalid(f"rating {found.shown!r} is not on the 1–{top} scale")
    if not 1 <= score <= top:
        return invalid(f"rating {score:g} is outside 1–{top}")
    return Verdict("score", score=score)


def rating_10(completion: Completion, n_shown: int) -> Verdict:
    """Pointwise, `[[r]]` with r in 1..10."""
    return _rating(completion, 10)


def rating_5(completion: Completion, n_shown: int) -> Verdict:
    """Pointwise, `[[r]]` with r in 1..5."""
    return _rating(completion, 5)


_FENCE_MARK = re.compile(r"```(?:json)?", re.I)
_WINNER_FIELD = re.compile(r'"winner"\s*:\s*"([^"\n]*)"', re.I)


# where an object can start: '{' then a key or '}' (a '{' before anything else never decodes)
_OBJECT_START = re.compile(r'\{\s*+["}]')
_MAX_FAILED_TRIES = 256


def _json_objects(text: str) -> Iterator[dict[str, Any]]:
    """Every top-level JSON object in the text, in order; code-fence marks are blanked out.

    Decoding is tried at each '{' that does not start a decoded object; failed tries may read
    at most a few times the text in all (an unclosed string holding many '{' was quadratic);
    nesting deeper than the interpreter's recursion limit (1,000 brackets in 2 KB) is a failed
    try, not a crash."""
    text = _FENCE_MARK.sub(lambda m: " " * len(m.group()), text)
    # raw_decode without its Python wrapper: a 1 MB answer of small objects is 60k calls
    scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
    budget = 4 * len(text) + 4096  # characters failed tries may read
    tries = _MAX_FAILED_TRIES  # a failure costs more than its characters (the error's position)
    search = _OBJECT_START.search
    m = search(text)
    while m is not None and budget > 0 and tries > 0:
        i = m.start()
        try:
            obj, end = scan(text, i)
        except (StopIteration, ValueError, RecursionError) as e:  # also a 5,000-digit number
            budget -= max(1, getattr(e, "pos", len(text)) - i)
            tries -= 1
            m = search(text, i + 1)
            continue
        yield obj  # a dict: every candidate starts with '{'
        m = search(text, end)


def _winner_fields(body: str) -> tuple[list[Any], str]:
    """The 'winner' values of the JSON objects in the text, and a note on how they were read."""
    winners = [v for o in _json_objects(body) for k, v in o.items() if k.lower() == "winner"]
    if winners:
        return winners, ""
    # unescaped quotes in "reasoning" break the JSON; an explicit "winner" field is still explicit
    fields = list(dict.fromkeys(_WINNER_FIELD.findall(body)))
    return fields, "winner read from malformed JSON"


def json_winner(completion: Completion, n_shown: int) -> Verdict:
    """Pairwise JSON: `{"reasoning": "...", "winner": "A" | "B"}`, bare or in a code fence.
    The last object with a 'winner' field decides."""
    winners, note = _winner_fields(answer_text(completion.text))
    if not winners:
        return invalid("no JSON object with a 'winner' field")
    if note and len({norm_label(w) for w in winners}) > 1:
        return invalid(f"conflicting 'winner' fields in malformed JSON: {winners}")
    value = winners[-1]
    label = norm_label(value) if isinstance(value, str) else ""
    if label not in _AB:
        return invalid(f"'winner' is {value!r}, not one of A, B")
    return Verdict("choice", choice="AB".index(label), reason=note)


def _logprob_label(token: str) -> str | None:
    """'A', ' a', '**B' -> the label; markup or whitespace only -> ''; anything else -> None."""
    t = _MARKUP.sub("", token).upper()
    if t == "":
        return ""
    return t if t in _AB else None


def _verdict_position(logprobs: tuple[TokenLogprob, ...] | None) -> TokenLogprob | None:
    """The first generated position that is not whitespace or markup."""
    return next((pos for pos in logprobs or () if _logprob_label(pos.token) != ""), None)


def logprob_ab(completion: Completion, n_shown: int) -> Verdict:
    """Pairwise single-token answer: the verdict is the answered token (A or B) at the verdict
    position (the first that is not whitespace or markup); P(A), P(B) come from the top
    alternatives there, normalised over the two. An answer that is not a label is invalid even
    when A or B is among the alternatives: measured on SmolLM2-135M, 'The' was answered with
    only 'A' (the article, ~5%) in the top 5, and reading that as a verdict would be a guess.
    With no logprobs at all, the text is read."""
    pos = _verdict_position(completion.logprobs)
    if pos is None:
        got = _pick(completion.text, _AB)
        if isinstance(got, Verdict):
            return got
        note = "no logprobs at the verdict position; read from the text"
        return Verdict("choice", choice="AB".index(got), reason=note)
    logps: dict[str, list[float]] = {"A": [], "B": []}
    alternatives = dict(pos.top)
    alternatives.setdefault(pos.token, pos.logprob)
    for tok, lp in alternatives.items():
        alt = _logprob_label(tok)
        if alt and math.isfinite(lp):
            logps[alt].append(lp)
    # relative to the largest, so a server's nonsense (-1000 everywhere, +800) cannot
    # underflow to 0/0 or overflow exp()
    top = max((lp for lps in logps.values() for lp in lps), default=None)
    answered = _logprob_label(pos.token)
    if answered is None or top is None:
        mass = (
            0.0
            if top is None
            else math.exp(min(top, 0.0))
            * sum(math.exp(lp - top) for lps in logps.values() for lp in lps)
        )
        return invalid(
            f"answered {pos.token!r}, not A or B (P(A)+P(B) in the top alternatives: {mass:.3g})"
        )
    weight = {k: sum(math.exp(lp - top) for lp in lps) for k, lps in logps.items()}
    total = weight["A"] + weight["B"]
    probs = (weight["A"] / total, weight["B"] / total)
    choice = "AB".index(answered) if probs[0] == probs[1] else (0 if probs[0] > probs[1] else 1)
    return Verdict("choice", choice=choice, probs=probs)


ParserFn = Callable[[Completion, int], Verdict]


@dataclass(frozen=True, slots=True)
class Parser:
    """A parser as a template names it: the function, the template mode whose answers it reads
    (a template naming a parser of another mode is refused), and whether its verdict is the
    answer's first token (an answer stopped at the token limit is then complete, and cached)."""

    fn: ParserFn
    mode: str
    first_token: bool = False


PARSER_TABLE: dict[str, Parser] = {
    "verdict-ab": Parser(verdict_ab, "pairwise"),
    "verdict-abc": Parser(verdict_abc, "pairwise"),
    "json-winner": Parser(json_winner, "pairwise"),
    "logprob-ab": Parser(logprob_ab, "pairwise", first_token=True),
    "verdict-index": Parser(verdict_index, "listwise"),
    "rating-10": Parser(rating_10, "pointwise"),
    "rating-5": Parser(rating_5, "pointwise"),
}
# views of the table by what the callers ask
PARSERS: dict[str, ParserFn] = {name: p.fn for name, p in PARSER_TABLE.items()}
PARSER_MODES: dict[str, str] = {name: p.mode for name, p in PARSER_TABLE.items()}
FIRST_TOKEN_PARSERS = frozenset(name for name, p in PARSER_TABLE.items() if p.first_token)


def parse(parser: str, completion: Completion, n_shown: int) -> Verdict:
    """Read a completion with the named parser. Failed, refused, cut-off or empty answers are
    invalid with the reason, before any parsing."""
    table = PARSER_TABLE.get(parser)
    if table is None:
        raise KeyError(f"unknown parser {parser!r}; known: {', '.join(PARSERS)}")
    c = completion
    if c.finish_reason == "length" and c.error:
        # cut before it began: reasoning took the whole token limit (the judge says so)
        return invalid(c.error)
    if len(c.text) > MAX_ANSWER_CHARS:
        return invalid(f"answer of {len(c.text):,} characters (over {MAX_ANSWER_CHARS:,}): unread")
    if c.finish_reason == "error" or (
        c.error and c.finish_reason not in ("refused", "content_filter")
    ):
        return invalid(f"api error: {c.error or 'unknown'}")
    if c.finish_reason in ("refused", "content_filter"):
        return invalid(f"refused: {c.error or c.finish_reason}")
    # a single-token answer stops at max_tokens by design: "length" is its normal finish
    if c.finish_reason == "length" and not table.first_token:
        return invalid("truncated")
    if c.finish_reason not in ("stop", "length"):
        return invalid(f"unexpected finish_reason {c.finish_reason!r}")
    if not c.text.strip():
        return invalid("empty answer")
    try:
        return table.fn(c, n_shown)
    except Exception as e:  # a hostile answer must not stop a run or a report
        return invalid(f"{parser} could not read the answer: {type(e).__name__}: {e}")
