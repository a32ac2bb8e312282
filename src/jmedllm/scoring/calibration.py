"""Calibration and answer-position statistics: pure functions over numbers (no model, no I/O).

- ``choice_confidence``: a log-likelihood run's confidence in its answer, the softmax of the
  per-choice log-probabilities (letter mode: each choice's spellings are first combined with
  log-sum-exp, as ``score_letter`` does), taken at the chosen (arg-max) choice.
- ``reliability``: equal-width confidence bins; bin i holds confidences in [i/B, (i+1)/B)
  (the last bin also holds 1.0), with each bin's mean confidence and accuracy.
- ``expected_calibration_error``: ECE = sum over bins of (n_bin / N) * |accuracy_bin -
  confidence_bin| (Guo et al. 2017, equal-width bins).
- ``letter_distribution`` / ``position_bias``: how often each answer position (a, b, c, ...)
  is chosen against how often it is the gold answer; the bias is the total variation
  distance between the two shares, 0.5 * sum |predicted share - gold share| (0: the model
  picks positions as often as they are right; 1: never where the answers are).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

from jmedllm.schema import LETTERS


def _logsumexp(values: Sequence[float]) -> float:
    m = max(values)
    if m == -math.inf:
        return -math.inf
    return m + math.log(sum(math.exp(v - m) for v in values))


def softmax(logprobs: Sequence[float]) -> list[float]:
    """Normalised probabilities from log-probabilities (or any log-scores)."""
    if not logprobs:
        raise ValueError("softmax of no values")
    z = _logsumexp(logprobs)
    if z == -math.inf:
        return [1.0 / len(logprobs)] * len(logprobs)
    return [math.exp(v - z) for v in logprobs]


def choice_confidence(groups: Sequence[Sequence[float]]) -> tuple[int, float]:
    """(chosen index, its probability) from per-choice log-probabilities.

    ``groups[i]`` holds the log-probabilities of choice i's spellings (one value in
    log-likelihood mode, several in letter mode, combined by log-sum-exp). Ties go to the
    first choice, as ``loglik_predict`` does.
    """
    if not groups or any(not g for g in groups):
        raise ValueError("every choice needs at least one log-probability")
    combined = [g[0] if len(g) == 1 else _logsumexp(list(g)) for g in groups]
    best = max(range(len(combined)), key=lambda i: (combined[i], -i))
    z = _logsumexp(combined)
    if z == -math.inf:
        return best, 1.0 / len(combined)
    return best, math.exp(combined[best] - z)


@dataclass(frozen=True)
class Bin:
    low: float
    high: float
    n: int
    confidence: float | None  # mean confidence of the bin's items (None when empty)
    accuracy: float | None


def reliability(confidences: Sequence[float], correct: Sequence[bool], n_bins: int = 10) -> list[Bin]:
    """Equal-width reliability bins over [0, 1]."""
    if len(confidences) != len(correct):
        raise ValueError(f"{len(confidences)} confidences for {len(correct)} verdicts")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    sums = [[0, 0.0, 0] for _ in range(n_bins)]  # n, confidence sum, correct count
    for c, ok in zip(confidences, correct):
        if not 0.0 <= c <= 1.0 or math.isnan(c):
            raise ValueError(f"confidence {c} outside [0, 1]")
        i = min(int(c * n_bins), n_bins - 1)
        sums[i][0] += 1
        sums[i][1] += c
        sums[i][2] += bool(ok)
    out = []
    for i, (n, csum, k) in enumerate(sums):
        out.append(Bin(i / n_bins, (i + 1) / n_bins, n, csum / n if n else None, k / n if n else None))
    return out


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], n_bins: int = 10) -> float:
    """ECE with equal-width bins: sum_b (n_b / N) |acc_b - conf_b|."""
    bins = reliability(confidences, correct, n_bins)
    total = sum(b.n for b in bins)
    if total == 0:
        raise ValueError("ECE of no items")
    return sum(b.n / total * abs(b.accuracy - b.confidence) for b in bins if b.n)


def letter_distribution(chosen: Iterable[int], n_positions: int) -> list[int]:
    """Counts of each answer position (index 0 = 'a') among ``chosen`` indices."""
    counts = [0] * n_positions
    for i in chosen:
        if not 0 <= i < n_positions:
            raise ValueError(f"position {i} outside 0..{n_positions - 1}")
        counts[i] += 1
    return counts


@dataclass(frozen=True)
class PositionBias:
    letters: str
    predicted: tuple[int, ...]  # how often each position was chosen
    gold: tuple[int, ...]  # how often each position was the answer
    total_variation: float  # 0.5 * sum |p_share - g_share|
    most_chosen: str  # the letter chosen most often
    most_chosen_share: float


def position_bias(predicted: Sequence[int], gold: Sequence[int], n_positions: int) -> PositionBias:
    """Predicted vs gold answer positions over single-answer items (same items, same order)."""
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predictions for {len(gold)} gold answers")
    if not predicted:
        raise ValueError("position bias of no items")
    p = letter_distribution(predicted, n_positions)
    g = letter_distribution(gold, n_positions)
    n = len(predicted)
    tv = 0.5 * sum(abs(a / n - b / n) for a, b in zip(p, g))
    top = max(range(n_positions), key=lambda i: (p[i], -i))
    return PositionBias(LETTERS[:n_positions], tuple(p), tuple(g), tv, LETTERS[top], p[top] / n)


__all__ = ["Bin", "PositionBias", "choice_confidence", "expected_calibration_error", "letter_distribution",
           "position_bias", "reliability", "softmax"]
