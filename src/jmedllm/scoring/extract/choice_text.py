"""Choice text written out instead of a label."""

from __future__ import annotations

import re
from typing import Sequence

from jmedllm.schema import LETTERS
from jmedllm.scoring.extract.labels import CLOSE, OPEN, label_class
from jmedllm.scoring.extract.types import Extraction, picked
from jmedllm.text import ANSWER_SEPARATOR, normalize_answer_text

_PART_SEPARATOR = re.compile(r"\s*(?:、|(?<!\d),|,(?!\d)|;|\n|および|及び|\band\b|→|->)\s*")
_TAIL = re.compile(
    r"(?:答え|解答|正解|回答|正答|結論|\banswer\b)[ \t]*[】」』\])]?[ \t]*(?:は|:|is|are)?\s*([^\n]+)", re.IGNORECASE
)


def occurrences(text: str, choices: Sequence[str]) -> dict[int, int]:
    """Choices whose text occurs in ``text`` (index -> first position), dropping those only
    seen inside a longer occurring choice."""
    hay = text.lower()
    spans: dict[int, list[tuple[int, int]]] = {}
    plain = [normalize_answer_text(c) for c in choices]
    for i, needle in enumerate(plain):
        if len(needle) < 2:
            continue
        found = [(m.start(), m.start() + len(needle)) for m in re.finditer(re.escape(needle), hay)]
        if found:
            spans[i] = found
    keep: dict[int, int] = {}
    for i, own in spans.items():
        covered = all(
            any(j != i and len(plain[j]) > len(plain[i]) and s2 <= s and e <= e2
                for j, other in spans.items() for s2, e2 in other)
            for s, e in own
        )
        if not covered:
            keep[i] = own[0][0]
    return keep


def _count_ok(found: int, n_select: int, selection: str, n_choices: int) -> bool:
    if selection == "all":
        return found >= 1
    if selection == "order":
        return found == n_choices
    return found == max(n_select, 1)


def pick_choice_text(
    text: str, choices: Sequence[str], n_select: int, selection: str = "n"
) -> Extraction | None:
    """The whole answer equals one choice text; or its parts (split at 、 , ; および and →
    newline) each equal a distinct choice; or the rest of the line after the last answer
    statement names the asked-for number of choices."""
    body = text.strip()
    if not body:
        return None
    plain_choices = [normalize_answer_text(c) for c in choices]
    start = text.index(body)
    whole = normalize_answer_text(body)
    if whole in plain_choices and plain_choices.count(whole) == 1:
        return picked([plain_choices.index(whole)], "choice_text", (start, start + len(body)), body)
    for splitter in (ANSWER_SEPARATOR, _PART_SEPARATOR):
        parts = [normalize_answer_text(p) for p in splitter.split(body) if p.strip()]
        if len(parts) > 1 and all(p in plain_choices and plain_choices.count(p) == 1 for p in parts):
            order = [plain_choices.index(p) for p in parts]
            if len(set(order)) == len(parts):
                return picked(order, "choice_text", (start, start + len(body)), body)
    tail = None
    for m in _TAIL.finditer(text):
        tail = m
    if tail is not None and selection != "order":
        found = occurrences(normalize_answer_text(tail.group(1)), choices)
        labels = {LETTERS.index(m.group(1).lower()) for m in
                  re.finditer(rf"{OPEN}\s*({label_class(len(choices))})\s*{CLOSE}", tail.group(1))}
        if labels and labels != set(found):
            return None  # "riboflavin (B)": the text and the label disagree
        if found and _count_ok(len(found), n_select, selection, len(choices)):
            order = sorted(found, key=found.get)
            return picked(order, "choice_text", tail.span(1), tail.group(1))
    return None


def pick_choice_text_contained(
    text: str, choices: Sequence[str], n_select: int, selection: str = "n"
) -> Extraction | None:
    """Exactly ``n_select`` choice texts occur somewhere in the answer (select-N items only)."""
    body = text.strip()
    if not body or selection != "n":
        return None
    found = occurrences(normalize_answer_text(body), choices)
    if found and len(found) == max(n_select, 1):
        start = text.index(body)
        order = sorted(found, key=found.get)
        return picked(order, "choice_text_contained", (start, start + len(body)), body)
    return None
