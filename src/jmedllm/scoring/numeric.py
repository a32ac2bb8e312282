"""Numeric-answer items (no choices): the gold value and the comparison.

The gold value is ``question.numeric_answer`` as the loader resolved it: IgakuQA's keys
give mark-sheet box digits ("04" under ``解答：①.②``), which the IgakuQA loader turns into
the value ("0.4"; ``jmedllm.benchmarks.igakuqa.numeric_gold``, the one place that reads
box templates; the raw key stays in ``meta["numeric_answer_raw"]``).

A prediction is correct when its value equals the gold value (``Decimal`` equality,
so "7.2" equals "7.20" and "0.40" equals "0.4"; a mark sheet with boxes ①.②③ is
filled the same way for both). Thousands separators and full-width digits are folded.
"""

from __future__ import annotations

import unicodedata
from decimal import Decimal

from jmedllm.scoring.extract import parse_number
from jmedllm.schema import Question


def gold_value(question: Question) -> Decimal:
    """The gold number of a numeric item."""
    if question.numeric_answer is None:
        raise ValueError(f"{question.id}: numeric item without numeric_answer")
    value = parse_number(unicodedata.normalize("NFKC", question.numeric_answer).strip())
    if value is None:
        raise ValueError(f"{question.id}: numeric_answer {question.numeric_answer!r} is not a number")
    return value


def numeric_correct(predicted: str | None, question: Question) -> bool:
    """Whether a predicted number (as written) equals the gold value; None / unparsable is wrong."""
    if predicted is None:
        return False
    value = parse_number(predicted)
    return value is not None and value == gold_value(question)
