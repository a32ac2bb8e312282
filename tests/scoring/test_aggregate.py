"""Aggregation: group means by hand, exam entries, determinism, Markdown."""

import json

import pytest

from jmedllm.schema import Question
from jmedllm.scoring.aggregate import aggregate, summary_markdown
from jmedllm.scoring.verdict import score_generation

JA = ("夜盲を自覚する。", "変視症を自覚する。", "自然治癒することが多い。", "蛍光眼底造影が有用である。",
      "光干渉断層計〈OCT〉が有用である。")
EN = ("Kawasaki disease", "Streptococcal infection", "EB virus infection", "Adenovirus infection",
      "Parvovirus B19 infection")


def scored():
    """Four items whose every metric is known by hand.

    Q1 igakuqa/ja 116A1 (一般, 1 pt, kinki e), gold a, "夜盲を自覚する": right; exact 1; Gestalt 1;
       Gestalt choice a (right); no kinki.
    Q2 igakuqa/ja 116B1 (必修, 1 pt, kinki e), gold b, "e": wrong; exact 0; Gestalt 0 ("e" shares
       no character with any Japanese choice); Gestalt choice none (wrong); kinki selected.
    Q3 medqa/en, gold a, "Kawasaki disease": right; exact 1; Gestalt 1; Gestalt right.
    Q4 medqa/en, gold b, "?": unparsed, wrong; exact 0; Gestalt 0; Gestalt choice none (wrong).
    """
    q1 = Question("116A1", "igakuqa", "t", JA, {0}, 1, "ja",
                  meta={"exam": 116, "block": "A", "points": 1, "kinki": (4,), "category": "眼科", "text_only": True})
    q2 = Question("116B1", "igakuqa", "t", JA, {1}, 1, "ja",
                  meta={"exam": 116, "block": "B", "points": 1, "kinki": (4,), "category": "眼科", "text_only": False})
    q3 = Question("m1", "medqa", "t", EN, {0}, 1, "en")
    q4 = Question("m2", "medqa", "t", EN, {1}, 1, "en")
    return [(q1, score_generation(q1, "夜盲を自覚する")), (q2, score_generation(q2, "e")),
            (q3, score_generation(q3, "Kawasaki disease")), (q4, score_generation(q4, "?"))]


def test_overall_means_by_hand():
    s = aggregate(scored(), seed=0, n_resamples=500)
    o = s["overall"]
    assert (s["n_items"], o["n"], o["unparsed"], o["kinki_selected"]) == (4, 4, 1, 1)
    m = {k: v["mean"] for k, v in o["metrics"].items()}
    # accuracy (1 + 0 + 1 + 0) / 4; exact match 2/4; Gestalt (1 + 0 + 1 + 0) / 4; Gestalt accuracy 2/4;
    # F1 (1 + 0 + 1 + 0) / 4; kinki rate over the 2 items with kinki lists: 1/2.
    assert m == pytest.approx({"accuracy": 0.5, "exact_match": 0.5, "gestalt": 0.5, "gestalt_accuracy": 0.5,
                               "f1": 0.5, "precision": 0.5, "recall": 0.5, "kinki_rate": 0.5})
    assert o["metrics"]["kinki_rate"]["n"] == 2
    assert "accuracy_norm" not in o["metrics"]  # no log-likelihood items
    assert o["methods"] == {"choice_text": 2, "label_only": 1, "unparsed": 1}
    for v in o["metrics"].values():
        assert v["low"] <= v["mean"] <= v["high"]


def test_groups_by_hand():
    s = aggregate(scored(), seed=0, n_resamples=500)
    by = s["by"]
    assert set(by) == {"benchmark", "benchmark_language", "language", "section", "category", "n_select", "text_only"}
    assert by["benchmark"]["igakuqa"]["metrics"]["accuracy"]["mean"] == 0.5  # Q1 right, Q2 wrong
    assert by["benchmark_language"]["medqa/en"]["unparsed"] == 1
    # one item per section: the interval of a single value is that value
    assert by["section"]["ippan_rinsho"]["metrics"]["accuracy"] == {"mean": 1.0, "low": 1.0, "high": 1.0, "n": 1}
    assert by["section"]["hisshu"]["metrics"]["accuracy"] == {"mean": 0.0, "low": 0.0, "high": 0.0, "n": 1}
    assert set(by["section"]) == {"hisshu", "ippan_rinsho"}  # medqa items have no section
    assert by["category"]["眼科"]["n"] == 2
    assert by["text_only"]["true"]["n"] == 1 and by["text_only"]["false"]["n"] == 1
    assert by["n_select"]["1"]["n"] == 4


def test_exam_entry():
    s = aggregate(scored(), seed=0, n_resamples=500)
    [e] = s["exams"]
    assert (e["benchmark"], e["language"], e["exam"], e["n_items"]) == ("igakuqa", "ja", 116, 2)
    # 一般: Q1 right, 1 point of 297, line 214 -> margin 1 - 214 = -213; 必修: 0 of 197, margin -158
    assert (e["ippan_rinsho"]["points"], e["ippan_rinsho"]["official_max"], e["ippan_rinsho"]["margin"]) == (1, 297, -213)
    assert (e["hisshu"]["points"], e["hisshu"]["official_max"], e["hisshu"]["margin"]) == (0, 197, -158)
    assert e["ippan_rinsho"]["subset_rate"] == 1.0 and e["hisshu"]["subset_rate"] == 0.0
    assert e["ippan_rinsho"]["points_ci"] == {"low": 1.0, "high": 1.0}
    assert (e["kinki_count"], e["kinki_margin"], e["passed"], e["complete"]) == (1, 2, False, False)


def test_deterministic_json_and_order_independent():
    items = scored()
    a = aggregate(items, seed=3, n_resamples=300)
    b = aggregate(list(reversed(items)), seed=3, n_resamples=300)
    assert a == b
    assert json.loads(json.dumps(a, ensure_ascii=False, allow_nan=False)) == a


def test_group_numbers_do_not_depend_on_other_groups():
    items = scored()
    alone = aggregate(items[2:], seed=1, n_resamples=300)["by"]["benchmark"]["medqa"]
    together = aggregate(items, seed=1, n_resamples=300)["by"]["benchmark"]["medqa"]
    assert alone == together


def test_aggregate_rejects_bad_input():
    items = scored()
    with pytest.raises(ValueError, match="twice"):
        aggregate(items + items[:1])
    with pytest.raises(ValueError, match="paired with question"):
        aggregate([(items[0][0], items[1][1])])
    with pytest.raises(ValueError, match="at least one"):
        aggregate([])


def test_summary_markdown():
    md = summary_markdown(aggregate(scored(), seed=0, n_resamples=200))
    assert md.startswith("# Summary")
    assert "| accuracy | 50.0 [" in md
    assert "## By benchmark" in md and "| medqa | 2 | 1 |" in md
    assert "| 116 | igakuqa | ja | 2 | 必修 | 0 [0, 0] / 197 (run max 1) | 158 | -158 |" in md
    assert "|  |  |  |  | 一般+臨床 | 1 [1, 1] / 297 (run max 1) | 214 | -213 |" in md
    assert "1 (max 3)" in md and "FAIL (partial run)" in md


def test_exam_rules_apply_only_to_medical_exams_with_points():
    from jmedllm.schema import Question
    from jmedllm.scoring import aggregate, score_generation, summary_markdown

    # IgakuQA119: an exam with pass lines but no points in its source -> no verdict, said so
    q119 = Question("119A1", "igakuqa119", "誤っているのはどれか。", ("x", "y", "z"), frozenset({1}), 1, "ja",
                    meta={"exam": 119, "block": "A", "section": "ippan_rinsho"})
    # YakugakuQA: the pharmacist exam (its own sections and rules) -> plain items
    q109 = Question("109A001", "yakugakuqa", "どれか。1つ選べ。", ("x", "y", "z"), frozenset({0}), 1, "ja",
                    meta={"exam": 109, "block": "A", "section": "hissu", "points": 2})
    v119, v109 = score_generation(q119, "b"), score_generation(q109, "a")
    assert (v119.correct, v119.points, v119.points_possible) == (True, None, None)
    assert (v109.correct, v109.points, v109.points_possible) == (True, None, None)
    summary = aggregate([(q119, v119), (q109, v109)], n_resamples=50)
    assert summary["exams"] == [] and summary["exams_without_points"] == [119]
    assert summary["overall"]["metrics"]["accuracy"]["mean"] == 1.0
    # never dropped silently: each exam without a verdict is a line of the summary, with its reason
    assert summary["exams_without_verdict"] == [
        {"benchmark": "igakuqa119", "exam": 119, "reason": "the source gives no points per item"},
        {"benchmark": "yakugakuqa", "exam": 109, "reason": "no pass lines known for exam 109"}]
    assert "exam 119 (igakuqa119): the source gives no points per item" in summary_markdown(summary)
    assert "exam 109 (yakugakuqa): no pass lines known for exam 109" in summary_markdown(summary)
    assert summary["by"]["section"]["hissu"]["n"] == 1 and summary["by"]["section"]["ippan_rinsho"]["n"] == 1
