"""Numeric answers: statements, a bare number, mark-sheet digits, the last number."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from jmedllm.scoring.extract.clean import SLOT, clean_output, cut_next_question, normalize_output
from jmedllm.scoring.extract.labels import CLOSE, OPEN
from jmedllm.scoring.extract.pattern import find_answer
from jmedllm.scoring.extract.types import NOTHING, Extraction
from jmedllm.text import nfkc

NUMBER = r"[-−]?\d+(?:,\d{3})*(?:\.\d+)?"
_KEY = r"(?:最終(?:的な)?)?(?:答え|解答|正解|回答|正答|答)|結論|\b(?:final\s+|correct\s+)?answer"
_STATEMENT = re.compile(
    rf"(?:{OPEN}[ \t]*)?(?:{_KEY})[ \t]*(?:{CLOSE})?\s*(?:は|:|=|is|→)?\s*(?:約|approximately\s+|about\s+)?({NUMBER})",
    re.IGNORECASE,
)
_BOXED = re.compile(rf"\\boxed\s*\{{\s*(?:約)?({NUMBER})[^{{}}\n]*\}}")
_NUMBER_ONLY = re.compile(rf"^\s*(?:約)?({NUMBER})\s*[^\d\s]{{0,12}}\s*[。.]?\s*$")


def _place_point(digits: str, decimals: int) -> str:
    if decimals <= 0 or decimals >= len(digits) + 1:
        return digits
    return digits[: len(digits) - decimals] + "." + digits[len(digits) - decimals:]


def _mark_sheet(text: str, digits: int, decimals: int) -> Extraction | None:
    """Digits written box by box: "① 2 ② 8" / "①2②8" (slot markers) or "2 8" after an answer
    keyword or alone; exactly ``digits`` single digits; the last such group wins."""
    slot_digit = rf"{SLOT}[ \t]*[:=]?[ \t]*(\d)[ \t]*[,、.]?[ \t]*"
    slotted = re.compile(rf"(?:{slot_digit}){{{digits}}}(?![ \t]*\d)")
    spaced = re.compile(
        rf"(?:(?:{OPEN}[ \t]*)?(?:{_KEY})[ \t]*(?:{CLOSE})?[ \t]*(?:は|:|=|is)?[ \t]*|^[ \t]*)"
        rf"((?<![\d.])\d(?:[ \t]+\d){{{digits - 1}}})(?![ \t]*[\d.])",
        re.IGNORECASE | re.MULTILINE,
    )
    best = None
    for m in slotted.finditer(text):
        joined = "".join(re.findall(r"\d", re.sub(SLOT, "", m.group(0))))
        best = (m.span(), m.group(0), joined)
    for m in spaced.finditer(text):
        if best is None or m.start(1) > best[0][0]:
            best = (m.span(1), m.group(1), re.sub(r"\s", "", m.group(1)))
    if best is None:
        return None
    span, matched, joined = best
    return Extraction(frozenset(), "mark_sheet", span, matched, number=_place_point(joined, decimals))


def _fit(number: str, digits: int | None, decimals: int) -> str:
    """A statement that wrote the box digits without the point ("040" for ①.②③) gets it."""
    if digits and decimals and number.isdigit() and len(number) == digits:
        return _place_point(number, decimals)
    return number


def extract_number(
    output: str,
    *,
    first_line_only: bool = False,
    answer_pattern: str | None = None,
    digits: int | None = None,
    decimals: int = 0,
) -> Extraction:
    """The number a generated answer gives.

    Order: the user's ``answer_pattern``; the last answer statement ("答え：1.2",
    "【回答】0.40", "Answer: 26", ``\\boxed{26}``); with ``digits`` (how many mark-sheet boxes
    the item's template has, ``decimals`` of them after its point), digits written box by
    box ("2 8", "①2 ②8"), when they stand later than any statement; an answer that is
    only a number (+ unit); else the last number in the text.
    """
    if digits is not None and digits < 1:
        raise ValueError(f"digits must be >= 1, got {digits}")
    if answer_pattern is not None:
        found = find_answer(output, answer_pattern, first_line_only=first_line_only)
        if found is not None:
            capture, span = found
            got = _number_in(normalize_output(capture), digits, decimals)
            if got is not None:
                return Extraction(frozenset(), "answer_pattern", span, nfkc(capture), number=got)
    text = clean_output(output, first_line_only=first_line_only, cut_next=False)
    cut = cut_next_question(text)
    if cut != text and (_STATEMENT.search(cut) or _NUMBER_ONLY.match(cut) or _BOXED.search(cut)):
        text = cut  # a base model answered, then wrote the next exam item
    best = None
    for rx in (_STATEMENT, _BOXED):
        for m in rx.finditer(text):
            if best is None or m.start(1) >= best.span[0]:
                best = Extraction(frozenset(), "answer_statement", m.span(1), m.group(1),
                                  number=_fit(m.group(1), digits, decimals))
    if digits and digits > 1:
        sheet = _mark_sheet(text, digits, decimals)
        if sheet is not None and (best is None or sheet.span[0] >= best.span[0]):
            return sheet
    if best:
        return best
    m = _NUMBER_ONLY.match(text)
    if m:
        return Extraction(frozenset(), "number_only", m.span(1), m.group(1), number=_fit(m.group(1), digits, decimals))
    last = None
    for m in re.finditer(rf"(?<![A-Za-z\d.]){NUMBER}", text):
        last = m
    if last:
        return Extraction(frozenset(), "last_number", last.span(), last.group(0), number=last.group(0))
    return NOTHING


def _number_in(capture: str, digits: int | None, decimals: int) -> str | None:
    if digits and digits > 1:
        sheet = _mark_sheet(capture, digits, decimals)
        if sheet is not None:
            return sheet.number
    m = re.search(rf"(?<![A-Za-z\d.]){NUMBER}", capture)
    return _fit(m.group(0), digits, decimals) if m else None


def parse_number(text: str) -> Decimal | None:
    """A number as written ("1,130", "０．４", "−2") to a Decimal; None when it is not one."""
    t = nfkc(text).strip().replace(",", "").replace("−", "-")
    try:
        return Decimal(t)
    except InvalidOperation:
        return None


def template_digits(template: str | None) -> tuple[int | None, int]:
    """How many mark-sheet boxes an answer template has, and how many follow its point:
    "①．②③ g/gCr" -> (3, 2), "①②" -> (2, 0); (None, 0) without slots."""
    if not template:
        return None, 0
    m = re.search(r"[①-⑨](?:\s*[.．]?\s*[①-⑨])*", template)
    if not m:
        return None, 0
    slots = m.group(0)
    n = sum(1 for c in slots if "①" <= c <= "⑨")
    point = re.search(r"[.．]", slots)
    decimals = sum(1 for c in slots[point.end():] if "①" <= c <= "⑨") if point else 0
    return n, decimals
