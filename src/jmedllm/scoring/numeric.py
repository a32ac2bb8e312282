"""Numeric-answer items (no choices): the gold value and the comparison.

IgakuQA's numeric items are answered on a mark sheet, one digit per box, and the
question ends with the box template, e.g. ``解答：①.②`` or ``解答：1, ①②③ kcal``.
The gold string holds the digits of the boxes, so "04" under ``①.②`` means 0.4 and
"130" under ``1, ①②③`` means 1130. ``gold_value`` reads the template (when the
number of boxes equals the number of gold digits) and returns the value; without a
template the gold string is read as a number.

A prediction is correct when its value equals the gold value (``Decimal`` equality,
so "7.2" equals "7.20" and "0.40" equals "0.4"; a mark sheet with boxes ①.②③ is
filled the same way for both). Thousands separators and full-width digits are folded.
"""

from __future__ import annotations

import unicodedata
from decimal import Decimal

from jmedllm.scoring.extract import parse_number
from jmedllm.schema import Question

_CIRCLED = {chr(0x2460 + i) for i in range(20)}  # ① .. ⑳


def answer_template(question_text: str) -> str | None:
    """The box template after the last "解答：" as digits, "." and "#" for each box
    ("解答：1, ①②③ kcal" -> "1###"); None when there are no boxes."""
    pos = max(question_text.rfind("解答："), question_text.rfind("解答:"))
    if pos < 0:
        return None
    out = []
    for ch in question_text[pos + 3 :]:
        if ch in _CIRCLED:
            out.append("#")
        elif ch in ".．":
            out.append(".")
        elif ch in ",， 　":
            continue
        else:
            folded = unicodedata.normalize("NFKC", ch)
            if folded.isdigit() and len(folded) == 1:
                out.append(folded)
            else:
                break
    template = "".join(out).rstrip(".")
    return template if "#" in template else None


def gold_value(question: Question) -> Decimal:
    """The gold number of a numeric item, the box template applied when it fits."""
    if question.numeric_answer is None:
        raise ValueError(f"{question.id}: numeric item without numeric_answer")
    raw = unicodedata.normalize("NFKC", question.numeric_answer).strip()
    digits = [c for c in raw if c.isdigit()]
    template = answer_template(question.text)
    if template is not None and template.count("#") == len(digits):
        it = iter(digits)
        filled = "".join(next(it) if c == "#" else c for c in template)
        value = parse_number(filled)
    else:
        value = parse_number(raw)
    if value is None:
        raise ValueError(f"{question.id}: numeric_answer {question.numeric_answer!r} is not a number")
    return value


def numeric_correct(predicted: str | None, question: Question) -> bool:
    """Whether a predicted number (as written) equals the gold value; None / unparsable is wrong."""
    if predicted is None:
        return False
    value = parse_number(predicted)
    return value is not None and value == gold_value(question)
