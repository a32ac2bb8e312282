"""Answer extraction: from a model's free text to the choices it picked (or its number).

Extraction is a chain of small named steps. Cleaning steps (``clean``) keep character
offsets; then *pick* steps are tried in order and the first that finds an answer wins;
its name is recorded as the extraction ``method``:

``answer_pattern``        the user's regex (named group ``answer``), when given: its last
                          match's capture read as a label list / leading label / choice text.
``label_only``            the whole answer is a label list: "c", "（c）", "a, c", "ac", "c → a".
``answer_statement``      the LAST explicit answer statement, wherever it stands (``statements``):
                          "答え：c", "【回答】a, c", "### 回答" + "c", "最終解答：c", "結論：c",
                          "cが正解", "Answer: (C)", "Final Answer: C", "Therefore, the answer is B",
                          "My answer: b", ``\\boxed{c}``, ``$\\text{C}$`` after a keyword.
``final_label``           the last line ends with a label after "is" / ":" / "は".
``leading_label``         the answer opens with label lines: "c. 夜盲を自覚する。", "C) …".
``choice_text``           the choice text written out (whole answer, its parts, or after the
                          last answer keyword).
``label_mention``         labels named as the answer in reasoning ("選択肢c", "cを選ぶ",
                          "C is correct"), only when unambiguous and not negated (``mention``).
``choice_text_contained`` exactly ``n_select`` choice texts occur in the answer.
``unparsed``              nothing found: an explicit outcome, never silently an empty set.

Precedence: an explicit statement anywhere beats letters in reasoning, and among
statements the last one wins; the reasoning fallback gives up (``unparsed``) rather than
guess. ``selection``: ``"n"`` (the default: ``n_select`` answers), ``"all"`` (select all
that apply: any number of labels; no guess from choice texts merely mentioned) or
``"order"`` (an ordering: the labels' written order is kept). ``Extraction.order`` always
holds the picked indices in the order written.

All offsets (``span``) index into ``nfkc(output)``.
"""

from __future__ import annotations

from typing import Sequence

from jmedllm.schema import SELECTIONS
from jmedllm.scoring.extract.choice_text import pick_choice_text, pick_choice_text_contained
from jmedllm.scoring.extract.clean import (
    clean_output,
    cut_next_question,
    drop_echoed_choices,
    first_line,
    normalize_output,
    strip_think,
)
from jmedllm.scoring.extract.labels import parse_list, parse_whole_list
from jmedllm.scoring.extract.mention import pick_label_mention
from jmedllm.scoring.extract.numbers import extract_number, parse_number, template_digits
from jmedllm.scoring.extract.pattern import compile_answer_pattern, find_answer
from jmedllm.scoring.extract.statements import (
    pick_answer_statement,
    pick_final_label,
    pick_label_only,
    pick_leading_label,
    has_answer_keyword,
    statements,
)
from jmedllm.scoring.extract.types import NOTHING, UNPARSED, Extraction, picked


def _echo_limit(n_choices: int, n_select: int, selection: str) -> int:
    """How many lettered lines an answer may hold before they read as a copied choice list."""
    if selection == "order":
        return n_choices
    if selection == "all":
        return n_choices - 1
    return n_select


def _answered(text: str, n: int) -> bool:
    """An explicit answer stands in ``text`` (used to decide whether a "問題:" line below it is a
    follow-on item to cut or the model restating the question before it answers)."""
    return any(step(text, n) is not None for step in (pick_label_only, pick_answer_statement, pick_final_label,
                                                      pick_leading_label))


def _read_capture(capture: str, choices: Sequence[str], n_select: int, selection: str) -> tuple[int, ...] | None:
    text = normalize_output(capture)
    n = len(choices)
    whole = parse_whole_list(text, n)
    if whole:
        return whole[0]
    for step in (lambda: pick_leading_label(text, n), lambda: pick_choice_text(text, choices, n_select, selection)):
        got = step()
        if got is not None and got.indices:
            return got.order
    return None


def extract_choices(
    output: str,
    choices: Sequence[str],
    n_select: int = 1,
    *,
    first_line_only: bool = False,
    answer_pattern: str | None = None,
    selection: str = "n",
) -> Extraction:
    """Which choices a generated answer picks (see the module docstring for the chain)."""
    n = len(choices)
    if n == 0:
        raise ValueError("extract_choices needs choices; use extract_number for numeric items")
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    if answer_pattern is not None:
        found = find_answer(output, answer_pattern, first_line_only=first_line_only)
        if found is not None:
            capture, span = found
            order = _read_capture(capture, choices, n_select, selection)
            if order:
                return picked(order, "answer_pattern", span, capture)
    text = clean_output(output, n_choices=n, n_select=_echo_limit(n, n_select, selection),
                        first_line_only=first_line_only, cut_next=False)
    cut = cut_next_question(text)
    if cut != text and _answered(cut, n):
        text = cut  # a base model answered, then wrote the next exam item
    steps = (
        lambda: pick_label_only(text, n),
        lambda: pick_answer_statement(text, n),
        lambda: pick_final_label(text, n),
        lambda: pick_leading_label(text, n, choices),
        lambda: pick_choice_text(text, choices, n_select, selection),
        lambda: pick_label_mention(text, n, n_select) if selection == "n" else None,
        lambda: pick_choice_text_contained(text, choices, n_select, selection),
    )
    stated = has_answer_keyword(text)
    for name, step in zip(("label_only", "answer_statement", "final_label", "leading_label", "choice_text",
                           "label_mention", "choice_text_contained"), steps):
        if stated and name in _GUESSES:
            break  # an answer was stated but cannot be read: no guess from the reasoning
        found = step()
        if found is not None and found.indices:
            return found
    return NOTHING


_GUESSES = ("label_mention", "choice_text_contained")


__all__ = [
    "UNPARSED",
    "Extraction",
    "clean_output",
    "compile_answer_pattern",
    "cut_next_question",
    "drop_echoed_choices",
    "extract_choices",
    "extract_number",
    "find_answer",
    "first_line",
    "normalize_output",
    "parse_list",
    "parse_number",
    "pick_answer_statement",
    "pick_choice_text",
    "pick_choice_text_contained",
    "pick_final_label",
    "pick_label_mention",
    "pick_label_only",
    "pick_leading_label",
    "statements",
    "strip_think",
    "template_digits",
]
