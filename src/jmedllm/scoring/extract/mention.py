"""The fallback from reasoning: labels named as the answer outside a statement.

"option C", "選択肢c", "cが正しい", "cを選ぶ", "eです", "C is correct", a standalone "（c）"
(not "写真(a)", which names a figure). Reasoning weighs choices for and against, so a
mention is only a pick when it is unambiguous and not negated:

- a mention whose clause rejects it ("(e) … は使用できない", "e is incorrect", "aは誤り",
  "option B is unlikely") is negated, and a label negated anywhere is no candidate;
  "aが誤り" (が marks the answer itself, as in a "誤っているのはどれか" item) is not a negation;
- the remaining labels must be exactly as many as the question asks for; otherwise
  nothing is picked and the answer stays unparsed. A guess is worse than unparsed.
"""

from __future__ import annotations

import re
from functools import lru_cache

from jmedllm.schema import LETTERS
from jmedllm.scoring.extract.labels import CLOSE, OPEN, label_class, list_re, parse_list
from jmedllm.scoring.extract.types import Extraction, picked


@lru_cache(maxsize=None)
def _mention_re(n_choices: int) -> re.Pattern[str]:
    L = label_class(n_choices)
    bare = rf"(?<![A-Za-z0-9ァ-ヶー一-龯]){list_re(n_choices)}(?![A-Za-z0-9])"
    return re.compile(
        rf"(?:\b(?:option|choice)s?\s*|選択肢\s*)({OPEN}?\s*({L})\s*{CLOSE}?)(?![A-Za-z0-9])(?!\s*[:])"
        rf"|({bare})(?=\s*(?:が|を|です|である|だ|と考え|は|is\s+(?:correct|right|the\s+(?:correct|best)\s+answer|"
        r"not|incorrect|wrong|unlikely|less\s+likely|false)))"
        # a bracketed label standing alone; "写真(a)", "心電図(b)" name figures, not answers
        rf"|(?<![A-Za-z0-9ァ-ヶー一-龯ぁ-ん]){OPEN}\s*({L})\s*{CLOSE}",
        re.IGNORECASE,
    )


_CLAUSE_END = re.compile(r"[。\n;；]|\.(?:\s|$)|、(?:一方|しかし|だが)|,\s*(?:but|whereas|while)\b")
_NEGATIVE = re.compile(
    r"誤|不適|不正解|ではな|でな|じゃな|ない|否定|除外|考えにく|低い|少ない|禁忌|×"
    r"|\b(?:incorrect|wrong|not|unlikely|false|inappropriate|contraindicated|excluded?|ruled?\s+out|rules\s+out)\b"
    r"|n't\b|less\s+likely",
    re.IGNORECASE,
)
_POSITIVE_ONLY = re.compile(r"[ \t]*(?:が|を)")  # "aが誤り": the answer itself; "cを選ぶ"
_IS_POSITIVE = re.compile(r"\s*(?:が|を|です|である|だ|と考え|is\s+(?:correct|right|the\s+(?:correct|best)\s+answer))", re.IGNORECASE)


@lru_cache(maxsize=None)
def _enumeration_re(n_choices: int) -> re.Pattern[str]:
    L = label_class(n_choices)
    return re.compile(rf"\s*{CLOSE}?\s*(?:,|、|/|\bor\b|\band\b|~|-|から)\s*{OPEN}?\s*{L}(?![A-Za-z0-9])", re.IGNORECASE)


def _clause_after(text: str, pos: int) -> str:
    m = _CLAUSE_END.search(text, pos, min(len(text), pos + 80))
    return text[pos: m.start() if m else min(len(text), pos + 80)]


def pick_label_mention(text: str, n_choices: int, n_select: int = 1) -> Extraction | None:
    """The labels named as the answer, when they are unambiguous and not negated."""
    positive: list[tuple[int, re.Match[str], int]] = []
    negated: set[int] = set()
    enumeration = _enumeration_re(n_choices)
    for m in _mention_re(n_choices).finditer(text):
        if enumeration.match(text, m.end()):
            continue  # "options (a, b, c, d, e)": the labels listed, none named as the answer
        if m.group(2):
            label, group = m.group(2), 1
        elif m.group(3):
            label, group = m.group(3), 3
        else:
            label, group = m.group(4), 4
        if group == 3:  # "aとcが正しい": a label list named together
            got = parse_list(text, m.start(3), m.end(3), n_choices)
            if not got:
                continue
            indices: tuple[int, ...] = got
        else:
            indices = (LETTERS.index(label.lower()),)
        clause = _clause_after(text, m.end(group))
        if _POSITIVE_ONLY.match(clause):
            positive.extend((i, m, group) for i in indices)
        elif _NEGATIVE.search(clause):
            negated.update(indices)
        elif group == 3 and not _IS_POSITIVE.match(clause):
            continue  # "a は…" without a verdict says nothing
        else:
            positive.extend((i, m, group) for i in indices)
    candidates: list[int] = []
    for index, _, _ in positive:
        if index not in negated and index not in candidates:
            candidates.append(index)
    if not candidates or len(candidates) != max(n_select, 1):
        return None
    last = [(i, m, g) for i, m, g in positive if i in candidates][-1]
    _, m, group = last
    return picked(candidates, "label_mention", m.span(group), m.group(group))
