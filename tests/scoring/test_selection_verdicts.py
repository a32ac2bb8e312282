"""Select-all (exact set, set F1 beside) and ordering (exact sequence) verdicts, hand-computed;
declared exam rules judged by the same exam_result as the built-in exams."""

from __future__ import annotations

import pytest

from jmedllm.benchmarks.examrules import ExamRules, PointsRule, SectionRule, parse_exam_rules
from jmedllm.schema import ContinuationScore, Question
from jmedllm.scoring import aggregate, score_generation, score_letter, score_loglik
from jmedllm.scoring import exam as ex
from jmedllm.scoring.exam_result import exam_result
from jmedllm.scoring.verdict import ItemVerdict

FIVE = ("p", "q", "r", "s", "t")


def select_all(answer):
    return Question("all1", "b", "当てはまるものをすべて選べ。", FIVE, frozenset(answer), 0, "ja", selection="all")


def ordering(order):
    return Question("ord1", "b", "正しい順に並べよ。", FIVE[:4], frozenset(order), 4, "ja", selection="order",
                    answer_order=tuple(order))


@pytest.mark.parametrize("output, correct, precision, recall, f1", [
    ("答え：a, c", True, 1.0, 1.0, 1.0),          # exactly the gold set
    ("答え：a", False, 1.0, 0.5, 2 / 3),          # one of two: P 1/1, R 1/2, F1 2*1*0.5/1.5
    ("答え：a, c, d", False, 2 / 3, 1.0, 0.8),    # one extra: P 2/3, R 1, F1 2*(2/3)/(5/3) = 0.8
    ("答え：b", False, 0.0, 0.0, 0.0),            # none right
])
def test_select_all_is_an_exact_set_with_f1_beside(output, correct, precision, recall, f1):
    v = score_generation(select_all({0, 2}), output)
    assert (v.correct, v.precision, v.recall) == (correct, pytest.approx(precision), recall)
    assert v.f1 == pytest.approx(f1)
    assert v.gestalt_predicted is None and v.gestalt_correct is None  # needs a number of choices to pick
    assert v.exact_match is not None  # text comparison with the gold texts in any order


@pytest.mark.parametrize("output, correct, order, f1", [
    ("答え：c, a, b, d", True, (2, 0, 1, 3), 1.0),
    ("答え：a, b, c, d", False, (0, 1, 2, 3), 1.0),   # the right choices, the wrong order: set F1 1, wrong
    ("答え：c → a → b", False, (2, 0, 1), 6 / 7),     # three of four named: P 1, R 3/4, F1 = 1.5/1.75
])
def test_ordering_is_an_exact_sequence(output, correct, order, f1):
    v = score_generation(ordering([2, 0, 1, 3]), output)
    assert (v.correct, v.predicted_order) == (correct, order)
    assert v.f1 == pytest.approx(f1)
    assert v.exact_match is None and v.gestalt_correct is None
    again = ItemVerdict.from_dict(v.to_dict())  # the order survives items.jsonl
    assert again == v and again.predicted_order == order


def test_ordering_unparsed_is_wrong_and_counted():
    v = score_generation(ordering([2, 0, 1, 3]), "わかりません")
    assert (v.correct, v.parsed, v.predicted_order) == (False, False, ())


def test_loglik_and_letter_refuse_select_all_and_ordering():
    scores = [ContinuationScore(-1.0, 1, 1)] * 5
    with pytest.raises(ValueError, match="select-all question cannot be scored by log-likelihood"):
        score_loglik(select_all({0}), scores)
    with pytest.raises(ValueError, match="ordering question cannot be scored by letter"):
        score_letter(ordering([1, 0, 2, 3]), [[-1.0]] * 4)


# ---------------------------------------------------------------------------
# declared exam rules
# ---------------------------------------------------------------------------

RULES = ExamRules(
    exam="mock", source="test",
    sections=(SectionRule("core", "Core", ("B",), line_fraction=0.75, maximum=None),
              SectionRule("rest", "Rest", ("A",), line=2)),
    kinki_max=0,
).with_maxima({"core": 4, "rest": 3})


def item(qid, block, points, answer=0, kinki=()):
    section = "core" if block == "B" else "rest"
    return Question(qid, "mock", "Q", ("x", "y", "z"), frozenset({answer}), 1, "en",
                    meta={"exam": "mock", "block": block, "section": section, "points": points, "kinki": kinki,
                          "exam_rules": RULES})


def test_declared_rules_hand_computed():
    items = [item("B1", "B", 1), item("B2", "B", 3, kinki=(2,)), item("A1", "A", 1), item("A2", "A", 1),
             item("A3", "A", 1)]
    # B1 right (1), B2 wrong (0) -> core 1 / 4, line ceil(0.75 * 4) = 3, margin -2
    # A1, A2 right (2), A3 wrong -> rest 2 / 3, line 2, margin 0; no forbidden choice
    outputs = {"B1": "a", "B2": "b", "A1": "a", "A2": "a", "A3": "c"}
    pairs = [(q, score_generation(q, outputs[q.id])) for q in items]
    r = exam_result("mock", pairs)
    assert (r.section("core").points, r.section("core").line, r.section("core").margin) == (1, 3, -2)
    assert (r.section("rest").points, r.section("rest").line, r.section("rest").passed) == (2, 2, True)
    assert (r.kinki_count, r.kinki_checked, r.passed, r.complete) == (0, True, False, True)
    # B2 right instead: core 4 / 4 passes; A3 choosing the forbidden... none on A3; B2 choosing z is kinki
    pairs = [(q, score_generation(q, {"B2": "a"}.get(q.id, outputs[q.id]))) for q in items]
    assert exam_result("mock", pairs).passed is True
    pairs = [(q, score_generation(q, {"B2": "c"}.get(q.id, outputs[q.id]))) for q in items]
    r = exam_result("mock", pairs)
    assert (r.kinki_count, r.kinki_margin, r.passed) == (1, -1, False)
    summary = aggregate(pairs, n_resamples=20)
    (entry,) = summary["exams"]
    assert entry["section_order"] == ["core", "rest"] and entry["core"]["label"] == "Core"
    assert summary["by"]["section"]["core"]["n"] == 2


def test_a_fraction_line_is_rounded_up_after_exact_arithmetic():
    assert SectionRule("h", "h", line_fraction=0.8).pass_line(200) == 160  # not 161 from 160.00000000000003
    assert SectionRule("h", "h", line_fraction=0.8).pass_line(197) == 158
    assert SectionRule("h", "h", line_fraction=0.7).pass_line(10) == 7


def test_builtin_exams_use_the_same_rules_record():
    rules = ex.builtin_rules(116)
    assert [(s.name, s.line, s.maximum) for s in rules.sections] == [("hisshu", 158, 197), ("ippan_rinsho", 214, 297)]
    assert rules.kinki_max == 3 and ex.builtin_rules(111) is None
    assert [(s.name, s.line, s.maximum) for s in ex.builtin_rules(118).sections] == [
        ("hisshu", 160, 200), ("ippan_rinsho", 230, 300)]


def test_exam_rules_yaml_errors_name_the_key():
    def fail(key, message):
        return ValueError(f"{key}: {message}")

    good = {"exam": 1, "points": 1, "sections": [{"name": "all", "line": 1}]}
    assert parse_exam_rules(good, fail).points_rules == (PointsRule(1),)
    for bad, match in [
        ({**good, "sections": []}, "sections: expected a non-empty list"),
        ({**good, "sections": [{"name": "a", "line": 1, "line_fraction": 0.5}]}, "exactly one of 'line'"),
        ({**good, "sections": [{"name": "a", "line_fraction": 1.5}]}, "from 0 to 1"),
        ({**good, "sections": [{"name": "a", "blocks": "AB", "line": 1}, {"name": "b", "blocks": "B", "line": 1}]},
         "block 'B' is in both"),
        ({**good, "points": [{"blocks": ["A"], "numbers": "5-2", "points": 1}]}, "range 5-2 is empty"),
        ({**good, "kinki_max": -1}, "kinki_max: expected a non-negative integer"),
        ({k: v for k, v in good.items() if k != "points"}, "give points per item"),
        ({**good, "pass": 1}, "pass: unknown exam-rules key"),
    ]:
        with pytest.raises(ValueError, match=match):
            parse_exam_rules(bad, fail)


def test_an_ordering_target_keeps_its_sequence():
    from jmedllm.prompts.targets import format_target

    q = ordering([2, 0, 1, 3])
    assert format_target(q, style="letter").replace(" ", "") == "c,a,b,d"
    assert format_target(q, style="text").startswith("r")  # the third choice first


def test_shuffling_an_ordering_question_remaps_its_sequence():
    from jmedllm.prompts.shuffle import permute_choices

    q = ordering([2, 0, 1, 3])  # r, p, q, s
    shuffled = permute_choices(q, (3, 2, 1, 0))  # new order: s, r, q, p
    assert [shuffled.choices[i] for i in shuffled.answer_order] == ["r", "p", "q", "s"]
    assert score_generation(shuffled, "答え：b, d, c, a").correct is True


@pytest.mark.parametrize("selection, language, style, expected", [
    ("all", "ja", "text", "当てはまる選択肢をすべて選び、選んだ選択肢の文を「、」で区切ってそのまま書いてください。"),
    ("all", "en", "letter", 'Select all options that answer the question and write their letters, separated by ", ".'),
    ("order", "ja", "letter", "選択肢を正しい順に並べ、記号をその順に「, 」で区切って書いてください。"),
    ("order", "en", "explanation", "Put the options in the correct order. Explain your reasoning step by step, then "
     'write the final answer on its own last line as "Answer: " followed by their letters in that order, '
     'separated by ", ".'),
])
def test_prompts_ask_for_all_or_the_order(selection, language, style, expected):
    from jmedllm.prompts.wording import task_sentence, terse_hint

    kw = dict(n_select=0, numeric=False, style=style, list_choices=True, language=language, selection=selection)
    assert task_sentence(**kw) == expected
    assert terse_hint(**kw).startswith({"all": ("すべて選べ", "Select all"), "order": ("正しい順", "Put them")}
                                       [selection][language == "en"])
