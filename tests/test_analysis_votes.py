"""Majority of samples, Cohen's kappa between runs, and juries of judges, against
hand-computed answers: three judges each wrong on a different third of the items."""

from __future__ import annotations

import pytest
from synthetic_runs import item, judge, pick

from benchmark.analysis.agreement import agreement, cohen_kappa
from benchmark.analysis.jury import JuryError, Member, jury
from benchmark.analysis.samples import majority_curve
from benchmark.data import Item
from benchmark.plan import Comparison
from benchmark.scoring import score, vote_all
from prompts.parsers import Verdict

ITEMS = [item(str(i)) for i in range(3)]


def wrong_on(k: int) -> object:
    """A judge wrong on item k only (items pair:0, pair:1, pair:2)."""

    def policy(it: Item, c: Comparison) -> Verdict:
        return pick(c, "rejected" if it.uid == f"pair:{k}" else "chosen")

    return policy


def test_majority_of_samples() -> None:
    # sample s is wrong on item s: each sample alone is right on 2 of 3 items
    def policy(it: Item, c: Comparison) -> Verdict:
        return pick(c, "rejected" if it.uid == f"pair:{c.sample_index}" else "chosen")

    judged = judge(ITEMS, policy, orders="fixed", samples=3)
    strict = majority_curve(ITEMS, judged, bootstrap=0)
    # k=2 splits 1-1 on items 0 and 1: ties, 0 under strict and 1/2 under half
    assert [(p.k, p.accuracy) for p in strict] == [
        (1, pytest.approx(2 / 3)),
        (2, pytest.approx(1 / 3)),
        (3, 1.0),
    ]
    half = majority_curve(ITEMS, judged, ties="half", bootstrap=0)
    assert half[1].accuracy == pytest.approx(2 / 3)
    assert strict[2].subsets == {"Harmlessness Pairwise": 1.0}
    # one sample: no curve
    assert majority_curve(ITEMS, judge(ITEMS, policy, orders="fixed"), bootstrap=0) == []


def test_cohen_kappa_by_hand() -> None:
    # 2×2 table [[20, 5], [10, 15]]: p_o = 0.7, p_e = (25·30 + 25·20) / 50² = 0.5
    a = ["x"] * 25 + ["y"] * 25
    b = ["x"] * 20 + ["y"] * 5 + ["x"] * 10 + ["y"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(a, a) == 1.0
    assert cohen_kappa(["x"] * 3, ["x"] * 3) is None
    assert cohen_kappa([], []) is None


def test_agreement_overall_and_per_scenario() -> None:
    items = [item(f"s{i}", scenario="S1") for i in range(4)] + [
        item(f"t{i}", scenario="S2") for i in range(4)
    ]
    a_right = {"pair:s0", "pair:s1", "pair:t0", "pair:t1"}
    b_right = {"pair:s0", "pair:s1", "pair:t0", "pair:t2"}

    def by(right: set[str]) -> object:
        return lambda it, c: pick(c, "chosen" if it.uid in right else "rejected")

    va, _ = vote_all(judge(items, by(a_right), orders="fixed"))  # type: ignore[arg-type]
    vb, _ = vote_all(judge(items, by(b_right), orders="fixed"))  # type: ignore[arg-type]
    ag = agreement(va, vb, {it.uid: it.category for it in items})
    # S1 agrees on all 4 (2 chosen, 2 rejected): 1; S2 agrees on 2 of 4 with 2/2 each: 0;
    # overall p_o = 6/8, p_e = 1/2: 0.5
    assert ag.overall.comparisons == 8
    assert ag.overall.observed == 0.75 and ag.overall.kappa == pytest.approx(0.5)
    assert {k.name: k.kappa for k in ag.scenarios} == {
        "Harmlessness Pairwise / S1": 1.0,
        "Harmlessness Pairwise / S2": pytest.approx(0.0),
    }


def test_agreement_leaves_invalid_out() -> None:
    items = ITEMS
    va, _ = vote_all(judge(items, wrong_on(0)))  # type: ignore[arg-type]
    vb, _ = vote_all(judge(items, lambda it, c: Verdict("invalid", reason="x")))
    ag = agreement(va, vb, {})
    assert ag.invalid == 6 and ag.overall.comparisons == 0 and ag.overall.kappa is None


def _members(orders: str = "both") -> list[Member]:
    return [
        Member(f"judge-{k}", judge(ITEMS, wrong_on(k), orders=orders))  # type: ignore[arg-type]
        for k in range(3)
    ]


def test_jury_majority_is_right_where_each_judge_is_wrong_a_third_of_the_time() -> None:
    members = _members()
    for m in members:
        assert score(ITEMS, m.judged, bootstrap=0).overall.accuracy == pytest.approx(2 / 3)
    out = jury(members, "majority")
    assert out.warnings == [] and len(out.judged) == 6
    assert score(ITEMS, out.judged, bootstrap=0).overall.accuracy == 1.0
    first = out.judged[0]
    assert first.verdict.reason == "jury: judge-0: rejected, judge-1: chosen, judge-2: chosen"
    # the jury's line names its members' answers, not a request of its own
    assert first.key.startswith("jury:") and first.cached


def test_jury_mean_prob_follows_the_confident_judge() -> None:
    # judge 0 is wrong on item 0 with P = 0.9; judges 1, 2 right there with P = 0.6:
    # mean P(chosen) = (0.1 + 0.6 + 0.6) / 3 < 1/2, so the jury is wrong where majority is right
    def confident(k: int, p_wrong: float, p_right: float) -> object:
        def policy(it: Item, c: Comparison) -> Verdict:
            wrong = it.uid == f"pair:{k}"
            cid = "rejected" if wrong else "chosen"
            p = p_wrong if wrong else p_right
            p_first = p if c.shown[0] == cid else 1 - p
            return pick(c, cid, (p_first, 1 - p_first))

        return policy

    members = [
        Member("sure", judge(ITEMS, confident(0, 0.9, 0.9))),  # type: ignore[arg-type]
        Member("meek-1", judge(ITEMS, confident(1, 0.6, 0.6))),  # type: ignore[arg-type]
        Member("meek-2", judge(ITEMS, confident(2, 0.6, 0.6))),  # type: ignore[arg-type]
    ]
    mean = jury(members, "mean-prob")
    s = score(ITEMS, mean.judged, bootstrap=0)
    assert {r.uid: r.score for r in s.items} == {"pair:0": 0.0, "pair:1": 1.0, "pair:2": 1.0}
    assert mean.judged[0].verdict.probs == pytest.approx((1.3 / 3, 1.7 / 3))
    assert score(ITEMS, jury(members, "majority").judged, bootstrap=0).overall.accuracy == 1.0


def test_jury_refuses_mismatched_runs_or_keeps_what_they_share() -> None:
    members = _members()
    members[2] = Member("judge-2", judge(ITEMS, wrong_on(2), orders="fixed"))  # type: ignore[arg-type]
    with pytest.raises(JuryError, match=r"did not judge the same comparisons.*--shared"):
        jury(members)
    out = jury(members, shared=True)
    assert len(out.judged) == 3
    assert len(out.warnings) == 1 and "restricted to the 3 comparisons" in out.warnings[0]
    with pytest.raises(JuryError, match="needs probabilities"):
        jury(_members(), "mean-prob")
    with pytest.raises(JuryError, match="at least two"):
        jury(_members()[:1])
