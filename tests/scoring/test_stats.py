"""Statistics on hand-computed cases."""

import math

import numpy as np
import pytest

from jmedllm.scoring.stats import (
    _MAX_DISTINCT_FOR_MULTINOMIAL,
    bootstrap_mean_ci,
    bootstrap_statistics,
    bootstrap_sum_ci,
    exact_binomial_two_sided,
    exam_points_ci,
    mcnemar,
    paired_bootstrap,
    resample_statistic,
)


# --- McNemar -----------------------------------------------------------------

def test_mcnemar_exact_b2_c8():
    # b = 2, c = 8, n = 10: p = 2 * (C(10,0) + C(10,1) + C(10,2)) / 2^10 = 2 * (1 + 10 + 45) / 1024
    #   = 112 / 1024 = 0.109375
    a = [True] * 2 + [False] * 8 + [True] * 5 + [False] * 3  # 5 both right, 3 both wrong
    b = [False] * 2 + [True] * 8 + [True] * 5 + [False] * 3
    r = mcnemar(a, b)
    assert (r.b, r.c) == (2, 8)
    assert r.p_value == pytest.approx(0.109375, abs=1e-15)
    # continuity-corrected chi-square: (|2 - 8| - 1)^2 / 10 = 25 / 10 = 2.5
    assert r.chi2_corrected == pytest.approx(2.5)


def test_mcnemar_edge_cases():
    assert exact_binomial_two_sided(0, 0) == 1.0  # no discordant pairs
    # b = 0, c = 5: 2 * C(5,0) / 2^5 = 2 / 32 = 0.0625
    assert exact_binomial_two_sided(0, 5) == pytest.approx(0.0625)
    # b = c = 3: 2 * (1 + 6 + 15 + 20) / 64 = 84 / 64 > 1 -> capped at 1
    assert exact_binomial_two_sided(3, 3) == 1.0
    # symmetric in b and c
    assert exact_binomial_two_sided(8, 2) == exact_binomial_two_sided(2, 8)
    # large counts stay exact (integer arithmetic): b = 0, c = 60 -> 2 / 2^60
    assert exact_binomial_two_sided(0, 60) == pytest.approx(2 / 2**60, rel=1e-12)
    with pytest.raises(ValueError, match="differ in length"):
        mcnemar([True], [True, False])


# --- bootstrap ---------------------------------------------------------------

def test_bootstrap_constant_values_have_a_degenerate_interval():
    ci = bootstrap_mean_ci([0.7] * 20, n_resamples=500, seed=1)
    assert (ci.estimate, ci.low, ci.high, ci.n) == pytest.approx((0.7, 0.7, 0.7, 20))


def test_bootstrap_two_values():
    # Values {0, 1}: a resample mean is 0 (both 0, prob 1/4), 0.5 (prob 1/2) or 1 (prob 1/4).
    # 25 % of the mass sits on each end, so the 2.5 % and 97.5 % quantiles are 0 and 1.
    ci = bootstrap_mean_ci([0.0, 1.0], n_resamples=4000, seed=0)
    assert (ci.estimate, ci.low, ci.high) == (0.5, 0.0, 1.0)


def test_bootstrap_matches_the_normal_approximation():
    # 60 of 100 right: SE = sqrt(0.6 * 0.4 / 100) = 0.04899; 95 % ~ 0.6 +- 1.96 * 0.04899
    #   = [0.504, 0.696]. The percentile bootstrap agrees within Monte Carlo error.
    values = [1.0] * 60 + [0.0] * 40
    ci = bootstrap_mean_ci(values, n_resamples=5000, seed=3)
    se = math.sqrt(0.6 * 0.4 / 100)
    assert ci.estimate == 0.6
    assert ci.low == pytest.approx(0.6 - 1.96 * se, abs=0.015)
    assert ci.high == pytest.approx(0.6 + 1.96 * se, abs=0.015)


def test_bootstrap_is_deterministic_and_seed_dependent():
    values = np.arange(30) % 3 == 0
    a = bootstrap_mean_ci(values, n_resamples=300, seed=7)
    b = bootstrap_mean_ci(values, n_resamples=300, seed=7)
    assert a == b
    draws7 = bootstrap_statistics(values.astype(float), 50, np.random.default_rng(7))
    draws8 = bootstrap_statistics(values.astype(float), 50, np.random.default_rng(8))
    assert not np.array_equal(draws7, draws8)


def test_bootstrap_blocks_do_not_change_shapes():
    # many resamples of many items exercise the block loop
    out = bootstrap_statistics(np.ones((3000, 2)), 2000, np.random.default_rng(0))
    assert out.shape == (2000, 2) and np.all(out == 1.0)


def test_bootstrap_rejects_bad_input():
    with pytest.raises(ValueError, match="zero items"):
        bootstrap_mean_ci([])
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_mean_ci([0.1, float("nan")])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_mean_ci([0.1, 0.2], confidence=1.5)


def test_bootstrap_sum_and_exam_points():
    # A sum of constant values: 5 items worth 3 points, all right -> 15, interval [15, 15].
    ci = bootstrap_sum_ci([3.0] * 5, n_resamples=200, seed=0)
    assert (ci.estimate, ci.low, ci.high) == (15.0, 15.0, 15.0)
    # Exam points: items worth 1, 3, 3, 1 with right/wrong T, T, F, F -> earned 1 + 3 = 4.
    ci = exam_points_ci([1, 3, 3, 1], [True, True, False, False], n_resamples=2000, seed=0)
    assert ci.estimate == 4.0
    # The interval is of the share of available points earned (4 / 8) times the maximum, 8:
    # it holds the estimate and never leaves [0, 8] (a raw sum of resampled items could
    # reach 4 x 3 = 12 > 8).
    assert 0.0 <= ci.low <= 4.0 <= ci.high <= 8.0
    # hand-computed extremes: everything right -> every resampled share is 1 -> [8, 8]
    ci = exam_points_ci([1, 3, 3, 1], [True] * 4, n_resamples=500, seed=0)
    assert (ci.estimate, ci.low, ci.high) == (8.0, 8.0, 8.0)
    # only the 3-point items right, on a section of 3 + 3 + 1 + 1 + 1 + 1 = 10: estimate 6;
    # the highest possible resample share is 1 (all draws 3-point items) -> high <= 10
    many = exam_points_ci([3, 3, 1, 1, 1, 1], [True, True, False, False, False, False], n_resamples=4000, seed=1)
    assert many.estimate == 6.0 and 0.0 <= many.low < 6.0 < many.high <= 10.0
    # the same seed gives the same interval; points with nothing available: 0, [0, 0]
    assert exam_points_ci([3, 3, 1, 1, 1, 1], [True, True, False, False, False, False], n_resamples=4000, seed=1) == many
    assert exam_points_ci([0, 0], [True, False]).high == 0.0
    with pytest.raises(ValueError, match="differ in length"):
        exam_points_ci([1], [True, False])


# --- paired bootstrap --------------------------------------------------------

def test_paired_bootstrap_identical_runs():
    a = [1.0, 0.0, 1.0, 1.0]
    r = paired_bootstrap(a, a, n_resamples=500, seed=0)
    # every difference is 0: difference 0, interval [0, 0], p = (1 + 500) / (1 + 500) = 1
    assert (r.difference, r.low, r.high, r.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_paired_bootstrap_constant_improvement():
    # B is right on every item, A on none: d_i = 1 for all i, every resample has mean 1,
    # |d* - 1| = 0 < |1| never counts, so p = (1 + 0) / (1 + B) = 1 / 1001.
    r = paired_bootstrap([0.0] * 10, [1.0] * 10, n_resamples=1000, seed=0)
    assert (r.mean_a, r.mean_b, r.difference, r.low, r.high) == (0.0, 1.0, 1.0, 1.0, 1.0)
    assert r.p_value == pytest.approx(1 / 1001)


def test_paired_bootstrap_pairs_items():
    # Paired: B = A + 0.1 on every item -> the difference is exactly 0.1 in every resample,
    # although A itself varies a lot between items.
    a = [0.0, 0.9, 0.2, 0.5, 0.3]
    b = [x + 0.1 for x in a]
    r = paired_bootstrap(a, b, n_resamples=300, seed=2)
    assert r.difference == pytest.approx(0.1)
    assert r.low == pytest.approx(0.1) and r.high == pytest.approx(0.1)
    with pytest.raises(ValueError, match="differ in length"):
        paired_bootstrap([1.0], [1.0, 0.0])


def test_paired_bootstrap_p_value_two_items():
    # d = B - A = [1, 0], observed mean 0.5. Resampled means: 1 (prob 1/4), 0.5 (1/2), 0 (1/4).
    # |d* - 0.5| >= 0.5 for d* in {0, 1}: probability 1/2, so p ~ (1 + B/2) / (1 + B) ~ 0.5.
    r = paired_bootstrap([0.0, 0.0], [1.0, 0.0], n_resamples=4000, seed=5)
    assert r.difference == 0.5
    assert r.p_value == pytest.approx(0.5, abs=0.03)
    # the 2.5 % and 97.5 % quantiles: 25 % of the mass at 0 and at 1 -> [0, 1]
    assert (r.low, r.high) == (0.0, 1.0)


def test_multinomial_and_index_resampling_agree():
    # Right/wrong values take the multinomial path; the same values plus a tiny distinct
    # jitter on every item (more than 64 distinct values) take the index path. Both must
    # give the same bootstrap distribution: 60 of 200 right -> mean 0.3,
    # SD of the resampled mean sqrt(0.3 * 0.7 / 200) = 0.0324.
    values = np.array([1.0] * 60 + [0.0] * 140)
    jitter = values + np.arange(200) * 1e-9
    assert len(np.unique(jitter)) > _MAX_DISTINCT_FOR_MULTINOMIAL
    fast = resample_statistic(values, 20000, np.random.default_rng(0))
    slow = resample_statistic(jitter, 20000, np.random.default_rng(1))
    sd = math.sqrt(0.3 * 0.7 / 200)
    for draws in (fast, slow):
        assert draws.mean() == pytest.approx(0.3, abs=0.002)
        assert draws.std() == pytest.approx(sd, rel=0.03)
    # sums: 3-point items, 2 of 4 right -> sums are 3 * Binomial(4, 1/2): values 0, 3, ..., 12
    sums = resample_statistic(np.array([3.0, 3.0, 0.0, 0.0]), 1000, np.random.default_rng(0), reduce="sum")
    assert set(np.unique(sums)) <= {0.0, 3.0, 6.0, 9.0, 12.0}
