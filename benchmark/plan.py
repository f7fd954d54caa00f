"""Items to comparisons: which candidates a judge sees, in which order, how many samples."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ComparisonKind = Literal["pairwise", "bon-pairwise", "listwise", "pointwise"]


@dataclass(frozen=True, slots=True)
class Comparison:
    item_uid: str
    kind: ComparisonKind
    # candidate ids (see PairwiseItem/BoNItem.candidates) in display order
    shown: tuple[str, ...]
    # which order/permutation of the same candidates this is (0, 1, ...)
    variant: int = 0
    sample_index: int = 0

    @property
    def id(self) -> str:
        return f"{self.item_uid}|{self.kind}|{','.join(self.shown)}|v{self.variant}|s{self.sample_index}"
