"""Repeated sampling (``--samples K``): the majority vote over an item's samples and the two
accuracies a sampled run reports, mean accuracy over samples and majority-vote accuracy, each
with a bootstrap interval over items. Pure: verdicts in, numbers out."""

from __future__ import annotations

from typing import Any, Sequence

from jmedllm.scoring.stats import bootstrap_mean_ci


def vote_key(verdict: Any) -> tuple | None:
    """What a sample answered (choice set, or numeric value); None when it gave no answer."""
    if verdict.numeric_predicted is not None:
        return ("numeric", verdict.numeric_predicted)
    if verdict.predicted:
        return ("choices", tuple(sorted(verdict.predicted)))
    return None


def majority_index(verdicts: Sequence[Any]) -> int:
    """Index of the sample whose answer most samples gave (ties: the answer given first); samples
    without an answer do not vote; no answer at all: sample 0."""
    counts: dict[tuple, list[int]] = {}
    for i, v in enumerate(verdicts):
        key = vote_key(v)
        if key is not None:
            counts.setdefault(key, []).append(i)
    if not counts:
        return 0
    best = max(counts.values(), key=lambda idx: (len(idx), -idx[0]))
    return best[0]


def _ci(values: Sequence[float], seed: int, n_resamples: int) -> dict[str, float]:
    ci = bootstrap_mean_ci(values, n_resamples=n_resamples, seed=seed)
    return {"mean": ci.estimate, "low": ci.low, "high": ci.high, "n": ci.n}


def samples_summary(per_item: Sequence[Sequence[Any]], *, seed: int, n_resamples: int, temperature: float) -> dict:
    """``per_item``: each item's sample verdicts. Mean accuracy averages each item's share of
    correct samples; majority-vote accuracy scores each item's majority answer."""
    if not per_item:
        raise ValueError("no sampled items")
    mean_correct = [sum(v.correct for v in vs) / len(vs) for vs in per_item]
    majority = [float(vs[majority_index(vs)].correct) for vs in per_item]
    return {"k": len(per_item[0]), "temperature": temperature,
            "mean_accuracy": _ci(mean_correct, seed, n_resamples),
            "majority_vote_accuracy": _ci(majority, seed, n_resamples)}


__all__ = ["majority_index", "samples_summary", "vote_key"]
