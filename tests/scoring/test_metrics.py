"""The studies' metrics on hand-computed cases (arithmetic in the comments)."""

import math

import pytest

from jmedllm.schema import ContinuationScore
from jmedllm.scoring.metrics import (
    best_set_scores,
    choice_similarities,
    exact_match,
    gestalt_choice,
    gestalt_score,
    letter_predict,
    loglik_predict,
    logsumexp,
    ratcliff_obershelp,
    set_scores,
    top_n,
)

JA = ("夜盲を自覚する。", "変視症を自覚する。", "自然治癒することが多い。", "蛍光眼底造影が有用である。",
      "光干渉断層計〈OCT〉が有用である。")


# --- exact match -----------------------------------------------------------

@pytest.mark.parametrize(
    "response, gold, expected",
    [
        ("夜盲を自覚する。", ["夜盲を自覚する。"], True),
        ("夜盲を自覚する", ["夜盲を自覚する。"], True),  # trailing 。 dropped
        ("  夜盲を自覚する。\n", ["夜盲を自覚する。"], True),  # strip
        ("「夜盲を自覚する」", ["夜盲を自覚する。"], True),  # surrounding brackets
        ("c. 夜盲を自覚する。", ["夜盲を自覚する。"], True),  # leading label "c. "
        ("c：夜盲を自覚する", ["夜盲を自覚する。"], True),  # leading label "c：" (full-width colon)
        ("（ｃ）夜盲を自覚する", ["夜盲を自覚する。"], True),  # full-width label folded by NFKC
        ("Kawasaki disease.", ["Kawasaki disease"], True),
        ('"kawasaki disease"', ["Kawasaki disease"], True),  # quotes, case
        ("夜盲を自覚する。なぜなら", ["夜盲を自覚する。"], False),
        ("夜盲", ["夜盲を自覚する。"], False),
        ("c", ["夜盲を自覚する。"], False),
        # select-N: parts in any order
        ("変視症を自覚する、夜盲を自覚する", ["夜盲を自覚する。", "変視症を自覚する。"], True),
        ("夜盲を自覚する。\n変視症を自覚する。", ["夜盲を自覚する。", "変視症を自覚する。"], True),
        ("a. 夜盲を自覚する, b. 変視症を自覚する", ["夜盲を自覚する。", "変視症を自覚する。"], True),
        ("夜盲を自覚する", ["夜盲を自覚する。", "変視症を自覚する。"], False),  # one of two
        ("夜盲を自覚する、夜盲を自覚する", ["夜盲を自覚する。", "変視症を自覚する。"], False),
        # a gold text that itself contains the separator 、
        ("頭痛、発熱、咳嗽", ["発熱、咳嗽", "頭痛"], True),
        # a thousands comma does not split
        ("1,200mL、500mL", ["500mL", "1,200mL"], True),
    ],
)
def test_exact_match(response, gold, expected):
    assert exact_match(response, gold) is expected


def test_exact_match_needs_gold():
    with pytest.raises(ValueError):
        exact_match("x", [])


# --- Ratcliff-Obershelp / Gestalt -------------------------------------------

def test_ratcliff_obershelp_symmetric_case():
    # "abcd" vs "bcde": longest common block "bcd" (3), nothing left on either side.
    # ratio = 2 * 3 / (4 + 4) = 0.75 in both orders.
    assert ratcliff_obershelp("abcd", "bcde") == pytest.approx(0.75)


def test_ratcliff_obershelp_is_averaged_over_both_orders():
    # SequenceMatcher("tide", "diet"): all common blocks have length 1; the earliest in a is
    # "t" (a[0] = b[3]); left of it nothing, right of it a[1:] = "ide" vs b[4:] = "" -> M = 1,
    # ratio = 2 * 1 / 8 = 0.25.
    # SequenceMatcher("diet", "tide"): earliest block "d" (a[0] = b[2]); right: "iet" vs "e" -> "e",
    # M = 2, ratio = 2 * 2 / 8 = 0.5.  Mean: (0.25 + 0.5) / 2 = 0.375.
    assert ratcliff_obershelp("tide", "diet") == pytest.approx(0.375)
    assert ratcliff_obershelp("diet", "tide") == pytest.approx(0.375)


def test_ratcliff_obershelp_japanese():
    # "夜盲を自覚する" (7) vs "変視症を自覚する" (8): common block "を自覚する" (5), nothing else.
    # 2 * 5 / 15 = 0.6667
    assert ratcliff_obershelp("夜盲を自覚する", "変視症を自覚する") == pytest.approx(10 / 15)
    assert ratcliff_obershelp("", "") == 1.0
    assert ratcliff_obershelp("abc", "") == 0.0


def test_gestalt_score_single():
    # After light normalisation: "夜盲を自覚する" vs "変視症を自覚する" -> 10 / 15 (see above).
    assert gestalt_score("夜盲を自覚する。", ["変視症を自覚する。"]) == pytest.approx(10 / 15)
    # Leading label and brackets are normalised away: identical texts -> 1.
    assert gestalt_score("c.「夜盲を自覚する」", ["夜盲を自覚する。"]) == 1.0


def test_gestalt_score_select_n():
    # Gold texts joined in the best order: "変視症、夜盲" equals the join "変視症、夜盲" -> 1.0.
    assert gestalt_score("変視症、夜盲", ["夜盲", "変視症"]) == 1.0
    # "変視症" (3) vs "変視症、夜盲" or "夜盲、変視症" (6): common block 3 -> 2 * 3 / 9 = 0.6667.
    assert gestalt_score("変視症", ["夜盲", "変視症"]) == pytest.approx(6 / 9)
    # separators canonicalised: "変視症, 夜盲" -> "変視症、夜盲" -> 1.0
    assert gestalt_score("変視症, 夜盲", ["夜盲", "変視症"]) == 1.0


def test_choice_similarities_and_gestalt_choice():
    # "夜盲" (2) against each choice (normalised, trailing 。 removed):
    #   a "夜盲を自覚する" (7): block "夜盲" -> 2*2/9 = 0.444
    #   b "変視症を自覚する" (8): nothing -> 0
    #   c..e: no shared character -> 0
    sims = choice_similarities("夜盲", JA, 1)
    assert sims[0] == pytest.approx(4 / 9)
    assert sims[1:] == [0.0, 0.0, 0.0, 0.0]
    assert gestalt_choice("夜盲", JA, 1) == frozenset({0})


def test_gestalt_choice_uses_n_select_not_the_gold_count():
    # Asked for 2: the two closest. "夜盲、自然治癒" parts "夜盲" and "自然治癒":
    #   a: part "夜盲" -> 4/9 (above); c "自然治癒することが多い" (11) vs "自然治癒" (4): 2*4/15 = 0.533
    #   others: the whole response "夜盲、自然治癒" shares at most a few characters, below these.
    picked = gestalt_choice("夜盲、自然治癒", JA, 2)
    assert picked == frozenset({0, 2})
    # Asked for 1 (even if the gold had two): only the single closest choice.
    assert len(gestalt_choice("夜盲、自然治癒", JA, 1)) == 1


def test_gestalt_choice_with_nothing_in_common_picks_nothing():
    # A bare "b" shares no character with any choice text: similarity 0 everywhere,
    # so no choice is picked (not choice a by the tie rule).
    assert gestalt_choice("b", JA, 1) == frozenset()
    # (A bare "c" does share the "c" of "〈oct〉" in choice e, lower-cased: 2*1/(1+17) > 0,
    # so it picks e. The Gestalt metrics are meant for answers written as text.)
    assert gestalt_choice("c", JA, 1) == frozenset({4})


def test_top_n_ties_go_to_lower_index():
    assert top_n([0.5, 0.9, 0.9, 0.1], 1) == frozenset({1})
    assert top_n([0.5, 0.9, 0.9, 0.1], 2) == frozenset({1, 2})
    assert top_n([0.2, 0.2, 0.2], 2) == frozenset({0, 1})
    with pytest.raises(ValueError):
        top_n([0.1], 2)


# --- set metrics -------------------------------------------------------------

def test_set_scores_exact_and_partial():
    # gold {a, c}, predicted {a, b}: hit 1; precision 1/2, recall 1/2, F1 = 2*.5*.5/(.5+.5) = 0.5
    s = set_scores(frozenset({0, 1}), frozenset({0, 2}))
    assert (s.correct, s.precision, s.recall, s.f1) == (False, 0.5, 0.5, 0.5)
    # predicted {a}: precision 1/1, recall 1/2, F1 = 2*1*.5/1.5 = 0.6667
    s = set_scores(frozenset({0}), frozenset({0, 2}))
    assert (s.correct, s.precision, s.recall) == (False, 1.0, 0.5)
    assert s.f1 == pytest.approx(2 / 3)
    # predicted {a, c, d}: precision 2/3, recall 1, F1 = 2*(2/3)*1/(5/3) = 0.8
    s = set_scores(frozenset({0, 2, 3}), frozenset({0, 2}))
    assert s.f1 == pytest.approx(0.8)
    assert set_scores(frozenset({0, 2}), frozenset({0, 2})) == set_scores(frozenset({2, 0}), frozenset({0, 2}))
    assert set_scores(frozenset({0, 2}), frozenset({0, 2})).correct


def test_set_scores_unparsed_is_wrong_with_zero_credit():
    s = set_scores(frozenset(), frozenset({1}))
    assert (s.correct, s.precision, s.recall, s.f1) == (False, 0.0, 0.0, 0.0)


def test_best_set_scores_accepts_any_alternative():
    # 112B30: a or d. Predicted {d}: matches the second alternative.
    accepted = (frozenset({0}), frozenset({3}))
    assert best_set_scores(frozenset({3}), accepted).correct
    # Predicted {a, d}: neither alternative; best F1 = 2*(1/2)*1/(3/2) = 0.6667
    s = best_set_scores(frozenset({0, 3}), accepted)
    assert not s.correct and s.f1 == pytest.approx(2 / 3)


# --- log-likelihood ----------------------------------------------------------

def cs(logprob, n_chars, n_tokens=1):
    return ContinuationScore(logprob=logprob, n_tokens=n_tokens, n_chars=n_chars)


def test_loglik_acc_and_acc_norm():
    # logprobs -10, -8, -9 over 5, 2, 3 characters.
    # acc: argmax(-10, -8, -9) = index 1.
    # acc_norm: -10/5 = -2.0, -8/2 = -4.0, -9/3 = -3.0 -> argmax index 0.
    pred = loglik_predict([cs(-10, 5), cs(-8, 2), cs(-9, 3)], 1)
    assert pred.predicted == frozenset({1})
    assert pred.predicted_norm == frozenset({0})


def test_loglik_top_n_for_select_n():
    # top-2 raw: -8 (1), -9 (2) -> {1, 2}; top-2 per char: -2.0 (0), -3.0 (2) -> {0, 2}
    pred = loglik_predict([cs(-10, 5), cs(-8, 2), cs(-9, 3)], 2)
    assert pred.predicted == frozenset({1, 2})
    assert pred.predicted_norm == frozenset({0, 2})


def test_loglik_ties_go_to_lower_index():
    pred = loglik_predict([cs(-5, 5), cs(-5, 5), cs(-6, 1)], 1)
    assert pred.predicted == frozenset({0})
    assert pred.predicted_norm == frozenset({0})  # -1.0, -1.0, -6.0


def test_loglik_acc_norm_with_given_lengths():
    # logprobs -10, -8, -9. By n_chars 5, 20, 3: -2.0, -0.4, -3.0 -> index 1.
    # By the given lengths 10, 1, 1: -1.0, -8.0, -9.0 -> index 0.
    scores = [cs(-10, 5), cs(-8, 20), cs(-9, 3)]
    assert loglik_predict(scores, 1).predicted_norm == frozenset({1})
    assert loglik_predict(scores, 1, lengths=[10, 1, 1]).predicted_norm == frozenset({0})
    with pytest.raises(ValueError, match="2 lengths for 3 choices"):
        loglik_predict(scores, 1, lengths=[1, 2])


def test_loglik_bad_input():
    with pytest.raises(ValueError, match="length"):
        loglik_predict([cs(-1, 0)], 1)
    with pytest.raises(ValueError, match="NaN"):
        loglik_predict([cs(float("nan"), 3)], 1)
    with pytest.raises(ValueError):
        loglik_predict([], 1)


def test_logsumexp():
    # log(e^-2 + e^-2) = -2 + log 2
    assert logsumexp([-2.0, -2.0]) == pytest.approx(-2 + math.log(2))
    assert logsumexp([-math.inf, -1.0]) == pytest.approx(-1.0)
    assert logsumexp([-math.inf]) == -math.inf


def test_letter_predict_sums_spellings():
    # a: spellings -2, -2 -> -2 + ln 2 = -1.307; b: -1.5 alone -> -1.5; c: -3 and -inf -> -3.
    # a wins though b's single best spelling (-1.5) beats each of a's (-2).
    scores = [[-2.0, -2.0], [-1.5, -math.inf], [-3.0, -math.inf]]
    assert letter_predict(scores, 1) == frozenset({0})
    # top-2: a (-1.307), b (-1.5)
    assert letter_predict(scores, 2) == frozenset({0, 1})
    # ContinuationScore inputs read their logprob
    assert letter_predict([[cs(-2, 1), cs(-2, 1)], [cs(-1.5, 1)]], 1) == frozenset({0})


def test_letter_predict_bad_input():
    with pytest.raises(ValueError, match="choice 1"):
        letter_predict([[-1.0], []], 1)
