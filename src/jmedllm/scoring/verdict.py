"""Item verdicts: one question + one model output -> every metric for that item.

Three ways to get an answer from a model, one function each:

- ``score_generation``: free text. The chosen set comes from answer extraction; the
  text metrics (exact match, Gestalt score, Gestalt-based choice) compare the cleaned
  response (think blocks removed, a follow-on question cut, the first line only in
  compatibility mode) with the choice texts.
- ``score_loglik``: the log-likelihood of each choice text as a continuation.
- ``score_letter``: the log-likelihood of each choice label in several spellings.

Official scoring exceptions (IgakuQA: 116A71 counted correct for all, 112B30 "a or d",
119E28 "a or c") apply to the choice verdicts (``correct``, ``correct_norm``,
``gestalt_correct``, points) and, for "accept any", to set and text metrics, which are
taken against the most favourable accepted answer. Exact match and the Gestalt score
stay text similarities to the gold text even for an "all correct" item.
``None`` means "not applicable" (e.g. no exact match for log-likelihood scoring);
aggregation averages each metric over the items where it applies.

Select-all questions (``selection="all"``): ``correct`` is the exact set (every gold
choice and nothing else), with set precision / recall / F1 beside it; the Gestalt-based
choice is not applicable (it needs a number of choices to pick). Ordering questions
(``selection="order"``): ``correct`` is the exact sequence (``predicted_order`` equals
``answer_order``); the set metrics say how many of the right choices were named at all;
exact match and the Gestalt-based choice are not applicable. Log-likelihood and letter
scoring rank choices one at a time and cannot express either: such items are not
applicable in those modes (the runner lists them, as it does numeric items).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from jmedllm.schema import LETTERS, ContinuationScore, Question
from jmedllm.scoring import exam as exam_rules
from jmedllm.scoring.extract import clean_output, extract_choices, extract_number, template_digits
from jmedllm.scoring.metrics import (
    best_set_scores,
    exact_match,
    gestalt_choice,
    gestalt_score,
    letter_predict,
    loglik_predict,
)
from jmedllm.scoring.numeric import gold_value, numeric_correct

GENERATION = "generation"
LOGLIK = "loglik"
LETTER = "letter"


@dataclass(frozen=True)
class ItemVerdict:
    """Everything scoring says about one item; ``to_dict`` / ``from_dict`` round-trip through JSON."""

    question_id: str
    mode: str  # "generation" | "loglik" | "letter"
    predicted: frozenset[int]  # chosen choice indices; empty when unparsed or numeric
    parsed: bool
    method: str  # extraction step ("answer_statement", …, "unparsed"), "loglik" or "letter_logsumexp"
    correct: bool
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    exact_match: bool | None = None
    gestalt: float | None = None
    gestalt_predicted: frozenset[int] | None = None
    gestalt_correct: bool | None = None
    predicted_norm: frozenset[int] | None = None  # loglik: top-N by log-probability per character
    correct_norm: bool | None = None
    numeric_predicted: str | None = None
    kinki_selected: bool | None = None  # None: no kinki metadata
    points: int | None = None  # points earned (exam items only)
    points_possible: int | None = None
    exception: str | None = None  # official scoring exception applied ("all_correct" / "accept_any")
    span: tuple[int, int] | None = None  # extraction match in nfkc(output)
    predicted_order: tuple[int, ...] | None = None  # ordering questions: the choices in the order written
    matched: str | None = None
    first_line_only: bool = False

    @property
    def predicted_letters(self) -> str:
        return "".join(LETTERS[i] for i in sorted(self.predicted))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: sets as sorted lists, the span as a list, plus ``predicted_letters``."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, frozenset):
                value = sorted(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        out["predicted_letters"] = self.predicted_letters
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ItemVerdict":
        """Inverse of ``to_dict`` (``predicted_letters`` is derived and ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names - {"predicted_letters"}
        if unknown:
            raise ValueError(f"ItemVerdict: unknown fields {sorted(unknown)}")
        missing = {"question_id", "mode", "predicted", "parsed", "method", "correct"} - set(data)
        if missing:
            raise ValueError(f"ItemVerdict: missing fields {sorted(missing)}")
        kwargs = {k: v for k, v in data.items() if k in names}
        for key in ("predicted", "gestalt_predicted", "predicted_norm"):
            if kwargs.get(key) is not None:
                kwargs[key] = frozenset(kwargs[key])
        for key in ("span", "predicted_order"):
            if kwargs.get(key) is not None:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)


def _exam_fields(question: Question, predicted: frozenset[int], correct: bool) -> dict[str, Any]:
    """Points and forbidden-choice selection for exam items (empty for other benchmarks)."""
    fields: dict[str, Any] = {"kinki_selected": exam_rules.selects_kinki(question, predicted)}
    if exam_rules.is_exam_item(question):
        possible = exam_rules.points_of(question)
        fields["points_possible"] = possible
        fields["points"] = possible if correct else 0
    return fields


def _exception_name(question: Question) -> str | None:
    exc = exam_rules.official_exception(question)
    return exc.rule if exc else None


def _texts(question: Question, indices: frozenset[int]) -> list[str]:
    return [question.choices[i] for i in sorted(indices)]


def score_generation(
    question: Question, output_text: str, *, first_line_only: bool = False, answer_pattern: str | None = None
) -> ItemVerdict:
    """Score a generated answer with every generation metric.

    ``answer_pattern``: a user regex with a named group ``answer`` tried before the built-in
    extraction; without it, the question's own ``meta["answer_pattern"]`` (from a custom
    mapping) is used. The question's ``selection`` and, for numeric items, the digit boxes
    of its ``meta["answer_template"]`` go to the extractor.
    """
    if answer_pattern is None:
        answer_pattern = question.meta.get("answer_pattern") or None
    response = clean_output(output_text, first_line_only=first_line_only).strip()
    if question.is_numeric:
        return _score_numeric(question, output_text, response, first_line_only, answer_pattern)
    n_select = _n_select(question)
    accepted = exam_rules.accepted_answer_sets(question)
    for_all = exam_rules.is_counted_correct_for_all(question)
    found = extract_choices(output_text, question.choices, n_select, first_line_only=first_line_only,
                            answer_pattern=answer_pattern, selection=question.selection)
    sets = best_set_scores(found.indices, accepted)
    correct = sets.correct or for_all
    predicted_order = None
    if question.selection == "order":
        predicted_order = tuple(found.order)
        correct = predicted_order == question.answer_order or for_all
    g_pred: frozenset[int] | None
    exact: bool | None
    if response:
        g_pred = gestalt_choice(response, question.choices, n_select) if question.selection == "n" else None
        exact = (any(exact_match(response, _texts(question, s)) for s in accepted)
                 if question.selection != "order" else None)
        gestalt = max(gestalt_score(response, _texts(question, s)) for s in accepted)
    else:  # nothing written: no text is close to anything
        g_pred = frozenset() if question.selection == "n" else None
        exact = False if question.selection != "order" else None
        gestalt = 0.0
    return ItemVerdict(
        question_id=question.id,
        mode=GENERATION,
        predicted=found.indices,
        parsed=found.parsed,
        method=found.method,
        correct=correct,
        precision=sets.precision,
        recall=sets.recall,
        f1=sets.f1,
        exact_match=exact,
        gestalt=gestalt,
        gestalt_predicted=g_pred,
        gestalt_correct=None if g_pred is None else (g_pred in accepted) or for_all,
        exception=_exception_name(question),
        span=found.span,
        predicted_order=predicted_order,
        matched=found.matched,
        first_line_only=first_line_only,
        **_exam_fields(question, found.indices, correct),
    )


def _score_numeric(
    question: Question, output_text: str, response: str, first_line_only: bool, answer_pattern: str | None
) -> ItemVerdict:
    """Numeric items: correct when the extracted number equals the gold value; exact match
    when the whole response is that number (with at most a unit); Gestalt score against the
    gold value as written by ``str(Decimal)``."""
    digits, decimals = template_digits(question.meta.get("answer_template"))
    found = extract_number(output_text, first_line_only=first_line_only, answer_pattern=answer_pattern,
                           digits=digits, decimals=decimals)
    correct = numeric_correct(found.number, question) or exam_rules.is_counted_correct_for_all(question)
    gold = str(gold_value(question))
    return ItemVerdict(
        question_id=question.id,
        mode=GENERATION,
        predicted=frozenset(),
        parsed=found.parsed,
        method=found.method,
        correct=correct,
        exact_match=found.method == "number_only" and numeric_correct(found.number, question),
        gestalt=gestalt_score(response, [gold]) if response else 0.0,
        numeric_predicted=found.number,
        exception=_exception_name(question),
        span=found.span,
        matched=found.matched,
        first_line_only=first_line_only,
        **_exam_fields(question, frozenset(), correct),
    )


def _n_select(question: Question) -> int:
    """How many choices to pick: the question's ``n_select`` (0 for a choice item reads as 1)."""
    n_select = max(question.n_select, 1)
    if n_select > len(question.choices):
        raise ValueError(f"{question.id}: asks for {n_select} of {len(question.choices)} choices")
    return n_select


def _require_choices(question: Question, n_scores: int, what: str) -> int:
    if question.is_numeric:
        raise ValueError(f"{question.id}: numeric item cannot be scored by {what}")
    if question.selection != "n":
        raise ValueError(f"{question.id}: a {'select-all' if question.selection == 'all' else 'ordering'} "
                         f"question cannot be scored by {what} (not applicable; use generation)")
    if n_scores != len(question.choices):
        raise ValueError(f"{question.id}: {n_scores} {what} scores for {len(question.choices)} choices")
    return _n_select(question)


def score_loglik(question: Question, choice_scores: Sequence[ContinuationScore]) -> ItemVerdict:
    """Score by the log-likelihood of each choice text: ``correct`` is accuracy (top-N summed
    log-probability), ``correct_norm`` the length-normalised accuracy as lm-evaluation-harness
    defines it: log-probability per character of the choice text, without the space that
    precedes it in an English continuation."""
    n_select = _require_choices(question, len(choice_scores), "log-likelihood")
    pred = loglik_predict(choice_scores, n_select, lengths=[len(c) for c in question.choices])
    accepted = exam_rules.accepted_answer_sets(question)
    for_all = exam_rules.is_counted_correct_for_all(question)
    sets = best_set_scores(pred.predicted, accepted)
    correct = sets.correct or for_all
    return ItemVerdict(
        question_id=question.id,
        mode=LOGLIK,
        predicted=pred.predicted,
        parsed=True,
        method="loglik",
        correct=correct,
        precision=sets.precision,
        recall=sets.recall,
        f1=sets.f1,
        predicted_norm=pred.predicted_norm,
        correct_norm=(pred.predicted_norm in accepted) or for_all,
        exception=_exception_name(question),
        **_exam_fields(question, pred.predicted, correct),
    )


def score_letter(
    question: Question, variant_scores: Sequence[Sequence[ContinuationScore | float]]
) -> ItemVerdict:
    """Score by the log-likelihood of each choice's label (logsumexp over its spellings)."""
    n_select = _require_choices(question, len(variant_scores), "letter")
    predicted = letter_predict(variant_scores, n_select)
    accepted = exam_rules.accepted_answer_sets(question)
    for_all = exam_rules.is_counted_correct_for_all(question)
    sets = best_set_scores(predicted, accepted)
    correct = sets.correct or for_all
    return ItemVerdict(
        question_id=question.id,
        mode=LETTER,
        predicted=predicted,
        parsed=True,
        method="letter_logsumexp",
        correct=correct,
        precision=sets.precision,
        recall=sets.recall,
        f1=sets.f1,
        exception=_exception_name(question),
        **_exam_fields(question, predicted, correct),
    )


__all__ = ["GENERATION", "LETTER", "LOGLIK", "ItemVerdict", "score_generation", "score_letter", "score_loglik"]
