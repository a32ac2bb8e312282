"""One exam's pass / fail from item verdicts: points per section against the official
maxima and pass lines, forbidden-choice (禁忌肢) selections, margins on each criterion.

The rules (sections, points, pass lines, kinki limits, official exceptions) are in
:mod:`jmedllm.scoring.exam`; this module only applies them to a run's verdicts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Sequence

from jmedllm.benchmarks.examrules import ExamRules
from jmedllm.scoring.exam import (
    HISSHU,
    IPPAN_RINSHO,
    PASS_LINES,
    builtin_rules,
    exam_of,
    kinki_of,
    points_of,
    problem_id,
    rules_for,
    section_of,
    selects_kinki,
)
from jmedllm.schema import Question

if TYPE_CHECKING:  # pragma: no cover
    from jmedllm.scoring.verdict import ItemVerdict


@dataclass(frozen=True)
class SectionResult:
    """Points of one section: over the items scored (subset) and against the full exam."""

    section: str
    n_items: int  # items of this section in the run
    n_correct: int
    points: int  # earned; items not in the run count 0
    subset_max: int  # sum of points of the items in the run
    official_max: int
    line: int
    margin: int  # points - line (>= 0 passes)
    passed: bool
    label: str = ""

    @property
    def subset_rate(self) -> float | None:
        return self.points / self.subset_max if self.subset_max else None

    @property
    def official_rate(self) -> float | None:
        return self.points / self.official_max if self.official_max else None


@dataclass(frozen=True)
class ExamResult:
    """Pass/fail of one exam with the margin on each criterion.

    ``sections`` in the rules' order (the medical licensing exam: 必修, 一般+臨床; reachable
    as ``.hisshu`` / ``.ippan_rinsho``). ``kinki_checked`` is False when no item carries
    kinki metadata (IgakuQA119) or the rules set no limit: the verdict then rests on the
    points alone, and ``kinki_count`` is None. ``complete`` says whether the run held items
    worth every section's maximum.
    """

    exam: int | str
    sections: tuple[SectionResult, ...]
    kinki_count: int | None
    kinki_max: int | None
    kinki_margin: int | None  # kinki_max - kinki_count (>= 0 passes)
    kinki_checked: bool
    passed: bool
    complete: bool
    n_items: int
    source: str = ""

    def section(self, name: str) -> SectionResult:
        for s in self.sections:
            if s.section == name:
                return s
        raise KeyError(f"exam {self.exam} has no section {name!r}")

    @property
    def hisshu(self) -> SectionResult:
        return self.section(HISSHU)

    @property
    def ippan_rinsho(self) -> SectionResult:
        return self.section(IPPAN_RINSHO)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: each section under its own name (``d["hisshu"]``), ``section_order``
        listing them, and the exam-level fields."""
        d: dict[str, Any] = {k: v for k, v in asdict(self).items() if k != "sections"}
        d["section_order"] = [s.section for s in self.sections]
        for section in self.sections:
            entry = asdict(section)
            entry["subset_rate"] = section.subset_rate
            entry["official_rate"] = section.official_rate
            d[section.section] = entry
        return d


def exam_result(exam: Any, items: Sequence[tuple[Question, "ItemVerdict"]],
                rules: ExamRules | None = None) -> ExamResult:
    """Score one exam from item verdicts (items of other exams are an error).

    ``rules``: the exam's rules; by default those the items carry (a custom mapping's) or
    the built-in ones. Points: an item earns its ``points`` when its verdict is correct.
    Duplicate items, or items worth more than a section's maximum, are errors.
    """
    if rules is None:
        rules = rules_for(items[0][0]) if items else builtin_rules(exam)
    if rules is None:
        raise ValueError(f"exam {exam}: no official pass lines known (built-in: {sorted(PASS_LINES)}; "
                         "declare them in the mapping's exam_rules)")
    names = [s.name for s in rules.sections]
    seen: set[str] = set()
    n = {s: 0 for s in names}
    n_correct = {s: 0 for s in names}
    earned = {s: 0 for s in names}
    subset_max = {s: 0 for s in names}
    kinki_count = 0
    kinki_seen = False
    for question, verdict in items:
        if exam_of(question) != exam:
            raise ValueError(f"{question.id}: item of exam {exam_of(question)} given to exam {exam}")
        key = problem_id(question) or question.id
        if key in seen:
            raise ValueError(f"{question.id}: item {key} appears twice in exam {exam}")
        seen.add(key)
        section = section_of(question)
        if section not in n:
            raise ValueError(f"{question.id}: section {section!r} is not one of exam {exam}'s {names}")
        points = points_of(question)
        n[section] += 1
        subset_max[section] += points
        if verdict.correct:
            n_correct[section] += 1
            earned[section] += points
        if kinki_of(question) is not None:
            kinki_seen = True
            if selects_kinki(question, verdict.predicted):
                kinki_count += 1
    results = []
    for rule in rules.sections:
        s = rule.name
        official = rule.maximum if rule.maximum is not None else subset_max[s]
        if subset_max[s] > official:
            raise ValueError(
                f"exam {exam} {s}: items in the run are worth {subset_max[s]} points, "
                f"more than the official maximum {official}"
            )
        line = rule.pass_line(official)
        results.append(SectionResult(
            section=s, n_items=n[s], n_correct=n_correct[s], points=earned[s], subset_max=subset_max[s],
            official_max=official, line=line, margin=earned[s] - line, passed=earned[s] >= line,
            label=rule.label,
        ))
    kinki_checked = kinki_seen and rules.kinki_max is not None
    kinki_margin = rules.kinki_max - kinki_count if kinki_checked and rules.kinki_max is not None else None
    passed = all(r.passed for r in results) and (not kinki_checked or kinki_count <= (rules.kinki_max or 0))
    complete = all(r.subset_max == r.official_max for r in results)
    return ExamResult(
        exam=exam,
        sections=tuple(results),
        kinki_count=kinki_count if kinki_checked else None,
        kinki_max=rules.kinki_max,
        kinki_margin=kinki_margin,
        kinki_checked=kinki_checked,
        passed=passed,
        complete=complete,
        n_items=len(seen),
        source=rules.source,
    )


__all__ = ["ExamResult", "SectionResult", "exam_result"]
