"""Length, position and generator analyses on synthetic runs, against hand-computed answers."""

from __future__ import annotations

import json

import pytest
from synthetic_runs import always_first, always_longer, item, judge, pick

from benchmark.analysis.duels import duels
from benchmark.analysis.facts import item_facts
from benchmark.analysis.generators import family, generator_analysis
from benchmark.analysis.length import length_analysis
from benchmark.analysis.position import position_analysis
from benchmark.analysis.run import analyse_run
from benchmark.data import Item, outline
from benchmark.plan import Comparison
from benchmark.scoring import score, vote_all
from prompts.parsers import Verdict

# chars(chosen) / chars(rejected): 2, 1/3, 1.2, 1/2
ITEMS = [item("a", 200, 100), item("b", 100, 300), item("c", 120, 100), item("d", 50, 100)]


def analyse(items: list[Item], policy: object, **kw: object):  # type: ignore[no-untyped-def]
    judged = judge(items, policy, **kw)  # type: ignore[arg-type]
    voted, _ = vote_all(judged)
    ds = duels(voted, item_facts(items))
    results = score(items, judged, bootstrap=0).items
    return ds, results


def test_always_longer_judge_shows_plainly() -> None:
    ds, results = analyse(ITEMS, always_longer)
    length = length_analysis(ds, bootstrap=200)
    assert length.comparisons == 8 and length.equal_length == 0
    assert length.preferred_longer == 0.5
    assert length.picks_longer.value == 1.0 and length.picks_longer.n == 8
    assert length.picks_longer.ci is not None
    assert (length.picks_longer.ci.low, length.picks_longer.ci.high) == (1.0, 1.0)
    assert length.accuracy_preferred_longer.value == 1.0
    assert length.accuracy_preferred_shorter.value == 0.0
    assert length.longer_gap == 1.0 and length.longer_gap_ci is not None
    assert (length.longer_gap_ci.low, length.longer_gap_ci.high) == (1.0, 1.0)
    # bins of chars(preferred) / chars(other): a=2, b=1/3, c=1.2, d=1/2
    assert {k: e.value for k, e in length.by_ratio.items()} == {
        "< 0.5": 0.0,
        "0.5–0.8": 0.0,
        "0.8–1.25": 1.0,
        "≥ 2": 1.0,
    }
    position = position_analysis(ds, results, bootstrap=0)
    assert position.picks_first.value == 0.5
    # by chars(first) / chars(second): the longer answer shown first is picked
    assert {k: (e.value, e.n) for k, e in position.by_length.items()} == {
        "< 0.5": (0.0, 1),  # b, chosen first (1/3)
        "0.5–0.8": (0.0, 2),  # a reversed (1/2), d (1/2)
        "0.8–1.25": (0.5, 2),  # c (1.2, picked first), c reversed (0.83, not)
        "≥ 2": (1.0, 3),  # a (2), b reversed (3), d reversed (2)
    }
    assert position.flips.value == 0.0 and position.flips.n == 4


def test_always_first_judge_is_position_not_length() -> None:
    ds, results = analyse(ITEMS, always_first)
    length = length_analysis(ds, bootstrap=0)
    assert length.picks_longer.value == 0.5
    assert length.accuracy_preferred_longer.value == 0.5
    assert length.accuracy_preferred_shorter.value == 0.5
    assert length.longer_gap == 0.0
    position = position_analysis(ds, results, bootstrap=200)
    assert position.picks_first.value == 1.0
    assert all(e.value == 1.0 for e in position.by_length.values())
    assert position.by_scenario["Harmlessness Pairwise / S1"].value == 1.0
    # every item's winner changes with the order
    assert position.flips.value == 1.0 and position.flips.n == 4


def test_ties_and_invalid_in_length_accuracy() -> None:
    def policy(it: Item, c: Comparison) -> Verdict:
        return Verdict("tie") if it.uid == "pair:a" else Verdict("invalid", reason="x")

    ds, _ = analyse(ITEMS[:2], policy)
    strict = length_analysis(ds, tie=0.0, bootstrap=0)
    half = length_analysis(ds, tie=0.5, bootstrap=0)
    # a: preferred longer, two ties; b: preferred shorter, two invalid verdicts (0)
    assert strict.accuracy_preferred_longer.value == 0.0
    assert half.accuracy_preferred_longer.value == 0.5
    assert half.accuracy_preferred_shorter.value == 0.0
    # no valid choice at all: no picks-longer rate
    assert half.picks_longer.value is None and half.picks_longer.n == 0


def test_equal_lengths_are_left_out_of_the_split() -> None:
    ds, _ = analyse([item("e", 100, 100)], always_first)
    length = length_analysis(ds, bootstrap=0)
    assert length.equal_length == 2
    assert length.picks_longer.n == 0 and length.preferred_longer is None
    assert length.by_ratio["0.8–1.25"].value == 0.5


GPT, CLAUDE, LLAMA = "gpt-4o-mini-2024-07-18", "claude-3-opus-20240229", "Llama-2-70b-chat-hf"


def prefers_gpt(it: Item, c: Comparison) -> Verdict:
    """Picks the GPT-written answer when there is one, else the preferred one."""
    answers = it.candidates()
    own = [cid for cid in c.shown if answers[cid].model == GPT]
    return pick(c, own[0] if own else "chosen")


def test_generators_and_self_preference() -> None:
    items = []
    for k in range(10):
        items += [
            item(f"a{k}", models=(GPT, CLAUDE)),
            item(f"b{k}", models=(CLAUDE, GPT)),
            item(f"c{k}", models=(LLAMA, CLAUDE)),
            item(f"d{k}", models=(CLAUDE, LLAMA)),
        ]
    ds, _ = analyse(items, prefers_gpt)
    g = generator_analysis(ds, "openai:gpt-4o", bootstrap=500)
    rows = {r.model: (r.comparisons, r.judge_wins.value, r.dataset_wins) for r in g.generators}
    assert rows == {
        GPT: (40, 1.0, 0.5),  # a: chosen, b: rejected; the judge picks it every time
        CLAUDE: (80, 0.25, 0.5),  # wins only d
        LLAMA: (40, 0.5, 0.5),
    }
    sp = g.self_preference
    assert g.judge_family == "gpt" and sp is not None
    assert sp.family == "gpt" and sp.comparisons == 40
    assert sp.judge_picks_own.value == 1.0 and sp.dataset_prefers_own == 0.5
    assert sp.excess == 0.5
    assert sp.excess_ci is not None and 0 < sp.excess_ci.low < 0.5 < sp.excess_ci.high < 1
    # a judge whose family wrote nothing: no self-preference
    assert generator_analysis(ds, "anthropic:mistral-large", bootstrap=0).self_preference is None


@pytest.mark.parametrize(
    ("name", "fam"),
    [
        ("gpt-4o-mini-2024-07-18", "gpt"),
        ("openai:gpt-4o", "gpt"),
        ("openai:o3-mini", "gpt"),
        ("anthropic:claude-sonnet-4-5", "claude"),
        ("Mixtral-8x7B-Instruct-v0.1", "mistral"),
        ("alibaba/Qwen2-7B-Instruct", "qwen"),
        ("gemini-1.5-pro-exp-0801", "gemini"),
        ("local", "smollm"),
        ("vicuna-7b-v1.5", "vicuna"),
        ("openai:Some-New-Model", "some-new-model"),
    ],
)
def test_model_family(name: str, fam: str) -> None:
    assert family(name) == fam


def test_analyse_run_gathers_every_section() -> None:

    judged = judge(ITEMS, always_longer, samples=2)
    scores = score(ITEMS, judged, bootstrap=50)
    # scoring needs no texts; the lengths come from the facts taken before they were dropped
    a = analyse_run(
        outline(ITEMS), item_facts(ITEMS), judged, scores, judge="openai:gpt-4o", bootstrap=50
    )
    assert a.length is not None and a.length.picks_longer.value == 1.0
    assert a.position is not None and a.position.picks_first.value == 0.5
    assert a.generators is not None and a.generators.self_preference is None
    assert a.calibration is None
    assert [(p.k, p.accuracy) for p in a.samples] == [(1, 0.5), (2, 0.5)]
    d = json.loads(json.dumps(a.to_dict()))
    assert d["length_unit"] == "characters"
    assert d["length"]["picks_longer"]["ci"] == {"low": 1.0, "high": 1.0}
