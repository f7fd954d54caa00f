"""Bootstrap, paired bootstrap and McNemar against known answers."""

from __future__ import annotations

import random
import statistics

import pytest

from benchmark.scoring.stats import (
    bootstrap_means,
    mcnemar,
    mcnemar_paired,
    paired_bootstrap_diffs,
    percentile_interval,
    rng_for,
)


def test_multinomial_bootstrap_matches_index_resampling() -> None:
    """Drawing value counts must give the same distribution as resampling items by index."""
    values = [1.0] * 60 + [0.5] * 15 + [0.0] * 25
    fast = bootstrap_means(values, 4000, rng_for(0, "x"))
    r = random.Random(0)
    slow = [statistics.fmean(r.choices(values, k=len(values))) for _ in range(4000)]
    assert statistics.fmean(fast) == pytest.approx(statistics.fmean(values), abs=0.003)
    assert statistics.fmean(slow) == pytest.approx(statistics.fmean(values), abs=0.003)
    # the standard error of a mean of 100 such items: pstdev(values)/10 ≈ 0.0433
    se = statistics.pstdev(values) / 10
    assert statistics.pstdev(fast) == pytest.approx(se, rel=0.06)
    assert statistics.pstdev(slow) == pytest.approx(se, rel=0.06)


def test_bootstrap_is_deterministic_per_seed_and_name() -> None:
    values = [float(i % 3 == 0) for i in range(300)]
    a = bootstrap_means(values, 1000, rng_for(7, "Helpfulness BoN"))
    b = bootstrap_means(values, 1000, rng_for(7, "Helpfulness BoN"))
    c = bootstrap_means(values, 1000, rng_for(7, "Harmlessness BoN"))
    assert (a == b).all() and not (a == c).all()
    assert bootstrap_means([], 1000, rng_for(0, "x")).size == 0
    assert percentile_interval(bootstrap_means([], 10, rng_for(0, "x"))) is None


def test_paired_bootstrap_sign_and_interval() -> None:
    a = [1.0] * 50 + [0.0] * 50
    b = [1.0] * 50 + [1.0] * 20 + [0.0] * 30  # B fixes 20 of A's misses: +0.2
    d = paired_bootstrap_diffs(a, b, 2000, rng_for(0, "pair"))
    ci = percentile_interval(d)
    assert ci is not None and 0.1 < ci.low < 0.2 < ci.high < 0.3
    back = percentile_interval(paired_bootstrap_diffs(b, a, 2000, rng_for(0, "pair")))
    assert back is not None and back.high < 0
    # identical runs: the difference is exactly zero in every resample
    same = paired_bootstrap_diffs(a, a, 100, rng_for(0, "pair"))
    assert (same == 0).all()
    with pytest.raises(ValueError):
        paired_bootstrap_diffs(a, b[:-1], 10, rng_for(0, "pair"))


def test_paired_interval_is_narrower_than_unpaired() -> None:
    """Pairing removes the shared item difficulty: the paired interval must be tighter."""
    r = random.Random(3)
    a = [float(r.random() < 0.7) for _ in range(400)]
    b = [x if r.random() < 0.9 else 1 - x for x in a]
    paired = percentile_interval(paired_bootstrap_diffs(a, b, 2000, rng_for(0, "p")))
    ua = bootstrap_means(a, 2000, rng_for(1, "a"))
    ub = bootstrap_means(b, 2000, rng_for(2, "b"))
    unpaired = percentile_interval(ub - ua)
    assert paired is not None and unpaired is not None
    assert paired.high - paired.low < 0.75 * (unpaired.high - unpaired.low)


def test_mcnemar_known_tables() -> None:
    # exact: 2 * P(X <= 2), X ~ Binomial(12, 1/2) = 2 * (1 + 12 + 66) / 4096
    m = mcnemar(10, 2)
    assert m.method == "exact" and m.p_value == pytest.approx(158 / 4096)
    # chi-square with continuity correction: (|30 - 15| - 1)^2 / 45 = 4.3556, p = 0.03689
    m = mcnemar(30, 15)
    assert m.method == "chi2" and m.p_value == pytest.approx(0.036888, abs=1e-5)
    # the textbook table (b=121, c=59): chi2 = 61^2/180 = 20.67, p ≈ 5.45e-6
    assert mcnemar(121, 59).p_value == pytest.approx(5.45e-6, rel=0.01)
    assert mcnemar(0, 0).p_value == 1.0 and mcnemar(5, 5).p_value == 1.0
    assert mcnemar(3, 0).p_value == pytest.approx(0.25)


def test_mcnemar_paired_counts_discordant_items() -> None:
    a = [1, 1, 0, 0, 1, 0.5]
    b = [1, 0, 1, 1, 1, 1.0]
    m = mcnemar_paired(a, b)
    assert (m.a_better, m.b_better) == (1, 3)


def test_holm_adjustment_by_hand() -> None:
    from benchmark.scoring.stats import holm

    # sorted 0.01, 0.03, 0.04 -> 3 x 0.01, 2 x 0.03, max(0.06, 1 x 0.04); back in given order
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == [1.0, 1.0]  # capped at 1
    assert holm([]) == []
