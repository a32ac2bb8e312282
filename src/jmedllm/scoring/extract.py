"""Answer extraction: from a model's free text to the set of choices it picked.

Extraction is a chain of small named steps. The first four clean the text,
the rest are *pick* steps tried in order; the first that finds an answer wins
and its name is recorded as the extraction ``method``:

cleaning
  1. ``normalize_output``   NFKC (full-width letters, digits, brackets and colons
                            fold to ASCII), markdown bold ``**`` blanked.
  2. ``strip_think``        ``<think>…</think>`` blanked; an unclosed ``<think>``
                            blanks the rest (the model never answered); a stray
                            ``</think>`` blanks everything before it (chat templates
                            that open the think block in the prompt).
  3. ``first_line``         only with ``first_line_only=True``: keep the first
                            non-empty line (compatibility with the reference harness).
  4. ``cut_next_question``  a base model that goes on to write the next exam item
                            ("問題:", "Question:") is cut there.
  5. ``drop_echoed_choices`` a run of >= 3 consecutive lettered lines ("a. …",
                            "- b: …", in increasing order) that is longer than the
                            number of answers asked for is a copy of the choice list
                            (or a per-choice analysis), not an answer: blanked.

pick steps (methods)
  ``label_only``        the whole answer is a label list: "c", "（c）", "a, c", "ac", "a と c".
  ``answer_statement``  the LAST final-answer statement: "答え：c", "正解はc", "答えは a と e",
                        "Answer: (C)", "The answer is C.", "I would choose B".
  ``final_label``       the last line ends with a label after "is" / ":" / "は":
                        "Therefore, the least likely diagnosis is E."
  ``leading_label``     the answer starts with label lines: "c. 夜盲を自覚する。\\n理由…", "C) …".
  ``choice_text``       the choice text written out: the whole answer (or its comma/newline
                        separated parts) equals choice texts, or the text after the last
                        answer statement names exactly ``n_select`` choices.
  ``label_mention``     the LAST label mentioned as the answer: "option C", "選択肢c",
                        "cが正しい", "cを選ぶ", "eです", a standalone "（c）" (not "写真(a)",
                        which names a figure).
  ``choice_text_contained`` exactly ``n_select`` choice texts occur in the answer.
  ``unparsed``          nothing found: an explicit outcome, never silently an empty set.

Guards against false positives: a label must not touch an ASCII letter or digit
("HbA1c", "CRP"), nor be followed by "-x" ("C-reactive protein"), "'s" or ".x";
a lowercase "a" followed by an English word is the article ("the answer is a
nerve block"); a run of several letters ("ac") must be one case, distinct letters,
and not followed by an English word ("ACE inhibitors"); a label followed by
"ではなく" / "is not" is a negation. Letters go only up to the number of choices
(a–e for five, a–h for eight), so "Vitamin C" in a four-choice English question
never reads as a label, and in statements the list must directly follow the
statement ("The answer is vitamin C" is not "C").

All offsets (``span``) index into ``nfkc(output)``: every step after NFKC blanks
characters with spaces instead of deleting them, so positions are preserved.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Sequence

from jmedllm.schema import LETTERS
from jmedllm.text import ANSWER_SEPARATOR, nfkc, normalize_answer_text

UNPARSED = "unparsed"

_OPEN = r"[(\[「『【〈<《]"
_CLOSE = r"[)\]」』】〉>》]"
_SEP = r"(?:[ \t]*(?:,|、|・|/|&|\band\b|と|および|及び)[ \t]*|[ \t]+)"  # never across a line break
# "a" followed by an English word is the article, unless the word is one a label takes.
_ARTICLE_FOLLOWS = re.compile(r"[ \t]+(?!(?:is|are|was|and|or|because|since|as|would|seems?)\b)[A-Za-z]")
_NEGATION = re.compile(r"\s*(?:ではな|じゃな|でな|は誤|は不正解|は正しくな|is\s+(?:not|wrong|incorrect)|not\b)")


@dataclass(frozen=True)
class Extraction:
    """What an extraction found.

    ``indices``: the chosen 0-based choice indices (empty only when unparsed or numeric);
    ``number``: the extracted number for numeric items (as written, NFKC-normalised);
    ``method``: the step that found it (``"unparsed"`` when none did);
    ``span``: (start, end) of the deciding match in ``nfkc(output)``; ``matched``: its text.
    """

    indices: frozenset[int]
    method: str
    span: tuple[int, int] | None = None
    matched: str | None = None
    number: str | None = None

    @property
    def parsed(self) -> bool:
        return self.method != UNPARSED


_UNPARSED = Extraction(frozenset(), UNPARSED)


# ---------------------------------------------------------------------------
# cleaning steps (each keeps character offsets)
# ---------------------------------------------------------------------------

def _blank(text: str, start: int, end: int) -> str:
    """Replace text[start:end] with spaces, keeping newlines (offsets and line structure survive)."""
    return text[:start] + re.sub(r"[^\n]", " ", text[start:end]) + text[end:]


def normalize_output(text: str) -> str:
    """NFKC (full-width ASCII folds: ａ→a, （c）→(c), ：→:) and markdown bold blanked."""
    return nfkc(text).replace("**", "  ").replace("\r", " ")


_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)


def strip_think(text: str) -> str:
    """Blank reasoning blocks: ``<think>…</think>``, an unclosed ``<think>…`` to the end,
    and everything before a stray ``</think>``."""
    text = _THINK_BLOCK.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    lower = text.lower()
    close = lower.rfind("</think>")
    if close >= 0:
        text = _blank(text, 0, close + len("</think>"))
        lower = text.lower()
    opened = lower.find("<think>")
    if opened >= 0:
        text = _blank(text, opened, len(text))
    return text


def first_line(text: str) -> str:
    """Keep the first non-empty line only (later lines blanked).

    Compatibility with the reference harness (Sukeda 2024 / JMedLoRA), which scores
    only the first non-empty line of a generation. Off by default.
    """
    m = re.search(r"\S[^\n]*", text)
    if not m:
        return text
    return _blank(text, m.end(), len(text))


_NEXT_QUESTION = re.compile(r"\n\s*(?:問題|設問|質問|Question|Q\s*\d+)\s*\d*\s*[:.)]", re.IGNORECASE)


def cut_next_question(text: str) -> str:
    """Blank a follow-on exam item that a base model wrote after its answer."""
    start = re.search(r"\S", text)
    if not start:
        return text
    m = _NEXT_QUESTION.search(text, start.start())
    return _blank(text, m.start(), len(text)) if m else text


@lru_cache(maxsize=None)
def _label_class(n_choices: int) -> str:
    if not 1 <= n_choices <= len(LETTERS):
        raise ValueError(f"cannot extract letter labels for {n_choices} choices")
    last = LETTERS[n_choices - 1]
    return f"[a-{last}A-{last.upper()}]"


@lru_cache(maxsize=None)
def _line_label_re(n_choices: int) -> re.Pattern[str]:
    L = _label_class(n_choices)
    return re.compile(rf"^[ \t]*(?:[-*・•][ \t]*)?{_OPEN}?[ \t]*({L}){_CLOSE}?[ \t]*[.:)、,]")


def drop_echoed_choices(text: str, n_choices: int, n_select: int) -> str:
    """Blank a copied choice list: >= 3 consecutive lettered lines, letters increasing,
    more lines than answers asked for. Blank lines inside the run are allowed."""
    if n_choices < 1:
        return text
    pattern = _line_label_re(n_choices)
    lines = text.split("\n")
    offsets, pos = [], 0
    for line in lines:
        offsets.append(pos)
        pos += len(line) + 1
    runs: list[list[int]] = []
    current: list[int] = []
    last_letter = -1
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        m = pattern.match(line)
        letter = LETTERS.index(m.group(1).lower()) if m else -1
        if m and letter > last_letter and current:
            current.append(i)
        else:
            if current:
                runs.append(current)
            current = [i] if m else []
        last_letter = letter if m else -1
    if current:
        runs.append(current)
    for run in runs:
        if len(run) >= 3 and len(run) > max(n_select, 1):
            for i in run:
                text = _blank(text, offsets[i], offsets[i] + len(lines[i]))
    return text


# ---------------------------------------------------------------------------
# label lists
# ---------------------------------------------------------------------------

@lru_cache(maxsize=None)
def _list_re(n_choices: int) -> str:
    """A label list: tokens (a bracketed letter or a bare run of letters) joined by separators."""
    L = _label_class(n_choices)
    token = rf"(?:{_OPEN}\s*{L}\s*{_CLOSE}|(?<![A-Za-z0-9]){L}+(?![A-Za-z0-9]))"
    return rf"{token}(?:{_SEP}?{token})*"


@lru_cache(maxsize=None)
def _token_re(n_choices: int) -> re.Pattern[str]:
    L = _label_class(n_choices)
    return re.compile(rf"({_OPEN})\s*({L})\s*{_CLOSE}|(?<![A-Za-z0-9])({L}+)(?![A-Za-z0-9])")


def _parse_list(
    text: str, start: int, end: int, n_choices: int, *, strict_end: bool = False
) -> frozenset[int] | None:
    """Indices named by the label list text[start:end], or None when it is not one.

    Checks the guards of the module docstring on every token and on what follows.
    ``strict_end``: what follows must be end of line, punctuation or a space + non-ASCII text.
    """
    indices: list[int] = []
    tokens = list(_token_re(n_choices).finditer(text, start, end))
    if not tokens:
        return None
    for tok in tokens:
        if tok.group(2):  # bracketed single letter
            indices.append(LETTERS.index(tok.group(2).lower()))
            continue
        run = tok.group(3)
        if len(run) > 1 and not (run.islower() or run.isupper()):
            return None
        letters = [LETTERS.index(ch.lower()) for ch in run]
        if len(set(letters)) != len(letters):
            return None
        indices.extend(letters)
    if len(set(indices)) != len(indices):
        return None
    after = text[end:]
    last = tokens[-1]
    bare_last = last.group(3)
    if re.match(r"-[A-Za-z0-9]|'[A-Za-z]|\.[A-Za-z0-9]|[+^]", after):
        return None
    if _NEGATION.match(after):
        return None
    if bare_last:
        if bare_last == "a" and _ARTICLE_FOLLOWS.match(after):
            return None  # the English article
        if len(bare_last) > 1 and re.match(r"[ \t]*[A-Za-z0-9]", after):
            return None  # an English word such as "ACE inhibitors"
    if strict_end and bare_last and not re.match(r"\s*$|\s*\n|[.:)、。,!]|[ \t]*[(\[]|\s+[^\x00-\x7F]", after):
        return None
    return frozenset(indices)


@lru_cache(maxsize=None)
def _label_only_re(n_choices: int) -> re.Pattern[str]:
    return re.compile(rf"^\s*({_list_re(n_choices)})\s*[。.!]?\s*$")


def pick_label_only(text: str, n_choices: int) -> Extraction | None:
    m = _label_only_re(n_choices).match(text)
    if not m:
        return None
    found = _parse_list(text, m.start(1), m.end(1), n_choices)
    return Extraction(found, "label_only", m.span(1), m.group(1)) if found else None


_STATEMENT_PREFIX = (
    # Japanese: 答え：c / 正解は c / 解答: ac / 最終的な答えは「c」 / 正しいのは c と e
    r"(?:(?:最終(?:的な)?)?(?:答え|解答|正解|回答|正答|答)\s*(?:は|:|=|→)?|のは)\s*[、,]?\s*(?:選択肢)?\s*"
    # English: Answer: (C) / The correct answer is C / answers are a and c / I would choose B
    r"|\b(?:(?:final|correct|best|right|most\s+likely|true)\s+)?(?:answer|option|choice)s?"
    r"\s*(?:is|are|would\s+be|will\s+be|should\s+be|:|=)\s*(?:(?:probably|likely|definitely|clearly)\s+)?"
    r"(?:(?:option|choice|answer)s?\s*:?\s*)?"
    r"|\bI\s+(?:would\s+|will\s+|'d\s+)?(?:choose|select|pick|go\s+with)\s+(?:(?:option|choice)s?\s+)?"
)


@lru_cache(maxsize=None)
def _statement_re(n_choices: int) -> re.Pattern[str]:
    return re.compile(rf"(?:{_STATEMENT_PREFIX})({_list_re(n_choices)})", re.IGNORECASE)


def pick_answer_statement(text: str, n_choices: int) -> Extraction | None:
    """The last final-answer statement whose label list passes the guards."""
    best = None
    for m in _statement_re(n_choices).finditer(text):
        found = _parse_list(text, m.start(1), m.end(1), n_choices)
        if found:
            best = Extraction(found, "answer_statement", m.span(1), m.group(1))
    return best


@lru_cache(maxsize=None)
def _final_label_re(n_choices: int) -> re.Pattern[str]:
    return re.compile(
        rf"(?:\b(?:is|are|be)\s+(?:(?:option|choice)s?\s+)?|[:=→]\s*|は\s*)({_list_re(n_choices)})[ \t]*[.。!]?[ \t]*$",
        re.IGNORECASE,
    )


def pick_final_label(text: str, n_choices: int) -> Extraction | None:
    """The last non-empty line ends with a label after "is" / ":" / "は":
    "Therefore, the least likely diagnosis is E.", "以上より e。" is not enough (no "は")."""
    lines = [m for m in re.finditer(r"^.*\S.*$", text, re.MULTILINE)]
    if not lines:
        return None
    line = lines[-1]
    m = _final_label_re(n_choices).search(text, line.start(), line.end())
    if not m:
        return None
    found = _parse_list(text, m.start(1), m.end(1), n_choices)
    return Extraction(found, "final_label", m.span(1), m.group(1)) if found else None


@lru_cache(maxsize=None)
def _leading_re(n_choices: int) -> re.Pattern[str]:
    # used with .match(text, pos): anchored at pos ("^" would only match at the string start)
    return re.compile(rf"[ \t]*({_list_re(n_choices)})")


def pick_leading_label(text: str, n_choices: int) -> Extraction | None:
    """Label lines at the start of the answer ("c. 夜盲を自覚する。", "a\\n", "C) …"),
    several consecutive label lines for a multi-answer reply."""
    found: set[int] = set()
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
        got = _parse_list(text[: line.end()], m.start(1), m.end(1), n_choices, strict_end=True)
        if not got:
            break
        started = True
        found |= got
        if first_span is None:
            first_span = m.start(1)
        last_end = m.end(1)
    if not found or first_span is None:
        return None
    return Extraction(frozenset(found), "leading_label", (first_span, last_end), text[first_span:last_end])


@lru_cache(maxsize=None)
def _mention_re(n_choices: int) -> re.Pattern[str]:
    L = _label_class(n_choices)
    bare = rf"(?<![A-Za-z0-9ァ-ヶー一-龯]){L}(?![A-Za-z0-9])"
    return re.compile(
        rf"(?:\b(?:option|choice)s?\s*|選択肢\s*)({_OPEN}?\s*{L}\s*{_CLOSE}?)(?![A-Za-z0-9])(?!\s*[:：])"
        rf"|({bare})(?=\s*(?:が|を|です|である|だ|と考え|が正|is\s+(?:correct|right|the\s+(?:correct|best)\s+answer)))"
        # a bracketed label standing alone; "写真(a)", "心電図(b)" name figures, not answers
        rf"|(?<![A-Za-z0-9ァ-ヶー一-龯ぁ-ん]){_OPEN}\s*({L})\s*{_CLOSE}",
        re.IGNORECASE,
    )


def pick_label_mention(text: str, n_choices: int) -> Extraction | None:
    """The last label named as the answer outside a statement: "option C", "選択肢c",
    "cが正しい", "cを選ぶ", "eです", "C is correct", "（c）"."""
    best = None
    for m in _mention_re(n_choices).finditer(text):
        group = next(g for g in (1, 2, 3) if m.group(g))
        found = _parse_list(text, m.start(group), m.end(group), n_choices)
        if found:
            best = Extraction(found, "label_mention", m.span(group), m.group(group))
    return best


# ---------------------------------------------------------------------------
# choice text
# ---------------------------------------------------------------------------

def _occurrences(text: str, choices: Sequence[str]) -> set[int]:
    """Choices whose text occurs in ``text``, dropping those only seen inside a longer occurring choice."""
    hay = text.lower()
    spans: dict[int, list[tuple[int, int]]] = {}
    for i, choice in enumerate(choices):
        needle = normalize_answer_text(choice)
        if len(needle) < 2:
            continue
        found = [(m.start(), m.start() + len(needle)) for m in re.finditer(re.escape(needle), hay)]
        if found:
            spans[i] = found
    keep = set()
    for i, own in spans.items():
        covered = all(
            any(j != i and len(normalize_answer_text(choices[j])) > len(normalize_answer_text(choices[i])) and s2 <= s and e <= e2
                for j, other in spans.items() for s2, e2 in other)
            for s, e in own
        )
        if not covered:
            keep.add(i)
    return keep


def pick_choice_text(text: str, choices: Sequence[str], n_select: int) -> Extraction | None:
    """The choice text written out instead of a letter.

    Whole answer equal to one choice text; or its parts (split at 、 , ; newline) each equal
    to a distinct choice; or the rest of the line after the last answer statement names
    exactly ``n_select`` choices.
    """
    body = text.strip()
    if not body:
        return None
    plain_choices = [normalize_answer_text(c) for c in choices]
    start = text.index(body)
    whole = normalize_answer_text(body)
    if whole in plain_choices and plain_choices.count(whole) == 1:
        return Extraction(frozenset({plain_choices.index(whole)}), "choice_text", (start, start + len(body)), body)
    parts = [normalize_answer_text(p) for p in ANSWER_SEPARATOR.split(body) if p.strip()]
    if len(parts) > 1 and all(p in plain_choices and plain_choices.count(p) == 1 for p in parts):
        idx = frozenset(plain_choices.index(p) for p in parts)
        if len(idx) == len(parts):
            return Extraction(idx, "choice_text", (start, start + len(body)), body)
    tail = None
    for m in re.finditer(r"(?:答え|解答|正解|回答|正答|\banswer\b)\s*(?:は|:|is|are)?\s*([^\n]+)", text, re.IGNORECASE):
        tail = m
    if tail is not None:
        found = _occurrences(normalize_answer_text(tail.group(1)), choices)
        if found and len(found) == max(n_select, 1):
            return Extraction(frozenset(found), "choice_text", tail.span(1), tail.group(1))
    return None


def pick_choice_text_contained(text: str, choices: Sequence[str], n_select: int) -> Extraction | None:
    """Exactly ``n_select`` choice texts occur somewhere in the answer."""
    body = text.strip()
    if not body:
        return None
    found = _occurrences(normalize_answer_text(body), choices)
    if found and len(found) == max(n_select, 1):
        start = text.index(body)
        return Extraction(frozenset(found), "choice_text_contained", (start, start + len(body)), body)
    return None


# ---------------------------------------------------------------------------
# the chain
# ---------------------------------------------------------------------------

def clean_output(output: str, *, n_choices: int = 0, n_select: int = 1, first_line_only: bool = False) -> str:
    """Run the cleaning steps; the result has the same length as ``nfkc(output)``."""
    text = strip_think(normalize_output(output))
    if first_line_only:
        text = first_line(text)
    text = cut_next_question(text)
    if n_choices:
        text = drop_echoed_choices(text, n_choices, n_select)
    return text


def extract_choices(
    output: str, choices: Sequence[str], n_select: int = 1, *, first_line_only: bool = False
) -> Extraction:
    """Which choices a generated answer picks (see the module docstring for the chain)."""
    n = len(choices)
    if n == 0:
        raise ValueError("extract_choices needs choices; use extract_number for numeric items")
    text = clean_output(output, n_choices=n, n_select=n_select, first_line_only=first_line_only)
    steps = (
        lambda: pick_label_only(text, n),
        lambda: pick_answer_statement(text, n),
        lambda: pick_final_label(text, n),
        lambda: pick_leading_label(text, n),
        lambda: pick_choice_text(text, choices, n_select),
        lambda: pick_label_mention(text, n),
        lambda: pick_choice_text_contained(text, choices, n_select),
    )
    for step in steps:
        found = step()
        if found is not None and found.indices:
            return found
    return _UNPARSED


# ---------------------------------------------------------------------------
# numeric answers
# ---------------------------------------------------------------------------

_NUMBER = r"[-−]?\d+(?:,\d{3})*(?:\.\d+)?"
_NUMBER_STATEMENT = re.compile(
    rf"(?:答え|解答|正解|回答|正答|答|answer)\s*(?:は|:|=|is|→)?\s*(?:約|approximately\s+|about\s+)?({_NUMBER})",
    re.IGNORECASE,
)
_NUMBER_ONLY = re.compile(rf"^\s*(?:約)?({_NUMBER})\s*[^\d\s]{{0,12}}\s*[。.]?\s*$")


def extract_number(output: str, *, first_line_only: bool = False) -> Extraction:
    """The number a generated answer gives: the last answer statement ("答え：1.2", "Answer: 26"),
    else an answer that is only a number (+ unit), else the last number in the text."""
    text = clean_output(output, first_line_only=first_line_only)
    best = None
    for m in _NUMBER_STATEMENT.finditer(text):
        best = Extraction(frozenset(), "answer_statement", m.span(1), m.group(1), number=m.group(1))
    if best:
        return best
    m = _NUMBER_ONLY.match(text)
    if m:
        return Extraction(frozenset(), "number_only", m.span(1), m.group(1), number=m.group(1))
    last = None
    for m in re.finditer(rf"(?<![A-Za-z\d.]){_NUMBER}", text):
        last = m
    if last:
        return Extraction(frozenset(), "last_number", last.span(), last.group(0), number=last.group(0))
    return _UNPARSED


def parse_number(text: str) -> Decimal | None:
    """A number as written ("1,130", "０．４", "−2") to a Decimal; None when it is not one."""
    t = nfkc(text).strip().replace(",", "").replace("−", "-")
    try:
        return Decimal(t)
    except InvalidOperation:
        return None
