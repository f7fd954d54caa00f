"""RMB's records as typed items: where an item sits (`Category`), its candidate answers
(`Response`), a pairwise item (chosen vs rejected) or a Best-of-N item (best vs losers)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from judges.base import Message
from judges.errors import UserError

SetName = Literal["pairwise", "bon"]
Goal = Literal["helpfulness", "harmlessness"]
SUBSETS = (
    ("helpfulness", "bon"),
    ("helpfulness", "pairwise"),
    ("harmlessness", "bon"),
    ("harmlessness", "pairwise"),
)
SET_DIRS = {"Pairwise_set": "pairwise", "BoN_set": "bon"}
GOAL_DIRS = {"Helpfulness": "helpfulness", "Harmlessness": "harmlessness"}


class DataError(UserError):
    """A dataset file or record that cannot be used."""


@dataclass(frozen=True, slots=True)
class Category:
    set: SetName
    goal: Goal
    task: str
    scenario: str

    @classmethod
    def parse(cls, path: str) -> Category:
        """`Pairwise_set/Helpfulness/Code/Data Management` or `BoN_set/Harmlessness/S1`
        (harmlessness has no task level: task = scenario)."""
        parts = path.strip("/").split("/")
        if len(parts) not in (3, 4) or parts[0] not in SET_DIRS or parts[1] not in GOAL_DIRS:
            raise ValueError(
                f"category_path {path!r} is not like 'Pairwise_set|BoN_set/Helpfulness|Harmlessness/[Task/]Scenario'"
            )
        scenario = parts[-1]
        task = parts[2] if len(parts) == 4 else scenario
        return cls(SET_DIRS[parts[0]], GOAL_DIRS[parts[1]], task, scenario)  # type: ignore[arg-type]

    @property
    def subset(self) -> str:
        """The paper's column name: 'Helpfulness BoN', 'Harmlessness Pairwise', ..."""
        return f"{self.goal.capitalize()} {'BoN' if self.set == 'bon' else 'Pairwise'}"

    @property
    def path(self) -> str:
        set_dir = "BoN_set" if self.set == "bon" else "Pairwise_set"
        mid = f"/{self.task}" if self.goal == "helpfulness" else ""
        return f"{set_dir}/{self.goal.capitalize()}{mid}/{self.scenario}"


@dataclass(frozen=True, slots=True)
class Response:
    model: str
    text: str


@dataclass(frozen=True, slots=True)
class PairwiseItem:
    uid: str
    category: Category
    conversation: tuple[Message, ...]
    chosen: Response
    rejected: Response

    def candidates(self) -> dict[str, Response]:
        """Candidate ids (as plans and reports name them) to responses; the preferred one first."""
        return {"chosen": self.chosen, "rejected": self.rejected}

    def without_texts(self) -> PairwiseItem:
        """The item with its texts emptied: all that scoring reads (see `outline`)."""
        return replace(
            self, conversation=(), chosen=_outline(self.chosen), rejected=_outline(self.rejected)
        )


@dataclass(frozen=True, slots=True)
class BoNItem:
    uid: str
    category: Category
    conversation: tuple[Message, ...]
    best: Response
    losers: tuple[Response, ...]

    def candidates(self) -> dict[str, Response]:
        out = {"best": self.best}
        out.update({f"loser{i + 1}": r for i, r in enumerate(self.losers)})
        return out

    def without_texts(self) -> BoNItem:
        """The item with its texts emptied: all that scoring reads (see `outline`)."""
        return replace(
            self,
            conversation=(),
            best=_outline(self.best),
            losers=tuple(map(_outline, self.losers)),
        )


Item = PairwiseItem | BoNItem


def _outline(r: Response) -> Response:
    return Response(r.model, "")


def outline(items: Iterable[Item]) -> list[Item]:
    """Items without their texts (uids, categories, candidate ids and models kept). Once a run
    has its answers, scoring needs no text: the full RMB's texts are 43 MB of its peak memory.
    Drop the full items, then call `return_freed_memory`."""
    return [it.without_texts() for it in items]


PREFERRED = {"chosen", "best"}  # the candidate id a correct judge prefers
