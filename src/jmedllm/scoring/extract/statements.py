"""Explicit answer statements, wherever they stand; the last one in the text wins.

Forms (Japanese and English, any bracket pair or markdown around the keyword):

- keyword then labels: "答え：c", "正解は a と e", "【回答】a, c", "［答］ a", "〔解答〕c",
  "**答え**: c", "### 回答" then "c" on the next line, "最終解答：c", "結論：c",
  "正しいのは c", "Answer: (C)", "Final Answer:\\n\\nC", "Therefore, the answer is B",
  "My answer: b", "The correct options are A and C", "I would choose B";
- labels then keyword: "c が正解", "eが答えです", "(C) is the correct answer";
- LaTeX: ``\\boxed{c}``, ``\\boxed{\\text{A}}``, ``\\boxed{C. Vitamin C}``.

A statement whose labels are followed by a negation ("答えは a ではなく") is no statement.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Sequence

from jmedllm.scoring.extract.labels import CLOSE, OPEN, list_re, parse_list, parse_whole_list
from jmedllm.scoring.extract.types import Extraction, picked
from jmedllm.text import normalize_answer_text

_JA_KEY = r"(?:最終(?:的な)?)?(?:答え|解答|正解|回答|正答|答)|結論|最終選択"
_EN_KEY = (
    r"\b(?:(?:my|the|final|correct|best|right|most\s+likely|true|appropriate|single)\s+){0,3}"
    r"(?:answer|ans\.?|option|choice|selection)s?(?:\s+choice)?(?:\s+(?:here|then|therefore|thus))?"
)
_COLON_GAP = r":[ \t]*(?:\n[ \t]*){0,3}"  # "Answer:" then the labels on the same or a later line
_STATEMENT_PREFIX = (
    # Japanese: 答え：c / 正解は c / 【回答】a / 最終的な答えは「c」 / 正しいのは c と e
    rf"(?:{OPEN}[ \t]*)?(?:{_JA_KEY})[ \t]*(?:{CLOSE})?[ \t]*(?:{_COLON_GAP}|は|=|→|-)?[ \t]*[、,]?[ \t]*(?:選択肢)?[ \t]*"
    r"|のは[ \t]*[、,]?[ \t]*(?:選択肢)?[ \t]*"
    # English: Answer: (C) / The correct answer is C / answers are a and c / Final Answer:\n\nC
    rf"|{OPEN}[ \t]*{_EN_KEY}[ \t]*{CLOSE}[ \t]*(?:{_COLON_GAP}|-[ \t]*)?"
    rf"|(?:{OPEN}[ \t]*)?{_EN_KEY}[ \t]*(?:{CLOSE})?[ \t]*"
    rf"(?:(?:is|are|would\s+be|will\s+be|should\s+be|must\s+be|remains)[ \t]*(?:{_COLON_GAP})?|{_COLON_GAP}|=[ \t]*|-[ \t]*|→[ \t]*)"
    r"(?:both[ \t]+)?"
    r"(?:(?:most\s+|very\s+)?(?:probably|likely|definitely|clearly|therefore|thus|then)[ \t]+)?"
    r"(?:(?:option|choice|answer)s?[ \t]*:?[ \t]*)?"
    r"|\bI\s+(?:would\s+|will\s+|'d\s+)?(?:choose|select|pick|go\s+with)\s+(?:(?:option|choice)s?\s+)?"
)
# a heading line holding only the keyword ("### 回答", "【解答】", "Final Answer"), the labels below it
_HEADING_PREFIX = (
    rf"^[ \t]*(?:{OPEN}[ \t]*)?(?:{_JA_KEY}|{_EN_KEY})[ \t]*(?:{CLOSE})?[ \t]*:?[ \t]*\n(?:[ \t]*\n){{0,2}}[ \t]*"
)


@lru_cache(maxsize=None)
def _statement_re(n_choices: int) -> re.Pattern[str]:
    return re.compile(rf"(?:{_STATEMENT_PREFIX})({list_re(n_choices)})", re.IGNORECASE)


@lru_cache(maxsize=None)
def _heading_re(n_choices: int) -> re.Pattern[str]:
    return re.compile(rf"{_HEADING_PREFIX}({list_re(n_choices)})", re.IGNORECASE | re.MULTILINE)


@lru_cache(maxsize=None)
def _post_statement_re(n_choices: int) -> re.Pattern[str]:
    # labels first, then the keyword: "cが正解", "e が答えです", "(C) is the correct answer"
    return re.compile(
        rf"(?<![A-Za-z0-9ァ-ヶー一-龯])({list_re(n_choices)})[ \t]*(?:が|を)?[ \t]*"
        r"(?=(?:最終的な)?(?:正解|答え|正答|解答)(?!\S{0,6}?(?:ではな|でな|とは言え|とは限ら|じゃな))"
        r"|is\s+(?:the\s+|my\s+)?(?:final\s+|correct\s+|best\s+|right\s+)*(?:answer|option|choice)\b(?!\s+(?:is|to|for|of)\b))",
        re.IGNORECASE,
    )


@lru_cache(maxsize=None)
def _boxed_re() -> re.Pattern[str]:
    return re.compile(r"\\boxed\s*\{\s*([^{}]*?)\s*\}")


def _boxed(text: str, n_choices: int) -> list[Extraction]:
    out = []
    for m in _boxed_re().finditer(text):
        inner = m.group(1)
        start = m.start(1)
        whole = parse_whole_list(inner, n_choices)
        if whole:
            order, (s, e) = whole
            out.append(picked(order, "answer_statement", (start + s, start + e), inner[s:e]))
            continue
        lead = re.match(rf"\s*({list_re(n_choices)})", inner)
        if lead:
            got = parse_list(inner, lead.start(1), lead.end(1), n_choices, strict_end=True)
            if got:
                out.append(picked(got, "answer_statement", (start + lead.start(1), start + lead.end(1)), lead.group(1)))
    return out


def statements(text: str, n_choices: int) -> list[Extraction]:
    """Every explicit answer statement whose label list passes the guards, in text order."""
    found: list[Extraction] = []
    for rx in (_statement_re(n_choices), _heading_re(n_choices), _post_statement_re(n_choices)):
        for m in rx.finditer(text):
            got = parse_list(text, m.start(1), m.end(1), n_choices)
            if got:
                found.append(picked(got, "answer_statement", m.span(1), m.group(1)))
    found.extend(_boxed(text, n_choices))
    found.sort(key=lambda e: e.span[0] if e.span else -1)
    return found


_KEYWORD_ONLY = re.compile(
    rf"(?:{OPEN}[ \t]*)?(?:{_JA_KEY})[ \t]*(?:{CLOSE})?[ \t]*(?:は|:|=)"
    rf"|{_EN_KEY}[ \t]*(?:{CLOSE})?\s*(?:is|are|would\s+be|will\s+be|should\s+be|:)",
    re.IGNORECASE,
)


_POINTER = re.compile(r"[ \t]*(?:以下|次の|次に|下記|後述|as\s+follows|the\s+following|below)", re.IGNORECASE)


def has_answer_keyword(text: str) -> bool:
    """The text states an answer ("答え：", "The answer is") that cannot be read: something
    follows the keyword on its line, and it is not a pointer to what comes later ("以下の通り",
    "as follows"). Then the reasoning fallbacks must not guess instead."""
    for m in _KEYWORD_ONLY.finditer(text):
        rest = text[m.end(): text.find("\n", m.end()) if "\n" in text[m.end():] else len(text)]
        if rest.strip() and not _POINTER.match(rest):
            return True
    return False


def pick_answer_statement(text: str, n_choices: int) -> Extraction | None:
    """The last explicit answer statement."""
    found = statements(text, n_choices)
    return found[-1] if found else None


_REJECTION = re.compile(
    r"[ \t]*(?:(?:は|is\b|are\b)[^。.\n]*?(?:誤|不適|不正解|ではな|でな|ない|否定|除外|incorrect|wrong|\bnot\b|unlikely|false|n't)"
    r"|[:.)\-][ \t]*(?:誤り|誤|不正解|不適|×|✗|incorrect|wrong|false|not\b|unlikely))",
    re.IGNORECASE,
)


_CLAUSE_NEGATION = re.compile(
    r"できない|しない|ではな|でな[いく]|じゃな|誤[りっ]|不適|不正解|禁忌|否定|除外|考えにく"
    r"|\b(?:incorrect|wrong|not|unlikely|false|excluded|ruled\s+out)\b|n't\b",
    re.IGNORECASE,
)


def rejected(after: str, choices: Sequence[str] = ()) -> bool:
    """What follows a label rejects it: "(e) は使用できない", "(e) グルココルチコイドは使用できない",
    "a: 誤り", "B is incorrect". The label's own choice text (which may hold a negation:
    "e. 治療は必要ない") is no rejection."""
    if _REJECTION.match(after):
        return True
    clause = re.split(r"[。\n]|\.(?:\s|$)", after, maxsplit=1)[0]
    plain = normalize_answer_text(clause)
    if any(plain.startswith(normalize_answer_text(c)) for c in choices if normalize_answer_text(c)):
        return False
    return bool(re.match(r"[ \t]*[^\x00-\x7F]", clause) and _CLAUSE_NEGATION.search(clause))


def pick_label_only(text: str, n_choices: int) -> Extraction | None:
    """The whole answer is a label list: "c", "（c）", "a, c", "ac", "a と c", "c → a → e"."""
    whole = parse_whole_list(text, n_choices)
    if not whole:
        return None
    order, span = whole
    return picked(order, "label_only", span, text[span[0]:span[1]])


@lru_cache(maxsize=None)
def _final_label_re(n_choices: int) -> re.Pattern[str]:
    return re.compile(
        rf"(?:\b(?:is|are|be)\s+(?:(?:option|choice)s?\s+)?|[:=→]\s*|は\s*)({list_re(n_choices)})[ \t]*[.。!]?[ \t]*$",
        re.IGNORECASE,
    )


def pick_final_label(text: str, n_choices: int) -> Extraction | None:
    """The last non-empty line ends with a label after "is" / ":" / "は":
    "Therefore, the least likely diagnosis is E."."""
    lines = list(re.finditer(r"^.*\S.*$", text, re.MULTILINE))
    if not lines:
        return None
    line = lines[-1]
    m = _final_label_re(n_choices).search(text, line.start(), line.end())
    if not m:
        return None
    got = parse_list(text, m.start(1), m.end(1), n_choices)
    return picked(got, "final_label", m.span(1), m.group(1)) if got else None


@lru_cache(maxsize=None)
def _leading_re(n_choices: int) -> re.Pattern[str]:
    # used with .match(text, pos): anchored at pos
    return re.compile(rf"[ \t]*(?:[-・•+][ \t]*)?({list_re(n_choices)})")


def pick_leading_label(text: str, n_choices: int, choices: Sequence[str] = ()) -> Extraction | None:
    """Label lines at the start of the answer ("c. 夜盲を自覚する。", "a\\n", "C) …"),
    several consecutive label lines for a multi-answer reply."""
    order: list[int] = []
    first_span = None
    last_end = 0
    started = False
    for line in re.finditer(r"^.*$", text, re.MULTILINE):
        if not line.group(0).strip():
            if started:
                break
            continue
        m = _leading_re(n_choices).match(text, line.start(), line.end())
        if not m:
            break
        got = parse_list(text, m.start(1), m.end(1), n_choices, strict_end=True, limit=line.end())
        if not got or rejected(text[m.end(1): line.end()], choices):
            break
        started = True
        order.extend(got)
        if first_span is None:
            first_span = m.start(1)
        last_end = m.end(1)
    if not order or first_span is None:
        return None
    return picked(order, "leading_label", (first_span, last_end), text[first_span:last_end])
