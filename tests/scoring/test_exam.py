"""IgakuQA exam rules: sections, points, exceptions, kinki, pass lines and margins."""

import json

import pytest

from jmedllm.schema import LETTERS, Question
from jmedllm.scoring import exam as ex
from jmedllm.scoring.exam_result import exam_result
from jmedllm.scoring.verdict import score_generation

CHOICES = ("選択肢あ", "選択肢い", "選択肢う", "選択肢え", "選択肢お")


def item(exam, block, number, points, *, answer=(0,), kinki=None, text_only=True, choices=CHOICES):
    meta = {"exam": exam, "block": block, "points": points, "text_only": text_only}
    if kinki is not None:
        meta["kinki"] = tuple(kinki)
    return Question(f"{exam}{block}{number}", "igakuqa", "正しいのはどれか。", choices, frozenset(answer), 1, "ja",
                    meta=meta)


def full_exam_116(kinki=(4,)):
    """A synthetic 116th exam whose points sum to the official maxima.

    必修 (B, E): B = 25 x 1 + 25 x 3 = 100; E = 25 x 1 + 24 x 3 + 1 excluded (0) = 97; total 197.
    一般+臨床 (A, C, D, F): 4 x 75 = 300 items of 1 point, 3 of them excluded (0): 297.
    Every item's answer is choice a; every item lists choice e as forbidden.
    """
    items = []
    for block in "BE":
        for n in range(1, 51):
            points = 1 if n <= 25 else 3
            if block == "E" and n == 50:
                points = 0
            items.append(item(116, block, n, points, kinki=kinki))
    for block in "ACDF":
        for n in range(1, 76):
            points = 0 if (block == "A" and n <= 3) else 1
            items.append(item(116, block, n, points, kinki=kinki))
    return items


def answer(items, right, kinki_hits=()):
    """Verdicts: items whose id is in ``right`` answered "a" (correct), others "b";
    items in ``kinki_hits`` answered "e" (wrong and forbidden)."""
    out = []
    for q in items:
        text = "e" if q.id in kinki_hits else ("a" if q.id in right else "b")
        out.append((q, score_generation(q, text)))
    return out


def test_official_maxima_and_lines():
    # The brief's published lines, and 80 % of the 必修 maximum rounded up: 0.8 * 197 = 157.6 -> 158.
    assert [(p.hisshu_line, p.hisshu_max, p.ippan_rinsho_line, p.ippan_rinsho_max)
            for p in (ex.PASS_LINES[e] for e in (112, 113, 114, 115, 116))] == [
        (160, 200, 208, 299), (160, 200, 209, 296), (158, 197, 217, 299), (160, 200, 209, 300), (158, 197, 214, 297)]
    for lines in ex.PASS_LINES.values():
        assert ex.hisshu_line_from_max(lines.hisshu_max) == lines.hisshu_line
        assert lines.kinki_max == 3
    assert ex.hisshu_line_from_max(197) == 158 and ex.hisshu_line_from_max(200) == 160


def test_sections_and_points():
    assert ex.section_of(item(116, "B", 1, 1)) == ex.HISSHU
    assert ex.section_of(item(116, "E", 1, 3)) == ex.HISSHU
    assert {ex.section_of(item(116, b, 1, 1)) for b in "ACDF"} == {ex.IPPAN_RINSHO}
    q = Question("x", "igakuqa", "t", CHOICES, {0}, 1, "ja", meta={"exam": 116, "section": "hisshu", "points": 3})
    assert ex.section_of(q) == ex.HISSHU and ex.points_of(q) == 3
    bad = Question("x", "igakuqa", "t", CHOICES, {0}, 1, "ja", meta={"exam": 116, "section": "hisshu", "block": "A"})
    with pytest.raises(ValueError, match="contradicts"):
        ex.section_of(bad)
    with pytest.raises(ValueError, match="A-F"):
        ex.section_of(item(116, "G", 1, 1))
    with pytest.raises(ValueError, match="points"):
        ex.points_of(Question("x", "igakuqa", "t", CHOICES, {0}, 1, "ja", meta={"exam": 116, "points": "1"}))


def test_section_maxima_of_a_full_exam_equal_the_official_ones():
    items = full_exam_116()
    assert ex.section_maxima(items) == {116: {"hisshu": 197, "ippan_rinsho": 297}}
    assert ex.check_section_maxima(items) == {116: {"hisshu": 197, "ippan_rinsho": 297}}
    with pytest.raises(ValueError, match="official maximum is 197"):
        ex.check_section_maxima(items[1:])  # B1 (1 point) missing: 196


def test_section_maxima_of_the_shared_igakuqa_data(data_root):
    """Summing ``points`` per section over the distributed files gives the official maxima."""
    questions = []
    for path in sorted((data_root / "igakuqa" / "data").glob("*/*.jsonl")):
        if path.stem.endswith(("_translate", "_metadata")):
            continue
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            row = json.loads(line)
            pid = row["problem_id"]  # e.g. "116A71"
            questions.append(Question(pid, "igakuqa", row["problem_text"], tuple(row["choices"]), frozenset(), 1,
                                      "ja", meta={"exam": int(pid[:3]), "block": pid[3], "points": int(row["points"])}))
    assert len(questions) == 2000
    assert ex.check_section_maxima(questions) == {
        112: {"hisshu": 200, "ippan_rinsho": 299},
        113: {"hisshu": 200, "ippan_rinsho": 296},
        114: {"hisshu": 197, "ippan_rinsho": 299},
        115: {"hisshu": 200, "ippan_rinsho": 300},
        116: {"hisshu": 197, "ippan_rinsho": 297},
    }


def test_problem_id_and_exceptions():
    q = item(116, "A", 71, 1)
    assert ex.problem_id(q) == "116A71"
    for raw in ("igakuqa/116A71", "116-A-71", "ja:116A71"):
        q2 = Question(raw, "igakuqa", "t", CHOICES, {4}, 1, "ja", meta={"exam": 116})
        assert ex.problem_id(q2) == "116A71"
        assert ex.is_counted_correct_for_all(q2)
    assert ex.problem_id(Question("116A71", "medqa", "t", CHOICES, {0}, 1, "en")) is None  # not an exam item
    q30 = Question("112B30", "igakuqa", "t", CHOICES, {0, 3}, 1, "ja", meta={"exam": 112})
    assert ex.accepted_answer_sets(q30) == (frozenset({0}), frozenset({3}))
    assert ex.accepted_answer_sets(item(116, "A", 1, 1, answer=(2,))) == (frozenset({2}),)
    q28 = Question("119E28", "igakuqa119", "t", CHOICES, {0, 2}, 1, "ja", meta={"exam": 119})
    assert ex.accepted_answer_sets(q28) == (frozenset({0}), frozenset({2}))


def test_kinki_selection_counts_one_per_item():
    q = item(112, "A", 27, 1, kinki=(2, 3, 4))  # 112A27: kinki "cde"
    assert ex.selects_kinki(q, frozenset({3})) is True
    assert ex.selects_kinki(q, frozenset({2, 3})) is True  # two forbidden choices, one selection
    assert ex.selects_kinki(q, frozenset({0})) is False
    assert ex.selects_kinki(q, frozenset()) is False  # unparsed selects nothing
    assert ex.selects_kinki(item(112, "A", 1, 1), frozenset({4})) is None  # no kinki metadata
    with pytest.raises(ValueError, match="kinki"):
        ex.kinki_of(item(112, "A", 1, 1, kinki=(7,)))


def ids(items, blocks, numbers):
    return {q.id for q in items if q.meta["block"] in blocks and int(q.id[4:]) in numbers}


def test_pass_exactly_on_every_line():
    items = full_exam_116()
    # 必修: all 50 one-point items (B1-25, E1-25) = 50 points, plus 36 three-point items
    # (B26-50 = 25, E26-36 = 11) = 108 points: 158 = line 158, margin 0.
    right = ids(items, "BE", range(1, 26)) | ids(items, "B", range(26, 51)) | ids(items, "E", range(26, 37))
    # 一般+臨床: A4-75 (72) + C1-75 (75) + D1-67 (67) = 214 = line 214, margin 0.
    right |= ids(items, "A", range(4, 76)) | ids(items, "C", range(1, 76)) | ids(items, "D", range(1, 68))
    # 3 forbidden selections (F1-F3 answered "e"): margin 3 - 3 = 0.
    kinki_hits = ids(items, "F", range(1, 4))
    result = exam_result(116, answer(items, right, kinki_hits))
    assert (result.hisshu.points, result.hisshu.line, result.hisshu.margin) == (158, 158, 0)
    assert (result.ippan_rinsho.points, result.ippan_rinsho.line, result.ippan_rinsho.margin) == (214, 214, 0)
    assert (result.kinki_count, result.kinki_margin) == (3, 0)
    assert result.passed and result.complete
    assert result.hisshu.n_correct == 50 + 36 and result.ippan_rinsho.n_correct == 214
    assert result.hisshu.official_rate == pytest.approx(158 / 197)
    assert result.n_items == 400


def test_fail_by_one_point_or_one_kinki():
    items = full_exam_116()
    base = (ids(items, "BE", range(1, 26)) | ids(items, "B", range(26, 51)) | ids(items, "E", range(26, 37))
            | ids(items, "A", range(4, 76)) | ids(items, "C", range(1, 76)) | ids(items, "D", range(1, 68)))
    # one 1-point 必修 item wrong: 157 < 158, margin -1
    r = exam_result(116, answer(items, base - {"116B1"}))
    assert (r.hisshu.points, r.hisshu.margin, r.hisshu.passed, r.passed) == (157, -1, False, False)
    # one 一般 item wrong: 213 < 214
    r = exam_result(116, answer(items, base - {"116C1"}))
    assert (r.ippan_rinsho.points, r.ippan_rinsho.margin, r.passed) == (213, -1, False)
    # four forbidden selections: 4 > 3, margin -1
    r = exam_result(116, answer(items, base, ids(items, "F", range(1, 5))))
    assert (r.kinki_count, r.kinki_margin, r.passed) == (4, -1, False)
    # an excluded item (E50, 0 points) answered right or wrong changes nothing
    r1 = exam_result(116, answer(items, base | {"116E50"}))
    r2 = exam_result(116, answer(items, base - {"116E50"}))
    assert r1.hisshu.points == r2.hisshu.points == 158


def test_subset_uses_official_maxima_and_counts_missing_items_wrong():
    items = full_exam_116()
    # A text-only subset: 必修 B1-B50 only (100 points), 一般 A4-A75 only (72 points), all answered right.
    subset = [q for q in items if q.id in ids(items, "B", range(1, 51)) | ids(items, "A", range(4, 76))]
    r = exam_result(116, answer(subset, {q.id for q in subset}))
    # subset score: 100 / 100 and 72 / 72 ...
    assert (r.hisshu.points, r.hisshu.subset_max, r.hisshu.subset_rate) == (100, 100, 1.0)
    assert (r.ippan_rinsho.points, r.ippan_rinsho.subset_max) == (72, 72)
    # ... full-exam verdict: 100 / 197 (margin 100 - 158 = -58), 72 / 297 (72 - 214 = -142): fail.
    assert (r.hisshu.official_max, r.hisshu.margin) == (197, -58)
    assert (r.ippan_rinsho.official_max, r.ippan_rinsho.margin) == (297, -142)
    assert not r.passed and not r.complete
    assert r.n_items == 50 + 72


def test_official_exception_items_in_an_exam():
    # 116A71 counted correct for everyone, even when unparsed; 1 point.
    q71 = item(116, "A", 71, 1, answer=(4,), kinki=())
    v = score_generation(q71, "わかりません")
    assert v.correct and v.points == 1 and v.exception == "all_correct" and not v.parsed
    # 112B30 (3 points): "a" or "d" accepted; "a, d" is not; "e" is forbidden.
    q30 = Question("112B30", "igakuqa", "t", CHOICES, {0, 3}, 1, "ja",
                   meta={"exam": 112, "block": "B", "points": 3, "kinki": (4,)})
    assert score_generation(q30, "a").correct and score_generation(q30, "d").points == 3
    assert not score_generation(q30, "a, d").correct
    assert score_generation(q30, "e").kinki_selected
    r = exam_result(112, [(q30, score_generation(q30, "d"))])
    assert r.hisshu.points == 3 and r.hisshu.subset_max == 3


def test_exam_without_kinki_metadata_is_judged_on_points_only():
    # IgakuQA119 carries no kinki lists: the verdict says so instead of claiming 0 selections.
    q = item(119, "A", 1, 1)
    r = exam_result(119, [(q, score_generation(q, "a"))])
    assert r.kinki_checked is False and r.kinki_count is None and r.kinki_margin is None
    assert (r.hisshu.official_max, r.ippan_rinsho.official_max) == (200, 300)


def test_exam_result_rejects_bad_input():
    q = item(116, "A", 5, 1)
    v = score_generation(q, "a")
    with pytest.raises(ValueError, match="twice"):
        exam_result(116, [(q, v), (q, v)])
    with pytest.raises(ValueError, match="exam 116 given to exam 115"):
        exam_result(115, [(q, v)])
    with pytest.raises(ValueError, match="no official pass lines"):
        exam_result(111, [])
    heavy = item(116, "B", 1, 198)
    with pytest.raises(ValueError, match="more than the official maximum"):
        exam_result(116, [(heavy, score_generation(heavy, "a"))])


def test_numeric_exam_item_points():
    q = Question("116F74", "igakuqa", "オッズ比を計算せよ。解答：①.②", (), frozenset(), 0, "ja",
                 numeric_answer="0.4", meta={"exam": 116, "block": "F", "points": 1})
    assert score_generation(q, "答え：0.4").points == 1
    assert score_generation(q, "答え：4").points == 0


def test_letters_helper():
    assert ex.letters_of({2, 0}) == "ac" and LETTERS[:2] == "ab"
