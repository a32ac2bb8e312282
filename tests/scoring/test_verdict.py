"""Item verdicts: every metric of one item, computed by hand."""

import json
import math

import pytest

from jmedllm.schema import ContinuationScore, Question
from jmedllm.scoring.verdict import ItemVerdict, score_generation, score_letter, score_loglik

JA = ("夜盲を自覚する。", "変視症を自覚する。", "自然治癒することが多い。", "蛍光眼底造影が有用である。",
      "光干渉断層計〈OCT〉が有用である。")


def q116a3(**meta):
    return Question("116A3", "igakuqa", "中心性漿液性脈絡網膜症について誤っているのはどれか。", JA, {0}, 1, "ja",
                    meta={"exam": 116, "block": "A", "points": 1, "kinki": (), **meta})


def select2():
    return Question("x2", "jjsimqa", "正しいのはどれか。2つ選べ。", JA, {0, 2}, 2, "ja")


def test_generation_letter_with_choice_text():
    v = score_generation(q116a3(), "a. 夜盲を自覚する。")
    assert (v.predicted, v.method, v.correct, v.f1) == (frozenset({0}), "leading_label", True, 1.0)
    # label "a. " and trailing 。 normalised away: text equals choice a exactly
    assert v.exact_match is True and v.gestalt == 1.0
    assert v.gestalt_predicted == frozenset({0}) and v.gestalt_correct is True
    assert (v.points, v.points_possible, v.kinki_selected) == (1, 1, False)


def test_generation_partial_text():
    v = score_generation(q116a3(), "夜盲")
    # no label and no whole choice text: unparsed, wrong, zero set credit
    assert (v.parsed, v.method, v.correct, v.f1, v.points) == (False, "unparsed", False, 0.0, 0)
    # Gestalt: "夜盲" (2) vs "夜盲を自覚する" (7): block "夜盲" -> 2 * 2 / 9 = 0.444
    assert v.exact_match is False
    assert v.gestalt == pytest.approx(4 / 9)
    # ... and choice a is the closest text, so Gestalt-based accuracy counts it right
    assert v.gestalt_correct is True


def test_generation_select_two_partial_credit():
    v = score_generation(select2(), "a, b")
    # gold {a, c}, predicted {a, b}: precision 1/2, recall 1/2, F1 0.5
    assert (v.correct, v.precision, v.recall, v.f1) == (False, 0.5, 0.5, 0.5)
    assert v.kinki_selected is None and v.points is None  # not an exam item


def test_generation_select_two_texts():
    v = score_generation(select2(), "自然治癒することが多い、夜盲を自覚する")
    assert v.predicted == frozenset({0, 2}) and v.correct and v.exact_match and v.gestalt == 1.0
    assert v.gestalt_predicted == frozenset({0, 2})


def test_generation_think_block_does_not_feed_the_text_metrics():
    v = score_generation(q116a3(), "<think>変視症を自覚する、は典型的…</think>夜盲を自覚する。")
    assert v.correct and v.exact_match and v.gestalt == 1.0


def test_first_line_only_compatibility():
    out = "b\n答え：a"
    default = score_generation(q116a3(), out)
    compat = score_generation(q116a3(), out, first_line_only=True)
    assert default.correct and default.predicted == frozenset({0})
    assert not compat.correct and compat.predicted == frozenset({1}) and compat.first_line_only


def test_kinki_selected():
    q = q116a3(kinki=(3,))
    assert score_generation(q, "d").kinki_selected is True
    assert score_generation(q, "a").kinki_selected is False
    assert score_generation(q, "わからない").kinki_selected is False


def test_numeric_generation():
    q = Question("116F74", "igakuqa", "オッズ比を計算せよ。解答：①.②", (), frozenset(), 0, "ja",
                 numeric_answer="0.4", meta={"exam": 116, "block": "F", "points": 1})
    v = score_generation(q, "0.4")
    # gold 0.4 (the key "04" under ①.②, as the loader resolves it); the whole answer is the number: exact match; the Gestalt
    # score compares "0.4" with str(Decimal("0.4")) = "0.4": 1.0.
    assert (v.correct, v.exact_match, v.gestalt, v.numeric_predicted, v.method) == (
        True, True, 1.0, "0.4", "number_only")
    v = score_generation(q, "計算すると答えは0.4です。")
    assert (v.correct, v.exact_match, v.method) == (True, False, "answer_statement")
    v = score_generation(q, "わからない")
    assert (v.correct, v.parsed, v.gestalt_correct, v.f1) == (False, False, None, None)


def cs(logprob, n_chars):
    return ContinuationScore(logprob=logprob, n_tokens=1, n_chars=n_chars)


def test_loglik_verdict():
    # logprobs -10, -8, -9, -12, -11; the choice texts have 8, 9, 12, 13, 18 characters
    # (acc_norm divides by the choice text's length, not by the continuation's n_chars).
    # acc: argmax = b (-8). acc_norm: -1.25, -0.889, -0.75, -0.923, -0.611 -> e.
    assert [len(c) for c in JA] == [8, 9, 12, 13, 18]
    scores = [cs(-10, 5), cs(-8, 2), cs(-9, 3), cs(-12, 6), cs(-11, 11)]
    v = score_loglik(q116a3(kinki=(1,)), scores)
    assert (v.predicted, v.correct, v.predicted_norm, v.correct_norm) == (frozenset({1}), False, frozenset({4}), False)
    assert v.kinki_selected is True and v.exact_match is None and v.mode == "loglik"
    # gold a: -7.5 / 8 = -0.9375 is still below e's -0.611; -4 / 8 = -0.5 makes a best both ways
    scores[0] = cs(-4, 50)
    v = score_loglik(q116a3(), scores)
    assert (v.correct, v.correct_norm) == (True, True)


def test_loglik_acc_norm_leaves_out_the_target_delimiter():
    # English continuations are " " + choice. lm-evaluation-harness divides by len(choice):
    # " ab": -5 / 2 = -2.5, " abcd": -9.5 / 4 = -2.375 -> b. Dividing by the continuation's
    # n_chars (3 and 5) would give -1.667 and -1.9 -> a.
    q = Question("en1", "medqa", "Which?", ("ab", "abcd"), {1}, 1, "en")
    v = score_loglik(q, [cs(-5, 3), cs(-9.5, 5)])
    assert (v.predicted, v.correct) == (frozenset({0}), False)
    assert (v.predicted_norm, v.correct_norm) == (frozenset({1}), True)


def test_loglik_verdict_errors():
    with pytest.raises(ValueError, match="4 log-likelihood scores for 5 choices"):
        score_loglik(q116a3(), [cs(-1, 1)] * 4)
    numeric = Question("n", "igakuqa", "t", (), frozenset(), 0, "ja", numeric_answer="1")
    with pytest.raises(ValueError, match="numeric item"):
        score_loglik(numeric, [])


def test_letter_verdict():
    # a: -1 and -1 -> -1 + ln 2 = -0.307; c: -0.5; others -3: a wins.
    variants = [[-1.0, -1.0], [-3.0], [-0.5], [-3.0], [-3.0]]
    v = score_letter(q116a3(), variants)
    assert (v.predicted, v.correct, v.method) == (frozenset({0}), True, "letter_logsumexp")
    # select-2: top two are a (-0.307) and c (-0.5) = gold {a, c}
    assert score_letter(select2(), variants).correct


def test_exception_116a71_all_correct():
    q = Question("116A71", "igakuqa", "可能性が最も低い疾患はどれか。", ("川崎病", "溶連菌感染症", "EBウイルス感染症",
                 "アデノウイルス感染症", "パルボウイルスB19感染症"), {4}, 1, "ja",
                 meta={"exam": 116, "block": "A", "points": 1})
    v = score_generation(q, "a")
    assert v.correct and v.exception == "all_correct" and v.points == 1
    # text metrics stay similarities to the gold text "パルボウイルスB19感染症"
    assert v.exact_match is False
    assert score_loglik(q, [cs(-1, 1)] * 5).correct_norm is True


def test_exception_112b30_accepts_a_or_d():
    q = Question("112B30", "igakuqa", "対応として正しいのはどれか。", ("帝王切開を行う。", "子宮頸管縫縮術を行う。",
                 "翌日の受診を指示し帰宅させる。", "β2刺激薬の点滴静注を開始する。", "オキシトシンの点滴静注を開始する。"),
                 {0, 3}, 1, "ja", meta={"exam": 112, "block": "B", "points": 3, "kinki": (4,)})
    d = score_generation(q, "β2刺激薬の点滴静注を開始する。")
    assert d.correct and d.exact_match and d.gestalt == 1.0 and d.gestalt_correct and d.f1 == 1.0
    both = score_generation(q, "a, d")
    # {a, d} is neither {a} nor {d}: wrong; best F1 = 2 * (1/2) * 1 / (3/2) = 2/3
    assert not both.correct and both.f1 == pytest.approx(2 / 3)


def test_to_dict_round_trips_through_json():
    v = score_generation(select2(), "a, b")
    d = json.loads(json.dumps(v.to_dict(), ensure_ascii=False))
    assert d["predicted"] == [0, 1] and d["predicted_letters"] == "ab"
    assert ItemVerdict.from_dict(d) == v
    w = score_loglik(q116a3(), [cs(-1, 1)] * 5)
    assert ItemVerdict.from_dict(json.loads(json.dumps(w.to_dict()))) == w


def test_from_dict_rejects_unknown_or_missing_fields():
    d = score_generation(q116a3(), "a").to_dict()
    with pytest.raises(ValueError, match="unknown fields"):
        ItemVerdict.from_dict({**d, "acuracy": 1})
    del d["correct"]
    with pytest.raises(ValueError, match="missing fields"):
        ItemVerdict.from_dict(d)


def test_logprobs_are_finite_in_to_dict():
    v = score_letter(q116a3(), [[-math.inf, -1.0]] + [[-2.0]] * 4)
    json.dumps(v.to_dict(), allow_nan=False)


def test_asking_for_more_answers_than_choices_is_an_error():
    q = Question("bad", "x", "3つ選べ。", ("p", "q"), {0}, 3, "ja")
    with pytest.raises(ValueError, match="bad: asks for 3 of 2 choices"):
        score_generation(q, "a")


def test_generation_answer_pattern_from_the_call_or_the_question():
    out = "選んだのは b。答え：c"
    pattern = r"選んだのは\s*(?P<answer>[a-e])"
    v = score_generation(q116a3(), out, answer_pattern=pattern)
    assert (v.predicted, v.method, v.correct) == (frozenset({1}), "answer_pattern", False)
    # a custom mapping's pattern travels in meta["answer_pattern"]
    v = score_generation(q116a3(answer_pattern=pattern), out)
    assert (v.predicted, v.method) == (frozenset({1}), "answer_pattern")
    # without any pattern: the built-in chain (the last statement)
    assert score_generation(q116a3(), out).predicted == frozenset({2})


def test_generation_mark_sheet_digits_from_the_answer_template():
    # 120D-75-like item: template ①② (two boxes); the model fills them with a space
    q = Question("n2", "igakuqa", "BMIを求めよ。\n解答：①②", (), frozenset(), 0, "ja", numeric_answer="28",
                 meta={"answer_template": "①②"})
    v = score_generation(q, "【回答】2 8")
    assert (v.numeric_predicted, v.method, v.correct) == ("28", "mark_sheet", True)


def test_generation_select_all_passes_the_selection():
    q = Question("sa", "custom", "正しいものをすべて選べ。", JA, {0, 2, 4}, 0, "ja", selection="all")
    v = score_generation(q, "a. 夜盲\nc. 自然治癒\ne. OCT")
    assert (v.predicted, v.correct) == (frozenset({0, 2, 4}), True)
