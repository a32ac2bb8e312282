"""Uncertainty for benchmark scores: bootstrap intervals and paired comparisons.

Everything is seeded and vectorised with numpy. A column with few distinct values
(right/wrong, set F1, points) is resampled as multinomial counts over its distinct
values, which is the same distribution as drawing items with replacement; other
columns draw item indices in blocks of about 4 million values to bound memory.

- ``bootstrap_mean_ci``: percentile bootstrap interval of a mean (items resampled with
  replacement; the interval ends are the alpha/2 and 1-alpha/2 quantiles of the
  resampled means, numpy's default linear interpolation).
- ``bootstrap_sum_ci``: the same for a sum.
- ``exam_points_ci``: exam points, as the resampled share of available points earned
  times the section's maximum (never outside [0, maximum]).
- ``mcnemar``: paired comparison of two runs' right/wrong on the same items, with the
  exact two-sided binomial p-value for every discordant count (no chi-square
  approximation is used for p; the continuity-corrected chi-square statistic is
  reported beside it for readers who expect one).
- ``paired_bootstrap``: the difference of two runs' means on the same items, its
  percentile interval, and a two-sided p-value from the bootstrap distribution
  centred on the observed difference: p = (1 + #{|d* - d| >= |d|}) / (1 + B).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

DEFAULT_RESAMPLES = 5000
DEFAULT_CONFIDENCE = 0.95
_BLOCK_ELEMENTS = 4_000_000


def _rng(seed: int | np.random.SeedSequence | np.random.Generator) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _as_array(values: Sequence[float] | np.ndarray, name: str = "values") -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN")
    return arr


def bootstrap_statistics(
    columns: np.ndarray, n_resamples: int, rng: np.random.Generator, *, reduce: str = "mean"
) -> np.ndarray:
    """Resample rows of ``columns`` (n items x k metrics) ``n_resamples`` times.

    Returns an (n_resamples x k) array of the column means (or sums). All columns share
    the same resampled items, so metrics of one group stay coherent.
    """
    if columns.ndim == 1:
        columns = columns[:, None]
    n, k = columns.shape
    if n == 0:
        raise ValueError("cannot bootstrap zero items")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    out = np.empty((n_resamples, k))
    block = max(1, _BLOCK_ELEMENTS // (n * k))
    for start in range(0, n_resamples, block):
        stop = min(n_resamples, start + block)
        idx = rng.integers(0, n, size=(stop - start, n))
        sample = columns[idx]  # (b, n, k)
        out[start:stop] = sample.sum(axis=1) if reduce == "sum" else sample.mean(axis=1)
    return out


_MAX_DISTINCT_FOR_MULTINOMIAL = 64


def resample_statistic(
    values: np.ndarray, n_resamples: int, rng: np.random.Generator, *, reduce: str = "mean"
) -> np.ndarray:
    """``n_resamples`` bootstrap means (or sums) of one column of values.

    Drawing n items with replacement is the same as drawing multinomial counts over the
    distinct values (with probabilities their frequencies), so for columns with few
    distinct values (right/wrong, set F1) the counts are drawn directly: the same
    distribution at a cost independent of n. Otherwise item indices are drawn.
    """
    n = values.size
    if n == 0:
        raise ValueError("cannot bootstrap zero items")
    distinct, counts = np.unique(values, return_counts=True)
    if distinct.size > _MAX_DISTINCT_FOR_MULTINOMIAL:
        return bootstrap_statistics(values, n_resamples, rng, reduce=reduce)[:, 0]
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    draws = rng.multinomial(n, counts / n, size=n_resamples)  # (B, distinct)
    sums = draws @ distinct
    return sums if reduce == "sum" else sums / n


@dataclass(frozen=True)
class ConfidenceInterval:
    """A point estimate with its percentile bootstrap interval."""

    estimate: float
    low: float
    high: float
    n: int
    confidence: float
    n_resamples: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _percentiles(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    alpha = 1 - confidence
    low, high = np.quantile(samples, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def bootstrap_mean_ci(
    values: Sequence[float] | np.ndarray,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int | np.random.SeedSequence | np.random.Generator = 0,
) -> ConfidenceInterval:
    """Mean of ``values`` with a percentile bootstrap interval."""
    arr = _as_array(values)
    means = resample_statistic(arr, n_resamples, _rng(seed))
    low, high = _percentiles(means, confidence)
    return ConfidenceInterval(float(arr.mean()), low, high, int(arr.size), confidence, n_resamples)


def bootstrap_sum_ci(
    values: Sequence[float] | np.ndarray,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int | np.random.SeedSequence | np.random.Generator = 0,
) -> ConfidenceInterval:
    """Sum of ``values`` (e.g. points earned per item) with a percentile bootstrap interval."""
    arr = _as_array(values)
    sums = resample_statistic(arr, n_resamples, _rng(seed), reduce="sum")
    low, high = _percentiles(sums, confidence)
    return ConfidenceInterval(float(arr.sum()), low, high, int(arr.size), confidence, n_resamples)


def exam_points_ci(
    points: Sequence[int],
    correct: Sequence[bool],
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int | np.random.SeedSequence | np.random.Generator = 0,
) -> ConfidenceInterval:
    """Exam points earned (sum of ``points`` over correct items) with a bootstrap interval
    over items: how much the points would move on another draw of items like these.

    The statistic resampled is the *share* of the available points earned (a ratio
    estimator: points earned / points available on the same resampled items), scaled by the
    section's actual maximum, ``sum(points)``. Resampling the raw sum instead would let a
    draw heavy in 3-point items score above what the section can give (items 1, 3, 3, 1:
    maximum 8, but a draw of four 3-point items right sums to 12); the ratio keeps every
    end of the interval within [0, maximum] and weighs each item by its points, as the exam does.
    """
    if len(points) != len(correct):
        raise ValueError(f"points ({len(points)}) and correct ({len(correct)}) differ in length")
    worth = _as_array(points, "points")
    if (worth < 0).any():
        raise ValueError("points must be >= 0")
    earned = worth * np.asarray(correct, dtype=bool)
    maximum = float(worth.sum())  # 0: every share is 0, so is the interval
    sums = bootstrap_statistics(np.stack([earned, worth], axis=1), n_resamples, _rng(seed), reduce="sum")
    shares = np.divide(sums[:, 0], sums[:, 1], out=np.zeros(len(sums)), where=sums[:, 1] > 0)
    low, high = _percentiles(shares * maximum, confidence)
    return ConfidenceInterval(float(earned.sum()), low, high, int(worth.size), confidence, n_resamples)


# ---------------------------------------------------------------------------
# paired comparisons
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class McNemarResult:
    """``b``: items run A got right and run B wrong; ``c``: A wrong, B right."""

    b: int
    c: int
    p_value: float
    chi2_corrected: float
    method: str = "exact binomial, two-sided"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def exact_binomial_two_sided(b: int, c: int) -> float:
    """Two-sided exact p of b successes in b + c fair coin flips: twice the smaller tail, capped at 1.

    p = min(1, 2 * sum_{k <= min(b, c)} C(b + c, k) / 2^(b + c)), in integer arithmetic.
    """
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2**n)


def mcnemar(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> McNemarResult:
    """McNemar's test on two runs' right/wrong verdicts for the same items (same order)."""
    if len(a_correct) != len(b_correct):
        raise ValueError(f"runs differ in length: {len(a_correct)} vs {len(b_correct)} items")
    a = np.asarray(a_correct, dtype=bool)
    bb = np.asarray(b_correct, dtype=bool)
    b = int(np.sum(a & ~bb))
    c = int(np.sum(~a & bb))
    chi2 = (abs(b - c) - 1) ** 2 / (b + c) if b + c else 0.0
    return McNemarResult(b, c, exact_binomial_two_sided(b, c), float(chi2))


@dataclass(frozen=True)
class PairedBootstrapResult:
    """``difference`` = mean(B) - mean(A) with its percentile interval and two-sided p."""

    mean_a: float
    mean_b: float
    difference: float
    low: float
    high: float
    p_value: float
    n: int
    confidence: float
    n_resamples: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def paired_bootstrap(
    a_values: Sequence[float],
    b_values: Sequence[float],
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int | np.random.SeedSequence | np.random.Generator = 0,
) -> PairedBootstrapResult:
    """Paired bootstrap of mean(B) - mean(A) over the same items (resampled together)."""
    a = _as_array(a_values, "a_values")
    b = _as_array(b_values, "b_values")
    if a.size != b.size:
        raise ValueError(f"runs differ in length: {a.size} vs {b.size} items")
    d = b - a
    observed = float(d.mean())
    diffs = resample_statistic(d, n_resamples, _rng(seed))
    low, high = _percentiles(diffs, confidence)
    extreme = int(np.sum(np.abs(diffs - observed) >= abs(observed) - 1e-12))
    p = (1 + extreme) / (1 + n_resamples)
    return PairedBootstrapResult(
        float(a.mean()), float(b.mean()), observed, low, high, min(1.0, p), int(d.size), confidence, n_resamples
    )


__all__ = [
    "DEFAULT_CONFIDENCE",
    "DEFAULT_RESAMPLES",
    "ConfidenceInterval",
    "McNemarResult",
    "PairedBootstrapResult",
    "bootstrap_mean_ci",
    "bootstrap_statistics",
    "bootstrap_sum_ci",
    "resample_statistic",
    "exact_binomial_two_sided",
    "exam_points_ci",
    "mcnemar",
    "paired_bootstrap",
]
