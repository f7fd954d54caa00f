"""Parsed choices: one small parser per output format, each returning a `Verdict`.

A parse failure is an `invalid` verdict with a reason, never a guess."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
