"""Judged comparisons to accuracies, the way RMB reports them, with the numbers that qualify them.

Rules (the design's "Semantics"; every one is tested with hand-computed answers):

- Samples: the K samples of one comparison (same item, kind, shown order, variant) are
  majority-voted first. Invalid samples do not vote; all invalid → invalid; a split vote → tie.
  Pointwise samples are averaged (a rating's natural aggregate).
- Duels (`pairwise` on pairwise items, `bon-pairwise` on BoN items): the k-th order is each
  opponent's k-th comparison sorted by `Comparison.variant` (variant 0 then 1 under
  `--orders both`; the one seeded order under `random`). In an order, the preferred answer
  ("chosen"/"best") must beat every other candidate; its order score is the minimum over opponents of win 1, loss 0, tie 0
  (`strict`, RMB's rule) or 0.5 (`half`). An invalid or missing comparison scores 0 in that order
  and marks the item invalid. The item score is the mean over the orders judged, so a pairwise
  item judged in both orders scores 0, 0.5 or 1.
- `listwise`: per permutation, 1 if the judge picked the preferred answer; a tie scores 0
  (`strict`) or 1/k for k candidates (`half`). Item = mean over permutations.
- `pointwise`: per variant, 1 if the preferred answer's score is strictly above every other;
  a shared top score scores 0 (`strict`) or 1/k when k candidates share it (`half`); a missing or
  invalid rating scores 0 and marks the item invalid.
- Aggregation: per scenario; per subset micro over items (the headline) and macro over
  scenarios; per helpfulness task; Overall = mean of the subsets present. Items with no judged
  comparison at all are left out and counted as unjudged (a run still in progress).
"""

from .aggregate import (
    SUBSET_NAMES,
    GroupScore,
    Scores,
    aggregate,
    reason_kind,
    scenario_name,
    score,
    task_name,
)
from .items import TIES, ItemResult, ScoringError, Tally, Ties, rank_score, score_item
from .votes import Voted, vote, vote_all

__all__ = [
    "SUBSET_NAMES",
    "TIES",
    "GroupScore",
    "ItemResult",
    "Scores",
    "ScoringError",
    "Tally",
    "Ties",
    "Voted",
    "aggregate",
    "rank_score",
    "reason_kind",
    "scenario_name",
    "score",
    "score_item",
    "task_name",
    "vote",
    "vote_all",
]
