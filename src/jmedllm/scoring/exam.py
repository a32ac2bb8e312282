"""Exam rules: points, sections, official exceptions, forbidden choices, pass lines.

One :func:`jmedllm.scoring.exam_result.exam_result` judges every exam with these rules: the built-in medical licensing exams (their facts
and cited pass lines in :mod:`jmedllm.scoring.pass_lines`)
(expressed as :class:`~jmedllm.benchmarks.examrules.ExamRules` by :func:`builtin_rules`)
and any exam whose custom mapping declares its rules (carried in ``meta["exam_rules"]``).

The Japanese national medical licensing exam (医師国家試験) from the 112th (2018) on has
six blocks A–F. Blocks B and E are 必修 (hisshu, compulsory: general items 1 point,
clinical items 3 points); blocks A, C, D, F are 一般 + 臨床 (ippan_rinsho, 1 point each).
An item whose ``points`` is 0 was excluded from scoring by the ministry.

A candidate passes when all three criteria hold:
  1. 必修 points >= 80 % of the section maximum (the published line);
  2. 一般+臨床 points >= that year's published line;
  3. at most 3 forbidden (禁忌肢, kinki) selections: an item counts one selection when
     the prediction includes any of its kinki choices.

Over a subset of the exam (e.g. text-only items, or an interrupted run) the verdict
is still taken on the full exam: the official section maxima are the denominators
and every item not in the subset counts as wrong (0 points, no kinki selection).
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from jmedllm.benchmarks.examrules import ExamRules
from jmedllm.scoring.pass_lines import (  # re-exported: the built-in exams' facts
    HISSHU,
    HISSHU_BLOCKS,
    IPPAN_RINSHO,
    IPPAN_RINSHO_BLOCKS,
    OFFICIAL_EXCEPTIONS,
    PASS_LINES,
    SECTION_LABELS,
    SECTIONS,
    OfficialException,
    PassLines,
    builtin_rules,
    hisshu_line_from_max,
)
from jmedllm.schema import LETTERS, Question


_PROBLEM_ID = re.compile(r"(1\d\d)-?([A-F])-?(\d{1,3})$")


def problem_id(question: Question) -> str | None:
    """The exam item number ("116A71") of an IgakuQA question, or None for other benchmarks.

    Read from ``meta["problem_id"]`` when present, else from the end of ``question.id``
    ("igakuqa/116A71", "116-A-71"); only questions carrying ``meta["exam"]`` have one.
    """
    if "exam" not in question.meta:
        return None
    raw = str(question.meta.get("problem_id") or question.id)
    m = _PROBLEM_ID.search(raw)
    return f"{m.group(1)}{m.group(2)}{m.group(3)}" if m else None


def official_exception(question: Question) -> OfficialException | None:
    pid = problem_id(question)
    return OFFICIAL_EXCEPTIONS.get(pid) if pid else None


def accepted_answer_sets(question: Question) -> tuple[frozenset[int], ...]:
    """The answer sets counted correct: the gold set, or an official exception's alternatives."""
    exc = official_exception(question)
    if exc is not None and exc.rule == "accept_any":
        return exc.accepted
    return (question.answer,)


def is_counted_correct_for_all(question: Question) -> bool:
    exc = official_exception(question)
    return exc is not None and exc.rule == "all_correct"


def section_of(question: Question) -> str:
    """The item's section. Declared exams: ``meta["section"]`` (checked against the rules'
    section names). Built-in: "hisshu" or "ippan_rinsho", ``meta["section"]``, else from
    ``meta["block"]``."""
    rules = question.meta.get("exam_rules")
    if rules is not None:
        names = [s.name for s in rules.sections]
        section = question.meta.get("section")
        if section not in names:
            raise ValueError(f"{question.id}: meta section {section!r} is not one of {names}")
        return section
    section = question.meta.get("section")
    block = question.meta.get("block")
    from_block = None
    if block is not None:
        b = str(block).upper()
        if b in HISSHU_BLOCKS:
            from_block = HISSHU
        elif b in IPPAN_RINSHO_BLOCKS:
            from_block = IPPAN_RINSHO
        else:
            raise ValueError(f"{question.id}: meta block {block!r} is not one of A-F")
    if section is not None:
        if section not in SECTIONS:
            raise ValueError(f"{question.id}: meta section {section!r} is not one of {SECTIONS}")
        if from_block is not None and from_block != section:
            raise ValueError(f"{question.id}: meta section {section!r} contradicts block {block!r}")
        return section
    if from_block is None:
        raise ValueError(f"{question.id}: exam item without meta section or block")
    return from_block


def points_of(question: Question) -> int:
    """The item's points (``meta["points"]``; 0 = excluded from scoring)."""
    if "points" not in question.meta:
        raise ValueError(f"{question.id}: exam item without meta points")
    points = question.meta["points"]
    if isinstance(points, bool) or not isinstance(points, int) or points < 0:
        raise ValueError(f"{question.id}: meta points must be a non-negative int, got {points!r}")
    return points


def kinki_of(question: Question) -> tuple[int, ...] | None:
    """The forbidden choice indices, or None when the question carries no kinki metadata."""
    if "kinki" not in question.meta:
        return None
    kinki = tuple(question.meta["kinki"])
    bad = [k for k in kinki if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < len(question.choices)]
    if bad:
        raise ValueError(f"{question.id}: meta kinki {kinki!r} holds invalid choice indices {bad}")
    return kinki


def selects_kinki(question: Question, predicted: frozenset[int]) -> bool | None:
    """Whether the prediction includes any forbidden choice (None without kinki metadata)."""
    kinki = kinki_of(question)
    if kinki is None:
        return None
    return bool(predicted & set(kinki))


def is_exam_item(question: Question) -> bool:
    """Whether exam rules apply: an item with points of an exam with known rules (built-in
    pass lines, IgakuQA 112-116, 118, 119, or rules declared by a custom mapping).
    YakugakuQA (the pharmacist exam, no rules here) and IgakuQA119 (no points in its
    source) are scored as plain items, and the summary says so."""
    return "points" in question.meta and rules_for(question) is not None


def exam_without_pass_lines(question: Question) -> Any:
    """The exam of an item that has points but no known rules (no verdict possible), else None."""
    exam = question.meta.get("exam")
    if exam is None or "points" not in question.meta or rules_for(question) is not None:
        return None
    return exam


def exam_without_points(question: Question) -> int | None:
    """The exam number of a medical-exam item that lacks points (no verdict possible), else None."""
    exam = question.meta.get("exam")
    return exam if exam in PASS_LINES and "points" not in question.meta else None


def exam_of(question: Question) -> int | str:
    exam = question.meta.get("exam")
    if isinstance(exam, bool) or not isinstance(exam, (int, str)) or exam == "":
        raise ValueError(f"{question.id}: meta exam must be an exam number such as 116 or a name, got {exam!r}")
    return exam


def section_maxima(questions: Iterable[Question]) -> dict[int, dict[str, int]]:
    """Sum of points per exam and section over the given items: {116: {"hisshu": 197, ...}}."""
    out: dict[Any, dict[str, int]] = {}
    for q in questions:
        rules = rules_for(q)
        names = [s.name for s in rules.sections] if rules is not None else list(SECTIONS)
        by_section = out.setdefault(exam_of(q), dict.fromkeys(names, 0))
        section = section_of(q)
        by_section[section] = by_section.get(section, 0) + points_of(q)
    return {exam: dict(v) for exam, v in out.items()}


def check_section_maxima(questions: Iterable[Question]) -> dict[int, dict[str, int]]:
    """Section maxima of full exams, checked against the official ones (ValueError on mismatch)."""
    maxima = section_maxima(questions)
    problems = []
    for exam, by_section in sorted(maxima.items()):
        lines = PASS_LINES.get(exam)
        if lines is None:
            problems.append(f"exam {exam}: no official pass lines known")
            continue
        for section in SECTIONS:
            if by_section[section] != lines.maximum(section):
                problems.append(
                    f"exam {exam} {section}: items sum to {by_section[section]} points, "
                    f"official maximum is {lines.maximum(section)}"
                )
    if problems:
        raise ValueError("section maxima differ from the official ones: " + "; ".join(problems))
    return maxima


# ---------------------------------------------------------------------------
# exam verdict (one function for built-in and declared exams)
# ---------------------------------------------------------------------------

def rules_for(question: Question) -> ExamRules | None:
    """The rules that judge this item: declared by its mapping (``meta["exam_rules"]``), else
    the built-in medical licensing exam's, else None."""
    declared = question.meta.get("exam_rules")
    if declared is not None:
        if not isinstance(declared, ExamRules):
            raise ValueError(f"{question.id}: meta exam_rules must be an ExamRules, got {type(declared).__name__}")
        return declared
    return builtin_rules(question.meta.get("exam"))


def letters_of(indices: Iterable[int]) -> str:
    return "".join(LETTERS[i] for i in sorted(indices))


__all__ = [
    "HISSHU",
    "IPPAN_RINSHO",
    "OFFICIAL_EXCEPTIONS",
    "PASS_LINES",
    "SECTIONS",
    "SECTION_LABELS",
    "OfficialException",
    "PassLines",
    "accepted_answer_sets",
    "builtin_rules",
    "exam_without_pass_lines",
    "rules_for",
    "check_section_maxima",
    "exam_of",
    "exam_without_points",
    "is_exam_item",
    "hisshu_line_from_max",
    "is_counted_correct_for_all",
    "kinki_of",
    "official_exception",
    "points_of",
    "problem_id",
    "section_maxima",
    "section_of",
    "selects_kinki",
]
