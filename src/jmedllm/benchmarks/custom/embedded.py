"""Choices written inside the question text, and what kind of answer a question asks for.

**The embedded-choice rule** (documented in docs/custom-benchmarks.md). The choices are the
*last* run of lines in the question text that

- open with consecutive labels of one series, starting at its first label:
  ``a b c …`` or ``A B C …`` (or full-width ``ａ ｂ ｃ …``), ``ア イ ウ エ オ …``, or ``1 2 3 …`` (or ``１ ２ ３``);
- with the label followed by a full-width space ``　``, ``．``, ``.``, ``)`` or ``）``
  (an opening ``(`` / ``（`` before the label is allowed);
- or are markdown table rows whose first cell is such a label alone (``| a | 5 mg | 10 mg |``);
  the choice text is the remaining cells joined by `` | ``, and the table's header row stays
  in the question text, so the columns keep their names;

with nothing but blank lines between them and after them. At least two are needed. The
question text is then shown without those lines. Statements labelled ア–オ in the stem
followed by choices a–e ("ア、イ") stay in the stem: only the last run counts.
"""

from __future__ import annotations

import re

from jmedllm.text import nfkc

_SERIES = (
    "abcdefghijklmnopqrstuvwxyz",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "アイウエオカキクケコサシスセソ",
    "123456789",
)
_LINE = re.compile(r"^\s*[(（]?\s*(?P<label>[^\s|(（])(?:　|\s*[．.)）])\s*(?P<text>\S.*?)\s*$")
_ROW = re.compile(r"^\s*\|\s*[(（]?(?P<label>[^\s|]+?)[)）.．]?\s*\|(?P<cells>.*?)\|?\s*$")


def _label(raw: str) -> tuple[int, int] | None:
    """(series, position) of a label such as 'c', 'ｃ', 'ウ', '３'."""
    label = nfkc(raw)
    if len(label) != 1:
        return None
    for k, series in enumerate(_SERIES):
        pos = series.find(label)
        if pos >= 0:
            return k, pos
    return None


def _choice_line(line: str) -> tuple[tuple[int, int], str] | None:
    m = _ROW.match(line)
    if m:
        label = _label(m.group("label"))
        cells = [c.strip() for c in m.group("cells").split("|")]
        cells = [c for c in cells if c]
        if label is not None and cells:
            return label, " | ".join(cells)
        return None
    m = _LINE.match(line)
    if m:
        label = _label(m.group("label"))
        if label is not None:
            return label, m.group("text")
    return None


def split_embedded(text: str) -> tuple[str, list[str]] | None:
    """``(question without its choices, choices)`` by the rule above, or None when the text
    holds no such run of choice lines."""
    lines = text.split("\n")
    end = len(lines)
    while end > 0 and not lines[end - 1].strip():
        end -= 1
    # Walk back over the trailing run of choice lines (blank lines allowed between them).
    found: list[tuple[int, tuple[int, int], str]] = []
    k = end - 1
    while k >= 0:
        if not lines[k].strip():
            k -= 1
            continue
        parsed = _choice_line(lines[k])
        if parsed is None:
            break
        found.append((k, parsed[0], parsed[1]))
        k -= 1
    found.reverse()
    # Keep the longest tail that is one series counted from its first label.
    for start in range(len(found)):
        tail = found[start:]
        series = tail[0][1][0]
        if all(lab == (series, pos) for pos, (_, lab, _) in enumerate(tail)) and len(tail) >= 2:
            stem = "\n".join(lines[: tail[0][0]]).rstrip()
            if not stem.strip():
                return None
            return stem, [t for _, _, t in tail]
    return None


_OWN_LABEL = re.compile(r"^\s*[(（]?\s*(?P<label>\S)\s*(?:[)）.．:：]|　)\s*(?=\S)")


def strip_labels(choices: list[str]) -> list[str] | None:
    """Choices written with their own consecutive labels (``"a. text"``, ``"(b) text"``,
    ``"ウ）text"``) without them; None unless every choice carries its label in order."""
    out = []
    series = None
    for k, choice in enumerate(choices):
        m = _OWN_LABEL.match(choice)
        label = _label(m.group("label")) if m else None
        if m is None or label is None or label[1] != k or (series is not None and label[0] != series):
            return None
        series = label[0]
        out.append(choice[m.end():].strip())
    return out


_ALL = re.compile(r"(?:すべて|全て|全部)(?:を)?選(?:べ|びなさい)|select all|all that apply|choose all|mark all",
                  re.IGNORECASE)
_ORDER = re.compile(r"並べ(?:よ|なさい|かえよ)|並び替え|順(?:番)?に(?:並|選)|in the correct (?:order|sequence)|"
                    r"correct (?:order|sequence)|arrange\b.*\border|put\b.*\bin order|chronological order",
                    re.IGNORECASE)


def detect_selection(text: str) -> str:
    """``"all"`` for select-all-that-apply, ``"order"`` for ordering questions, else ``"n"``."""
    t = nfkc(text)
    if _ORDER.search(t):
        return "order"
    if _ALL.search(t):
        return "all"
    return "n"
