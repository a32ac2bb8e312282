"""Exam rules as data: sections by block, pass lines, points per item, the forbidden-choice limit.

One record, :class:`ExamRules`, describes how any exam turns item verdicts into points and a
pass / fail verdict. The built-in medical licensing exams (IgakuQA) are expressed in it by
``jmedllm.scoring.exam``; a custom mapping declares its own in a small YAML (or inline
under ``exam_rules:``), read by :func:`parse_exam_rules`::

    exam: 120                    # the exam's name or number (shown in the summary)
    source: MHLW announcement    # where the pass lines come from (shown in the summary)
    points:                      # per item: a number for all, or rules by block and number range
      - {blocks: [B, E], numbers: 1-25, points: 1}
      - {blocks: [B, E], numbers: 26-50, points: 3}
      - {points: 1}              # everything else
    points_field: pts            # or: a data field holding each item's points (wins over rules)
    sections:
      - {name: hisshu, label: 必修, blocks: [B, E], line_fraction: 0.8}
      - {name: ippan_rinsho, label: 一般+臨床, blocks: [A, C, D, F], line: 221}
    kinki_max: 3                 # at most this many forbidden-choice selections (optional)

Section maxima are the points of the items loaded (computed by the loader before any
filter, so a ``limit`` or ``text_only`` run is still judged against the whole exam), unless
a section declares ``max``. A line given as a fraction is ``ceil(fraction * maximum)``.
Nothing here imports scoring: the flow is benchmarks -> scoring.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any, Callable


@dataclass(frozen=True)
class SectionRule:
    """One section of an exam: which blocks it holds and the line a candidate must reach."""

    name: str
    label: str
    blocks: tuple[str, ...] = ()  # empty: every block (a one-section exam)
    line: int | None = None  # points
    line_fraction: float | None = None  # of the maximum
    maximum: int | None = None  # declared, else computed from the items

    def pass_line(self, maximum: int) -> int:
        """The points needed: the declared line, or the fraction of ``maximum`` rounded up."""
        if self.line is not None:
            return self.line
        assert self.line_fraction is not None
        # round first, so that 0.8 * 200 = 160.00000000000003 does not become 161
        return math.ceil(round(self.line_fraction * maximum, 9))


@dataclass(frozen=True)
class PointsRule:
    """Points for items of some blocks and a question-number range (``None`` = any)."""

    points: int
    blocks: tuple[str, ...] | None = None
    numbers: tuple[int, int] | None = None  # inclusive

    def applies(self, block: str | None, number: int | None) -> bool:
        if self.blocks is not None and block not in self.blocks:
            return False
        if self.numbers is not None and (number is None or not self.numbers[0] <= number <= self.numbers[1]):
            return False
        return True


@dataclass(frozen=True)
class ExamRules:
    """How one exam is scored. ``sections`` in print order; ``kinki_max`` None: no limit."""

    exam: int | str
    sections: tuple[SectionRule, ...]
    kinki_max: int | None = None
    source: str = ""
    points_rules: tuple[PointsRule, ...] = ()
    points_field: str | None = None
    kinki_field: str | None = None

    def section_for_block(self, block: str | None) -> SectionRule | None:
        for section in self.sections:
            if not section.blocks or (block is not None and block in section.blocks):
                return section
        return None

    def section(self, name: str) -> SectionRule:
        for section in self.sections:
            if section.name == name:
                return section
        raise KeyError(name)

    def points_for(self, block: str | None, number: int | None) -> int | None:
        for rule in self.points_rules:
            if rule.applies(block, number):
                return rule.points
        return None

    def with_maxima(self, maxima: dict[str, int]) -> "ExamRules":
        """These rules with each section's maximum set (a declared maximum is kept)."""
        sections = tuple(s if s.maximum is not None else replace(s, maximum=maxima.get(s.name, 0))
                         for s in self.sections)
        return replace(self, sections=sections)


RULE_KEYS = ("exam", "source", "points", "points_field", "kinki_field", "kinki_max", "sections")
SECTION_KEYS = ("name", "label", "blocks", "line", "line_fraction", "max")


def parse_exam_rules(values: Any, fail: Callable[[str, str], Exception]) -> ExamRules:
    """Validate a parsed YAML mapping of exam rules; ``fail(key, message)`` builds the error
    (naming the file and line of the key)."""
    if not isinstance(values, dict):
        raise fail("exam_rules", f"expected a mapping of keys ({', '.join(RULE_KEYS)}), got {values!r}")
    for key in values:
        if key not in RULE_KEYS:
            raise fail(str(key), f"unknown exam-rules key (valid: {', '.join(RULE_KEYS)})")
    exam = values.get("exam")
    if isinstance(exam, bool) or not isinstance(exam, (int, str)) or str(exam).strip() == "":
        raise fail("exam", f"required: the exam's name or number, got {exam!r}")
    if isinstance(exam, str) and exam.strip().isdigit():
        exam = int(exam)
    raw_sections = values.get("sections")
    if raw_sections is None:
        raise fail("sections", "required: a list of sections, e.g. [{name: all, line_fraction: 0.6}]")
    if not isinstance(raw_sections, list) or not raw_sections:
        raise fail("sections", f"expected a non-empty list, got {raw_sections!r}")
    sections = []
    claimed: dict[str, str] = {}
    for k, raw in enumerate(raw_sections):
        section = _section(raw, k, lambda m, k=k: fail("sections", f"section {k + 1}: {m}"))
        if any(s.name == section.name for s in sections):
            raise fail("sections", f"section name {section.name!r} given twice")
        for block in section.blocks:
            if block in claimed:
                raise fail("sections", f"block {block!r} is in both {claimed[block]!r} and {section.name!r}")
            claimed[block] = section.name
        if not section.blocks and len(raw_sections) > 1:
            raise fail("sections", f"section {section.name!r} lists no blocks; only a single section may do so")
        sections.append(section)
    kinki_max = values.get("kinki_max")
    if kinki_max is not None and (isinstance(kinki_max, bool) or not isinstance(kinki_max, int) or kinki_max < 0):
        raise fail("kinki_max", f"expected a non-negative integer, got {kinki_max!r}")
    points = values.get("points")
    points_rules: list[PointsRule] = []
    if isinstance(points, int) and not isinstance(points, bool) and points >= 0:
        points_rules.append(PointsRule(points))
    elif isinstance(points, list):
        for k, raw in enumerate(points):
            points_rules.append(_points_rule(raw, lambda m, k=k: fail("points", f"rule {k + 1}: {m}")))
    elif points is not None:
        raise fail("points", f"expected a number of points or a list of rules, got {points!r}")
    for key in ("points_field", "kinki_field", "source"):
        if values.get(key) is not None and (not isinstance(values[key], str) or not values[key].strip()):
            raise fail(key, f"expected a non-empty string, got {values[key]!r}")
    if not points_rules and values.get("points_field") is None:
        raise fail("points", "give points per item: a number, rules by block and number, or points_field")
    return ExamRules(
        exam=exam,
        sections=tuple(sections),
        kinki_max=kinki_max,
        source=str(values.get("source") or "declared by the mapping"),
        points_rules=tuple(points_rules),
        points_field=values.get("points_field"),
        kinki_field=values.get("kinki_field"),
    )


def _section(raw: Any, k: int, fail: Callable[[str], Exception]) -> SectionRule:
    if not isinstance(raw, dict):
        raise fail(f"expected a mapping with name, blocks and line or line_fraction, got {raw!r}")
    unknown = [key for key in raw if key not in SECTION_KEYS]
    if unknown:
        raise fail(f"unknown key {unknown[0]!r} (valid: {', '.join(SECTION_KEYS)})")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise fail(f"'name' must be a non-empty string, got {name!r}")
    blocks = _blocks(raw.get("blocks"), fail) or ()
    line, fraction, maximum = raw.get("line"), raw.get("line_fraction"), raw.get("max")
    if (line is None) == (fraction is None):
        raise fail("give exactly one of 'line' (points) or 'line_fraction' (0-1 of the maximum)")
    if line is not None and (isinstance(line, bool) or not isinstance(line, int) or line < 0):
        raise fail(f"'line' must be a non-negative integer, got {line!r}")
    if fraction is not None and (isinstance(fraction, bool) or not isinstance(fraction, (int, float))
                                 or not 0 <= fraction <= 1):
        raise fail(f"'line_fraction' must be a number from 0 to 1, got {fraction!r}")
    if maximum is not None and (isinstance(maximum, bool) or not isinstance(maximum, int) or maximum < 0):
        raise fail(f"'max' must be a non-negative integer, got {maximum!r}")
    return SectionRule(name.strip(), str(raw.get("label") or name).strip(), blocks, line,
                       None if fraction is None else float(fraction), maximum)


def _blocks(raw: Any, fail: Callable[[str], Exception]) -> tuple[str, ...] | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = [p for p in re.split(r"[,\s]+", raw) if p] if ("," in raw or " " in raw) else list(raw)
    if not isinstance(raw, list) or not raw or not all(isinstance(b, (str, int)) and str(b).strip() for b in raw):
        raise fail(f"'blocks' must be a list of block names, got {raw!r}")
    return tuple(str(b).strip().upper() for b in raw)


def _points_rule(raw: Any, fail: Callable[[str], Exception]) -> PointsRule:
    if not isinstance(raw, dict) or "points" not in raw:
        raise fail(f"expected {{blocks: [..], numbers: 1-25, points: 1}}, got {raw!r}")
    unknown = [key for key in raw if key not in ("blocks", "numbers", "points")]
    if unknown:
        raise fail(f"unknown key {unknown[0]!r} (valid: blocks, numbers, points)")
    points = raw["points"]
    if isinstance(points, bool) or not isinstance(points, int) or points < 0:
        raise fail(f"'points' must be a non-negative integer, got {points!r}")
    numbers = raw.get("numbers")
    span: tuple[int, int] | None = None
    if numbers is not None:
        text = str(numbers).strip()
        m = re.fullmatch(r"(\d+)\s*(?:-\s*(\d+))?", text)
        if not m:
            raise fail(f"'numbers' must be N or N-M, got {numbers!r}")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise fail(f"'numbers' range {text} is empty")
        span = (lo, hi)
    return PointsRule(points, _blocks(raw.get("blocks"), fail), span)


__all__ = ["ExamRules", "PointsRule", "SectionRule", "parse_exam_rules"]
