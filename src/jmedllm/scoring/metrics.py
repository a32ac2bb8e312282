"""The studies' metrics, one pure function each.

Text metrics (exact match, Gestalt score, Gestalt-based accuracy) compare the
generated answer with the *texts* of the choices, as Sukeda 2024 (JMedLLM-v1) and
Sukeda et al. 2024 (JMedLoRA) do; set metrics compare the extracted choice set
with the gold set; log-likelihood metrics rank the choices by model scores.

Light normalisation (``jmedllm.text.normalize_answer_text``), applied to both
sides of every text comparison: NFKC; strip; a leading letter label such as "c. ",
"c：", "(c) ", "c) " removed; surrounding quotes or brackets (「」『』""''()[]【】〈〉《》)
removed; trailing 。 / . / ! removed; runs of white space folded to one space;
lower case (so "Vitamin c" equals "vitamin C"; Japanese is unaffected).

Select-N answers: the response is split into parts at the separators 、 , ; and
newline (a comma between digits, as in "1,200", does not split).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from difflib import SequenceMatcher
from itertools import permutations
from typing import Iterable, Sequence

from jmedllm.schema import ContinuationScore
from jmedllm.text import ANSWER_SEPARATOR, normalize_answer_text, split_answer_parts


# ---------------------------------------------------------------------------
# exact match
# ---------------------------------------------------------------------------

def exact_match(response: str, gold_texts: Sequence[str]) -> bool:
    """The response equals the gold choice text(s) after light normalisation.

    One gold text: the whole normalised response equals it. Several (select-N):
    the response split into parts equals the gold texts in any order (as a set of
    distinct parts), or, for gold texts that themselves contain a separator, the
    normalised response equals the gold texts joined by a separator in some order.
    """
    if not gold_texts:
        raise ValueError("exact_match needs at least one gold text")
    gold = [normalize_answer_text(g) for g in gold_texts]
    whole = normalize_answer_text(response)
    if len(gold) == 1:
        return whole == gold[0]
    parts = split_answer_parts(response)
    if len(parts) == len(gold) and sorted(parts) == sorted(gold) and len(set(parts)) == len(parts):
        return True
    canon = _canonical_separators(whole)
    return any(canon == "、".join(_canonical_separators(g) for g in order) for order in permutations(gold))


def _canonical_separators(text: str) -> str:
    return ANSWER_SEPARATOR.sub("、", text)


# ---------------------------------------------------------------------------
# Gestalt (Ratcliff-Obershelp) similarity
# ---------------------------------------------------------------------------

def ratcliff_obershelp(a: str, b: str) -> float:
    """Symmetrised Ratcliff-Obershelp similarity in [0, 1].

    ``SequenceMatcher(None, a, b, autojunk=False).ratio()`` depends on argument order
    (its longest-match search breaks ties by position in ``a``), so the mean over both
    orders is taken. Two empty strings are identical (1.0).
    """
    if not a and not b:
        return 1.0
    ab = SequenceMatcher(None, a, b, autojunk=False).ratio()
    ba = SequenceMatcher(None, b, a, autojunk=False).ratio()
    return (ab + ba) / 2


_MAX_PERMUTED = 6


def gestalt_score(response: str, gold_texts: Sequence[str]) -> float:
    """Gestalt score of a response against the gold choice text(s), after light normalisation.

    One gold text: ``ratcliff_obershelp(response, gold)``. Several (select-N): the gold
    texts are joined with "、" in the order that suits the response best, and the
    response's separators are canonicalised to "、" too; the score is the similarity to
    that best-ordered join (the order of the answers does not matter, missing or extra
    answers lower it). Above six gold texts the given order is used.
    """
    if not gold_texts:
        raise ValueError("gestalt_score needs at least one gold text")
    resp = _canonical_separators(normalize_answer_text(response))
    gold = [_canonical_separators(normalize_answer_text(g)) for g in gold_texts]
    if len(gold) == 1:
        return ratcliff_obershelp(resp, gold[0])
    orders: Iterable[Sequence[str]] = permutations(gold) if len(gold) <= _MAX_PERMUTED else [gold]
    return max(ratcliff_obershelp(resp, "、".join(order)) for order in orders)


def choice_similarities(response: str, choices: Sequence[str], n_select: int = 1) -> list[float]:
    """Similarity of the response to each choice text (light-normalised).

    ``n_select`` <= 1: the whole response against each choice. Select-N: for each
    choice the best of the whole response and each of its parts, so that a response
    naming two choices is close to both.
    """
    resp = normalize_answer_text(response)
    texts = [normalize_answer_text(c) for c in choices]
    sims = [ratcliff_obershelp(resp, t) for t in texts]
    if n_select > 1:
        parts = split_answer_parts(response)
        for i, t in enumerate(texts):
            for p in parts:
                sims[i] = max(sims[i], ratcliff_obershelp(p, t))
    return sims


def top_n(scores: Sequence[float], n: int) -> frozenset[int]:
    """Indices of the ``n`` highest scores; ties go to the lower index (deterministic)."""
    if n < 1:
        raise ValueError(f"top_n needs n >= 1, got {n}")
    if n > len(scores):
        raise ValueError(f"cannot pick {n} of {len(scores)} choices")
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    return frozenset(order[:n])


def gestalt_choice(response: str, choices: Sequence[str], n_select: int) -> frozenset[int]:
    """The ``n_select`` choices closest to the response (Gestalt-based accuracy's prediction).

    N is the number of answers the question asks for, never the gold count. Ties go to
    the lower index; a response with no similarity to any choice (e.g. a bare letter
    "c") picks nothing, rather than choice a by the tie rule.
    """
    sims = choice_similarities(response, choices, n_select)
    if max(sims, default=0.0) == 0.0:
        return frozenset()
    return top_n(sims, max(n_select, 1))


# ---------------------------------------------------------------------------
# set metrics
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class SetScores:
    """All-or-nothing verdict plus partial credit of a predicted choice set."""

    correct: bool
    precision: float
    recall: float
    f1: float


def set_scores(predicted: frozenset[int], gold: frozenset[int]) -> SetScores:
    """Exact set match, and precision / recall / F1 of the predicted set.

    An empty prediction (unparsed) has precision, recall and F1 of 0 and is wrong.
    """
    if not gold:
        raise ValueError("set_scores needs a non-empty gold set")
    hit = len(predicted & gold)
    precision = hit / len(predicted) if predicted else 0.0
    recall = hit / len(gold)
    f1 = 2 * precision * recall / (precision + recall) if hit else 0.0
    return SetScores(predicted == gold, precision, recall, f1)


def best_set_scores(predicted: frozenset[int], accepted: Sequence[frozenset[int]]) -> SetScores:
    """``set_scores`` against the most favourable of several accepted gold sets
    (official exceptions such as "a or d"): correct if any matches, best F1 otherwise."""
    if not accepted:
        raise ValueError("best_set_scores needs at least one accepted set")
    scored = [set_scores(predicted, g) for g in accepted]
    return max(scored, key=lambda s: (s.correct, s.f1, s.precision))


# ---------------------------------------------------------------------------
# log-likelihood
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class LoglikPrediction:
    """Choices picked by summed log-probability (``acc``) and by log-probability per
    character (``acc_norm``), each the top ``n_select``."""

    predicted: frozenset[int]
    predicted_norm: frozenset[int]


def loglik_predict(
    scores: Sequence[ContinuationScore], n_select: int, *, lengths: Sequence[int] | None = None
) -> LoglikPrediction:
    """Rank choices by their continuation log-likelihoods.

    ``acc``: the top-N summed log-probabilities. ``acc_norm``: the top-N of log-probability
    divided by a length in characters: ``lengths[i]`` when given, else the scored
    continuation's ``n_chars``. lm-evaluation-harness's ``acc_norm`` divides by
    ``len(choice)``, the choice text *without* the target delimiter (" ") that precedes it in
    the scored continuation; to follow it, pass the choice texts' lengths as ``lengths``
    (``score_loglik`` does). For Japanese prompts the continuation has no delimiter and the
    two agree; for English ``n_chars`` is one more than ``len(choice)``, which can change
    the ranking. Characters, not bytes (lm-eval's documentation speaks of bytes, its code
    counts characters; for Japanese a byte count would triple every length without
    changing the idea). Ties go to the lower choice index.
    """
    if not scores:
        raise ValueError("loglik_predict needs one score per choice, got none")
    if lengths is not None and len(lengths) != len(scores):
        raise ValueError(f"loglik_predict: {len(lengths)} lengths for {len(scores)} choices")
    norms = list(lengths) if lengths is not None else [s.n_chars for s in scores]
    for i, s in enumerate(scores):
        if norms[i] <= 0:
            raise ValueError(f"choice {i}: length must be > 0 for length normalisation, got {norms[i]}")
        if math.isnan(s.logprob):
            raise ValueError(f"choice {i}: logprob is NaN")
    n = max(n_select, 1)
    raw = [s.logprob for s in scores]
    norm = [s.logprob / k for s, k in zip(scores, norms)]
    return LoglikPrediction(top_n(raw, n), top_n(norm, n))


def logsumexp(values: Sequence[float]) -> float:
    """log(sum(exp(v))) computed stably; -inf for no values or all -inf."""
    finite = [v for v in values if v != -math.inf]
    if not finite:
        return -math.inf
    m = max(finite)
    return m + math.log(sum(math.exp(v - m) for v in finite))


def letter_predict(variant_scores: Sequence[Sequence[ContinuationScore | float]], n_select: int) -> frozenset[int]:
    """Letter mode: each choice's label is scored in several spellings (a / A / ａ / Ａ /
    " a" / " A"); a choice's score is the logsumexp over its spellings (the probability
    of the model writing that label in any form); the top ``n_select`` win, ties to the
    lower index."""
    if not variant_scores:
        raise ValueError("letter_predict needs variant scores for each choice, got none")
    totals = []
    for i, variants in enumerate(variant_scores):
        if not variants:
            raise ValueError(f"choice {i}: no label variants scored")
        values = [v.logprob if isinstance(v, ContinuationScore) else float(v) for v in variants]
        if any(math.isnan(v) for v in values):
            raise ValueError(f"choice {i}: a variant logprob is NaN")
        totals.append(logsumexp(values))
    return top_n(totals, max(n_select, 1))


__all__ = [
    "LoglikPrediction",
    "SetScores",
    "best_set_scores",
    "choice_similarities",
    "exact_match",
    "gestalt_choice",
    "gestalt_score",
    "letter_predict",
    "loglik_predict",
    "logsumexp",
    "normalize_answer_text",
    "ratcliff_obershelp",
    "set_scores",
    "split_answer_parts",
    "top_n",
]
