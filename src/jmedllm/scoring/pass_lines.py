"""The built-in medical licensing exams' facts: sections, pass lines (each with its source),
official scoring exceptions, and their rules in the shared ExamRules form.

Data only (and the small functions that read it); ``jmedllm.scoring.exam`` applies them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from jmedllm.benchmarks.examrules import ExamRules, SectionRule
from jmedllm.benchmarks.igakuqa import OFFICIAL_SECTION_MAXIMA
from jmedllm.benchmarks.igakuqa import SECTIONS as BLOCK_SECTIONS

HISSHU = "hisshu"
IPPAN_RINSHO = "ippan_rinsho"
SECTIONS = (HISSHU, IPPAN_RINSHO)
SECTION_LABELS = {HISSHU: "必修", IPPAN_RINSHO: "一般+臨床"}
HISSHU_BLOCKS = frozenset(b for b, sec in BLOCK_SECTIONS.items() if sec == HISSHU)  # B, E
IPPAN_RINSHO_BLOCKS = frozenset(b for b, sec in BLOCK_SECTIONS.items() if sec == IPPAN_RINSHO)  # A, C, D, F


@dataclass(frozen=True)
class PassLines:
    """One exam's published pass criteria and section maxima."""

    exam: int
    hisshu_line: int
    hisshu_max: int
    ippan_rinsho_line: int
    ippan_rinsho_max: int
    kinki_max: int
    source: str

    def line(self, section: str) -> int:
        return self.hisshu_line if section == HISSHU else self.ippan_rinsho_line

    def maximum(self, section: str) -> int:
        return self.hisshu_max if section == HISSHU else self.ippan_rinsho_max


def _lines(exam: int, hisshu_line: int, ippan_rinsho_line: int, source: str) -> PassLines:
    maxima = OFFICIAL_SECTION_MAXIMA[exam]  # the published maxima live with the loader
    return PassLines(exam, hisshu_line, maxima[HISSHU], ippan_rinsho_line, maxima[IPPAN_RINSHO], 3, source)


_MHLW = "MHLW pass criteria as listed in shared/data/README.md"
PASS_LINES: Mapping[int, PassLines] = {
    112: _lines(112, 160, 208, _MHLW),  # of 200 / 299
    113: _lines(113, 160, 209, _MHLW),  # of 200 / 296
    114: _lines(114, 158, 217, _MHLW),  # of 197 / 299
    115: _lines(115, 160, 209, _MHLW),  # of 200 / 300
    116: _lines(116, 158, 214, _MHLW),  # of 197 / 297
    # 119th (2025): 必修 160/200, 一般+臨床 221/300 (73.7 %), 禁忌肢 3 or fewer, as reported
    # from the MHLW announcement (also tabulated "from MHLW's pass announcements" at
    # https://mama.smt.docomo.ne.jp/ranune/articles/203442/2); IgakuQA119's leaderboard uses
    # the same 200 + 300 maxima.
    # 118th (2024): 必修 160/200, 必修を除く一般+臨床 230/300, 禁忌肢 3 or fewer: the MHLW
    # announcement of 2024-03-15 as reported at http://japan.wdpp.org/ ("医師国家試験、合格率92.4%
    # 新卒の合格者は9千人を突破"). The 117th and 120th are left out: no public source with their
    # lines could be read here (add them, with the source, when one is at hand).
    118: _lines(118, 160, 230, "MHLW announcement for the 118th exam (secondary report, japan.wdpp.org)"),
    119: _lines(119, 160, 221, "MHLW announcement for the 119th exam (secondary report)"),
}


@dataclass(frozen=True)
class OfficialException:
    """An official scoring exception applied by the benchmark's own scorer.

    ``rule``: ``"all_correct"`` (every answer, even none, is counted correct) or
    ``"accept_any"`` (any one of ``accepted`` is correct).
    """

    problem_id: str
    rule: str
    accepted: tuple[frozenset[int], ...]
    note: str


OFFICIAL_EXCEPTIONS: Mapping[str, OfficialException] = {
    e.problem_id: e
    for e in (
        OfficialException("116A71", "all_correct", (), "counted correct for every candidate (IgakuQA scorer)"),
        OfficialException("112B30", "accept_any", (frozenset({0}), frozenset({3})), "a or d accepted (IgakuQA scorer)"),
        OfficialException("119E28", "accept_any", (frozenset({0}), frozenset({2})), "a or c accepted (IgakuQA119 scorer)"),
    )
}


def builtin_rules(exam: Any) -> ExamRules | None:
    """The medical licensing exam's rules in the shared :class:`ExamRules` form."""
    lines = PASS_LINES.get(exam)
    if lines is None:
        return None
    return ExamRules(
        exam=exam,
        sections=(
            SectionRule(HISSHU, SECTION_LABELS[HISSHU], tuple(sorted(HISSHU_BLOCKS)), lines.hisshu_line,
                        maximum=lines.hisshu_max),
            SectionRule(IPPAN_RINSHO, SECTION_LABELS[IPPAN_RINSHO], tuple(sorted(IPPAN_RINSHO_BLOCKS)),
                        lines.ippan_rinsho_line, maximum=lines.ippan_rinsho_max),
        ),
        kinki_max=lines.kinki_max,
        source=lines.source,
    )


def hisshu_line_from_max(maximum: int) -> int:
    """80 % of the 必修 maximum, rounded up to whole points (197 -> 158, 200 -> 160)."""
    return math.ceil(maximum * 4 / 5)
