"""Choice labels and label lists: "c", "(c)", "【c】", "a, c", "ac", "a および c", "c → a → e".

A label list is tokens (a bracketed letter, or a bare run of letters) joined by
separators on one line. ``parse_list`` applies the guards against false positives:
a label must not touch an ASCII letter or digit ("HbA1c", "CRP"), nor be followed by
"-x" ("C-reactive protein"), "'s" or ".x"; a lowercase "a" followed by an English word
is the article; a run of several letters ("ac") must be one case, distinct letters and
not followed by an English word ("ACE inhibitors"); a list followed by a negation
("ではなく", "は誤り", "is not", "is incorrect") is a rejection, not an answer. Letters go
only up to the number of choices.
"""

from __future__ import annotations

import re
from functools import lru_cache

from jmedllm.schema import LETTERS

# Bracket pairs after NFKC: （）［］｛｝ fold to ASCII; 「」『』【】〈〉《》〔〕〘〙 stay.
OPEN = r"[(\[{「『【〈<《〔〘\"“]"
CLOSE = r"[)\]}」』】〉>》〕〙\"”]"
# Between the labels of one list, never across a line break. Arrows serve ordering answers.
SEP = (
    r"(?:[ \t]*(?:,[ \t]*and\b|,|、|・|/|&|;|\+|\band\b|および|及び|ならびに|と|→|->|=>|⇒|>)[ \t]*"
    r"|[ \t]+)"
)
# "a" followed by an English word is the article, unless the word is one a label takes.
ARTICLE_FOLLOWS = re.compile(
    r"[ \t]+(?!(?:is|are|was|and|or|because|since|as|would|seems?|only|alone)\b)[A-Za-z]"
)
NEGATION = re.compile(
    r"[ \t]*(?:ではな|じゃな|でな|は誤|は不正解|は正しくな|は不適|は該当しな|は除外|は否定|"
    r"is\s+(?:not|wrong|incorrect|false|unlikely|less\s+likely|ruled\s+out|excluded)|isn't|not\b|"
    r"\(?(?:誤り|×|✗|✘|incorrect|wrong|false)\)?)"
)


@lru_cache(maxsize=None)
def label_class(n_choices: int) -> str:
    """A regex class of the labels of ``n_choices`` choices: "[a-eA-E]" for five."""
    if not 1 <= n_choices <= len(LETTERS):
        raise ValueError(f"cannot extract letter labels for {n_choices} choices")
    last = LETTERS[n_choices - 1]
    return f"[a-{last}A-{last.upper()}]"


@lru_cache(maxsize=None)
def list_re(n_choices: int) -> str:
    """A label list: tokens (a bracketed letter or a bare run of letters) joined by separators."""
    L = label_class(n_choices)
    token = rf"(?:{OPEN}\s*{L}\s*{CLOSE}|(?<![A-Za-z0-9]){L}+(?![A-Za-z0-9]))"
    # at most 26 tokens: a longer run cannot be a list of distinct labels, and the bound keeps
    # every match short (a degenerate "A A A A …" output stays linear to scan)
    return rf"{token}(?:{SEP}?{token}){{0,25}}"


@lru_cache(maxsize=None)
def _token_re(n_choices: int) -> re.Pattern[str]:
    L = label_class(n_choices)
    return re.compile(rf"({OPEN})\s*({L})\s*{CLOSE}|(?<![A-Za-z0-9])({L}+)(?![A-Za-z0-9])")


@lru_cache(maxsize=None)
def _hedge_re(n_choices: int) -> re.Pattern[str]:
    """A list followed by "or C" / "か c" / "and possibly C" is a hedge between choices, not an answer."""
    L = label_class(n_choices)
    return re.compile(
        rf"[ \t]*,?[ \t]*(?:or|and/or|and\s+possibly|or\s+possibly|または|もしくは|あるいは|か)[ \t]*(?:{OPEN}[ \t]*)?{L}(?![A-Za-z0-9])",
        re.IGNORECASE,
    )


_STRICT_END = re.compile(r"\s*$|\s*\n|[.:)、。,!]|[ \t]*[(\[（【〔]|\s+[^\x00-\x7F]")


def parse_list(
    text: str, start: int, end: int, n_choices: int, *, strict_end: bool = False, limit: int | None = None
) -> tuple[int, ...] | None:
    """Indices named by the label list text[start:end] in written order, or None when it is not one.

    ``strict_end``: what follows must be end of line, punctuation, a bracket or a space +
    non-ASCII text (a label opening a line followed by its explanation). ``limit``: where the
    text that may follow the list ends (default: the end of ``text``).
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
    after = text[end:limit if limit is not None else min(len(text), end + 200)]
    bare_last = tokens[-1].group(3)
    if re.match(r"-[A-Za-z0-9]|'[A-Za-z]|\.[A-Za-z0-9]|[+^]", after):
        return None
    if NEGATION.match(after) or _hedge_re(n_choices).match(after):
        return None
    if bare_last:
        if bare_last == "a" and ARTICLE_FOLLOWS.match(after):
            return None  # the English article
        if len(bare_last) > 1 and re.match(r"[ \t]*[A-Za-z0-9]", after):
            return None  # an English word such as "ACE inhibitors"
    if strict_end and bare_last and not _STRICT_END.match(after):
        return None
    return tuple(indices)


@lru_cache(maxsize=None)
def _whole_list_re(n_choices: int) -> re.Pattern[str]:
    return re.compile(rf"^\s*({list_re(n_choices)})\s*[。.!]?\s*$")


def parse_whole_list(text: str, n_choices: int) -> tuple[tuple[int, ...], tuple[int, int]] | None:
    """``text`` is nothing but a label list (and a final full stop): its indices and span."""
    m = _whole_list_re(n_choices).match(text)
    if not m:
        return None
    found = parse_list(text, m.start(1), m.end(1), n_choices)
    return (found, m.span(1)) if found else None
