"""Small pure text helpers shared by loaders, prompts and scoring."""

from __future__ import annotations

import re
import unicodedata

_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "一": 1, "二": 2, "三": 3, "四": 4, "五": 5,
}
_NUM = r"(\d+|one|two|three|four|five|[一二三四五])"
# (keywords, pattern): a pattern is tried only when one of its keywords occurs in the lowered text.
_SELECT_PATTERNS = [
    # Japanese: 2つ選べ / ２つ選べ / 二つ選べ / 2つを選べ / 2つ選びなさい / 2個選べ / 1つ選 べ (stray space)
    (("選",), re.compile(_NUM + r"\s*(?:つ|個)\s*(?:を)?\s*選\s*(?:べ|び|ん)")),
    (("選",), re.compile(r"選\s*(?:べ|び)[^。]{0,6}?" + _NUM + r"\s*(?:つ|個)")),
    # English: Select 2 / Choose two / Select two options / pick 3 answers / Please select two.
    # The verb must open a sentence (an imperative addressed to the reader), so that
    # "You choose 2 ampules of the drug" in a MedMCQA stem does not count.
    (("select", "choose", "pick", "mark"),
     re.compile(r"(?:^|[.?!:;)]\s*|\n\s*|\bplease\s+)(?:select|choose|pick|mark)\s+(?:the\s+)?" + _NUM
                + r"\b(?!\s*(?:year|day|week|month|hour|minute|%))", re.IGNORECASE)),
    # "two correct answers" but not "which of the four options below"
    (("answers", "options", "choices"),
     re.compile(r"(?<!\bthe\s)(?<!\bof\s)(?<!\ball\s)\b" + _NUM + r"\s+(?:correct\s+)?(?:answers|options|choices)\b",
                re.IGNORECASE)),
    # "Which two ...", "What are the three possible causes", "What two treatments"
    (("two", "three", "four", "five"),
     re.compile(r"\b(?:which|what(?:\s+are)?)\s+(?:the\s+)?(two|three|four|five)\b", re.IGNORECASE)),
]


def nfkc(text: str) -> str:
    """NFKC normalisation: full-width ASCII to half-width, compatibility forms folded."""
    return unicodedata.normalize("NFKC", text)


def parse_n_select(text: str) -> int | None:
    """How many choices a question asks for, read from its text; None when it does not say.

    >>> parse_n_select("誤っているのはどれか。2つ選べ。")
    2
    >>> parse_n_select("Which of the following are correct? Select two.")
    2
    >>> parse_n_select("正しいのはどれか。") is None
    True
    """
    t = text if text.isascii() else nfkc(text)
    lowered = t.lower()
    for keywords, pattern in _SELECT_PATTERNS:
        # A cheap substring test first: the regexes are slow on long case vignettes.
        if not any(k in lowered for k in keywords):
            continue
        m = pattern.search(t)
        if m:
            word = m.group(1).lower()
            n = int(word) if word.isdigit() else _NUMBER_WORDS[word]
            if 1 <= n <= 10:
                return n
    return None


# Separators between the parts of a select-N answer: 、 , ; and newline. A comma
# between two digits ("1,200") is a thousands separator, not a part boundary.
ANSWER_SEPARATOR = re.compile(r"\s*(?:、|(?<!\d),|,(?!\d)|;|\n)\s*")
_LEADING_LABEL = re.compile(r"^\s*[(\[「『【]?\s*[a-hA-H]\s*[)\]」』】]?\s*[.:)、]\s*")
_BRACKET_PAIRS = ("「」", "『』", '""', "“”", "''", "‘’", "()", "[]", "【】", "〈〉", "《》")


def normalize_answer_text(text: str) -> str:
    """Light normal form for comparing an answer with a choice text.

    NFKC; strip; a leading letter label ("c. ", "c：", "(c) ", "c) ") removed; surrounding
    quotes or brackets (「」『』""''()[]【】〈〉《》) and trailing 。 . ! removed, repeatedly;
    runs of white space folded to one space; lower case.

    >>> normalize_answer_text("ｃ．「夜盲を自覚する。」")
    '夜盲を自覚する'
    >>> normalize_answer_text("(C) Vitamin C.")
    'vitamin c'
    """
    text = _LEADING_LABEL.sub("", nfkc(text).strip())
    previous = None
    while previous != text:
        previous = text
        text = re.sub(r"[。.!]+$", "", text.strip())
        for opening, closing in _BRACKET_PAIRS:
            if len(text) >= 2 and text[0] == opening and text[-1] == closing:
                text = text[1:-1]
    return re.sub(r"\s+", " ", text).strip().lower()


def split_answer_parts(text: str) -> list[str]:
    """A select-N answer cut at ANSWER_SEPARATOR, each part light-normalised, empty parts dropped.

    >>> split_answer_parts("a. 夜盲、c. 自然治癒")
    ['夜盲', '自然治癒']
    """
    return [p for p in (normalize_answer_text(x) for x in ANSWER_SEPARATOR.split(nfkc(text))) if p]


def first_nonempty_line(text: str) -> str:
    """The first line that is not blank ("" when there is none).

    The reference harness (Sukeda 2024 / JMedLoRA) scores only this line of a generation.

    >>> first_nonempty_line("\\n  c\\n理由: ...")
    '  c'
    """
    for line in text.split("\n"):
        if line.strip():
            return line
    return ""
