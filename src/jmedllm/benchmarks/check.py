"""Data checks behind `jmedllm data check`: counts per benchmark and the problems found.

Pure functions over a loaded :class:`Benchmark` (no I/O except :func:`check_spec`, which
loads). A problem is an ``error`` when a score computed on the data would be wrong or
impossible (the benchmark does not load; a forbidden choice is also a gold answer; exam
points do not add up to the published maxima) and a ``warning`` otherwise (a quirk the
loader tolerated, a question whose number of gold answers differs from the number it asks for).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from jmedllm.benchmarks.igakuqa import OFFICIAL_SECTION_MAXIMA
from jmedllm.benchmarks.record import Benchmark

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    severity: str  # ERROR or WARNING
    message: str
    details: tuple[str, ...] = ()  # e.g. the ids or file:line concerned


@dataclass(frozen=True)
class Report:
    """What `data check` prints for one benchmark spec."""

    spec: str
    summary: dict[str, Any] | None  # None when the benchmark failed to load
    problems: tuple[Problem, ...] = field(default_factory=tuple)

    @property
    def has_errors(self) -> bool:
        return any(p.severity == ERROR for p in self.problems)


def summarize(bench: Benchmark) -> dict[str, Any]:
    """Counts: total, per split / language / number of answers / number of choices, numeric,
    text-only (overall and per number of choices) and, for exams with points, points per section."""
    qs = bench.questions
    summary: dict[str, Any] = {
        "name": bench.name,
        "language": bench.language,
        "questions": len(qs),
        "files": len(bench.files),
        "by_split": _count(q.meta.get("split", "-") for q in qs),
        "by_language": _count(q.language for q in qs),
        "by_n_answers": _count(len(q.answer) for q in qs if not q.is_numeric),
        "by_n_choices": _count(len(q.choices) for q in qs),
        "numeric": sum(q.is_numeric for q in qs),
        "text_only": sum(bool(q.meta.get("text_only", True)) for q in qs),
        "text_only_by_n_choices": _count(len(q.choices) for q in qs if q.meta.get("text_only", True)),
        "by_selection": _count(q.selection for q in qs),
        "excluded": len(bench.excluded),
    }
    points = section_points(bench)
    if points:
        summary["section_points"] = points
    return summary


def section_points(bench: Benchmark) -> dict[int, dict[str, int]]:
    """Exam -> section -> sum of ``meta["points"]``, for questions that have both."""
    totals: dict[int, dict[str, int]] = {}
    for q in bench.questions:
        exam, section, points = q.meta.get("exam"), q.meta.get("section"), q.meta.get("points")
        if exam is None or section is None or points is None:
            continue
        by_section = totals.setdefault(exam, {})
        by_section[section] = by_section.get(section, 0) + points
    order = {name: k for k, name in enumerate(_SECTION_ORDER)}
    return {exam: dict(sorted(sections.items(), key=lambda kv: order.get(kv[0], len(order))))
            for exam, sections in sorted(totals.items(), key=lambda kv: (str(type(kv[0])), kv[0]))}


# Print order of sections: compulsory first, as the exams publish them.
_SECTION_ORDER = ("hisshu", "ippan_rinsho", "hissu", "riron", "jissen")


def find_problems(bench: Benchmark) -> list[Problem]:
    """Everything in ``bench`` that a user publishing a score should know about."""
    problems: list[Problem] = []
    if bench.excluded:
        problems.append(Problem(WARNING, f"{len(bench.excluded)} record(s) excluded: no official answer key "
                                "(not scored, not in any exam maximum)", bench.excluded))
    incomplete = sorted({f"exam {q.meta['exam']}: {q.meta['exam_incomplete']}; no verdict"
                         for q in bench.questions if q.meta.get("exam_incomplete")})
    if incomplete:
        problems.append(Problem(ERROR, "incomplete exam(s) in the data root: an eval cannot judge them",
                                tuple(incomplete)))
    if bench.warnings:
        problems.append(Problem(WARNING, f"{len(bench.warnings)} source quirk(s) tolerated by the loader",
                                bench.warnings))
    choice_items = [q for q in bench.questions if not q.is_numeric]
    no_answer = [q.id for q in choice_items if not q.answer]
    if no_answer:
        problems.append(Problem(WARNING, f"{len(no_answer)} question(s) without a correct choice "
                                "(e.g. 解なし: the exam gave no key)", tuple(no_answer)))
    counted = [q for q in choice_items if q.selection == "n"]  # select-all / ordering ask for no fixed number
    more = [f"{q.id} (asks {q.n_select}, {len(q.answer)} keys)" for q in counted
            if q.answer and len(q.answer) > q.n_select]
    if more:
        problems.append(Problem(WARNING, f"{len(more)} question(s) with more gold keys than choices asked for "
                                "(any of the keys accepted, or a data error)", tuple(more)))
    fewer = [f"{q.id} (asks {q.n_select}, {len(q.answer)} keys)" for q in counted
             if q.answer and len(q.answer) < q.n_select]
    if fewer:
        problems.append(Problem(WARNING, f"{len(fewer)} question(s) with fewer gold keys than choices asked for",
                                tuple(fewer)))
    blank = [q.id for q in bench.questions if any(not c.strip() for c in q.choices)]
    if blank:
        problems.append(Problem(WARNING, f"{len(blank)} question(s) with a blank choice (its text is elsewhere, "
                                "e.g. in a table in the question; exact match and Gestalt cannot use it)",
                                tuple(blank)))
    empty = [q.id for q in bench.questions if not q.text.strip()]
    if empty:
        problems.append(Problem(WARNING, f"{len(empty)} question(s) with an empty question text", tuple(empty)))
    images = [q.id for q in bench.questions if q.meta.get("image_choices")]
    if images:
        problems.append(Problem(WARNING, f"{len(images)} question(s) whose choices are images "
                                "(placeholders stand in; not text_only)", tuple(images)))
    kinki_gold = [f"{q.id} (kinki {sorted(q.meta['kinki'])}, gold {sorted(q.answer)})" for q in bench.questions
                  if set(q.meta.get("kinki", ())) & q.answer]
    if kinki_gold:
        problems.append(Problem(ERROR, f"{len(kinki_gold)} question(s) with a forbidden (kinki) choice that is "
                                "also a gold answer", tuple(kinki_gold)))
    problems.extend(_section_problems(bench))
    return problems


def _section_problems(bench: Benchmark) -> list[Problem]:
    """Compare points per section with the published maxima, for complete exams only."""
    blocks: dict[int, set[str]] = {}
    for q in bench.questions:
        if "points" in q.meta and "exam" in q.meta:
            blocks.setdefault(q.meta["exam"], set()).add(q.meta.get("block"))
    wrong = []
    for exam, sections in section_points(bench).items():
        official = OFFICIAL_SECTION_MAXIMA.get(exam)
        # Only whole medical-licensing exams (all six blocks) can be compared with the maxima.
        if official is None or blocks.get(exam) != set("ABCDEF") or set(sections) - set(official):
            continue
        if sections != official:
            wrong.append(f"{exam}: loaded {sections}, published {official}")
    if wrong:
        return [Problem(ERROR, "points per section differ from the published maxima", tuple(wrong))]
    return []


def check_spec(spec: str, data_root: str | os.PathLike[str] | None, *, allow_outside_paths: bool = False) -> Report:
    """Load ``spec`` and check it; a loading failure becomes an error in the report."""
    from jmedllm.benchmarks.registry import load_benchmark

    try:
        bench = load_benchmark(spec, data_root, allow_outside_paths=allow_outside_paths)
    except (ValueError, OSError) as exc:
        return Report(spec, None, (Problem(ERROR, f"does not load: {exc}"),))
    return Report(spec, summarize(bench), tuple(find_problems(bench)))


def _count(values) -> dict[Any, int]:
    counts = Counter(values)
    return dict(sorted(counts.items(), key=lambda kv: (str(type(kv[0])), kv[0])))
