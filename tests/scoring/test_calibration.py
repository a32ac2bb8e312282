"""Calibration (reliability bins, ECE) and answer-position bias on hand-computed cases."""

import math

import pytest

from jmedllm.scoring.calibration import (
    choice_confidence,
    expected_calibration_error,
    letter_distribution,
    position_bias,
    reliability,
    softmax,
)


def test_softmax_of_log_probabilities():
    assert softmax([math.log(1), math.log(3)]) == pytest.approx([0.25, 0.75])
    # unnormalised log-likelihoods of choice texts: only differences matter
    assert softmax([-10.0, -10.0 + math.log(4)]) == pytest.approx([0.2, 0.8])


def test_choice_confidence_loglik_and_letter_spellings():
    assert choice_confidence([[math.log(0.2)], [math.log(0.6)], [math.log(0.2)]]) == (1, pytest.approx(0.6))
    # letter mode: spellings of one choice are added (0.1 + 0.1 = 0.2); a tie goes to the first choice
    idx, p = choice_confidence([[math.log(0.1), math.log(0.1)], [math.log(0.2), math.log(0.2)], [math.log(0.4)]])
    assert idx == 1 and p == pytest.approx(0.4)
    with pytest.raises(ValueError):
        choice_confidence([[-1.0], []])


def test_reliability_bins_and_ece_by_hand():
    conf = [0.05, 0.15, 0.95, 1.0, 0.55]
    ok = [False, False, True, True, False]
    bins = reliability(conf, ok, n_bins=10)
    filled = {round(b.low, 1): (b.n, b.confidence, b.accuracy) for b in bins if b.n}
    assert filled == {0.0: (1, 0.05, 0.0), 0.1: (1, 0.15, 0.0), 0.5: (1, 0.55, 0.0),
                      0.9: (2, pytest.approx(0.975), 1.0)}  # 1.0 falls in the last bin
    # (1/5)(0.05) + (1/5)(0.15) + (1/5)(0.55) + (2/5)(0.025) = 0.16
    assert expected_calibration_error(conf, ok, n_bins=10) == pytest.approx(0.16)
    # over-confident: says 90 %, right 3 times in 4 -> |0.75 - 0.9| = 0.15
    assert expected_calibration_error([0.9] * 4, [True, True, True, False]) == pytest.approx(0.15)
    # perfectly calibrated at 50 %
    assert expected_calibration_error([0.5, 0.5], [True, False], n_bins=4) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        reliability([1.2], [True])


def test_position_bias_by_hand():
    assert letter_distribution([0, 2, 2], 4) == [1, 0, 2, 0]
    pb = position_bias(predicted=[0, 0, 0, 1], gold=[0, 1, 2, 3], n_positions=4)
    assert pb.predicted == (3, 1, 0, 0) and pb.gold == (1, 1, 1, 1)
    # shares .75 .25 0 0 vs .25 each: 0.5 * (0.5 + 0 + 0.25 + 0.25) = 0.5
    assert pb.total_variation == pytest.approx(0.5)
    assert (pb.most_chosen, pb.most_chosen_share) == ("a", 0.75)
    unbiased = position_bias([1, 0, 2], [0, 2, 1], 3)  # wrong every time, but no position favoured
    assert unbiased.total_variation == pytest.approx(0.0)
