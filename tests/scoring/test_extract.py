"""Answer extraction on tables of realistic Japanese and English model answers."""

import pytest

from jmedllm.scoring.extract import (
    UNPARSED,
    clean_output,
    drop_echoed_choices,
    extract_choices,
    extract_number,
    parse_number,
    strip_think,
)
from jmedllm.text import nfkc

# 116A3 (IgakuQA): 中心性漿液性脈絡網膜症について誤っているのはどれか。
JA = ("夜盲を自覚する。", "変視症を自覚する。", "自然治癒することが多い。", "蛍光眼底造影が有用である。",
      "光干渉断層計〈OCT〉が有用である。")
# An English item whose choices invite false positives.
EN = ("Vitamin C", "Vitamin D", "HbA1c", "C-reactive protein")
# 116A71, English translation.
EN5 = ("Kawasaki disease", "Streptococcal infection", "EB virus infection", "Adenovirus infection",
       "Parvovirus B19 infection")


def letters(extraction):
    return "".join("abcdefgh"[i] for i in sorted(extraction.indices))


@pytest.mark.parametrize(
    "output, expected, method",
    [
        # bare labels, ASCII and full width, brackets
        ("c", "c", "label_only"),
        ("C", "c", "label_only"),
        ("ｃ", "c", "label_only"),
        ("Ｃ。", "c", "label_only"),
        ("（ｃ）", "c", "label_only"),
        ("(c)", "c", "label_only"),
        ("「c」", "c", "label_only"),
        ("【c】", "c", "label_only"),
        (" \n c.\n", "c", "label_only"),
        # final-answer statements
        ("答え：c", "c", "answer_statement"),
        ("答え:ｃ", "c", "answer_statement"),
        ("正解はcです。", "c", "answer_statement"),
        ("解答：（c）", "c", "answer_statement"),
        ("最終的な答えは「a」です。", "a", "answer_statement"),
        ("中心性漿液性脈絡網膜症では変視症を自覚し、夜盲は自覚しない。したがって答えはaです。", "a", "answer_statement"),
        ("aは誤り。bも誤り。よって正解はeである。", "e", "answer_statement"),
        ("誤っているのはaである。", "a", "answer_statement"),
        # reasoning with an earlier tentative statement: the last one wins
        ("最初は答えはbと思ったが、見直すと答えはdである。", "d", "answer_statement"),
        # leading label with the choice text or an explanation
        ("a. 夜盲を自覚する。", "a", "leading_label"),
        ("a 夜盲を自覚する", "a", "leading_label"),
        ("a\n\n解説: 中心性漿液性脈絡網膜症で夜盲は生じない。", "a", "leading_label"),
        ("d: 蛍光眼底造影が有用である。\n蛍光漏出を認めるため…", "d", "leading_label"),
        # the choice text written out instead of a letter
        ("夜盲を自覚する", "a", "choice_text"),
        ("「夜盲を自覚する。」", "a", "choice_text"),
        ("答えは夜盲を自覚する。です", "a", "choice_text"),
        # labels mentioned as the answer outside a statement
        ("選択肢cが正しいと考えられます。", "c", "label_mention"),
        # a statement followed by a comma, the label then the choice text
        ("画像がないため断定できないが、最も考えられるのは、a: 夜盲を自覚する です。", "a", "answer_statement"),
        # a chat model with Markdown
        ("**解答**\n\n正解は **c. 自然治癒することが多い** です。", "c", "answer_statement"),
        ("## 考察\n各選択肢を検討する。\n- a: 夜盲は生じない\n- b: 変視症は典型的\n\n以上より、誤っているものは a", "a", "answer_statement"),
        ("夜盲は網膜色素変性症の症状であり、aが誤りです。", "a", "label_mention"),
    ],
)
def test_japanese_single(output, expected, method):
    found = extract_choices(output, JA, 1)
    assert (letters(found), found.method) == (expected, method)


@pytest.mark.parametrize(
    "output, expected, method",
    [
        ("a, c", "ac", "label_only"),
        ("a、c", "ac", "label_only"),
        ("a，ｃ", "ac", "label_only"),
        ("ac", "ac", "label_only"),
        ("ＡＣ", "ac", "label_only"),
        ("a と c", "ac", "label_only"),
        ("a and c", "ac", "label_only"),
        ("a・e", "ae", "label_only"),
        ("(a)(c)", "ac", "label_only"),
        ("答え：a, c", "ac", "answer_statement"),
        ("正解はaとeです。", "ae", "answer_statement"),
        ("The answers are B and D.", "bd", "answer_statement"),
        ("a. 夜盲を自覚する。\nc. 自然治癒することが多い。", "ac", "leading_label"),
        ("夜盲を自覚する、自然治癒することが多い", "ac", "choice_text"),
        ("夜盲を自覚する\n蛍光眼底造影が有用である", "ad", "choice_text"),
    ],
)
def test_japanese_and_english_lists(output, expected, method):
    found = extract_choices(output, JA, 2)
    assert (letters(found), found.method) == (expected, method)


@pytest.mark.parametrize(
    "output, expected, method",
    [
        ("Answer: (C)", "c", "answer_statement"),
        ("Answer: C", "c", "answer_statement"),
        ("The answer is C.", "c", "answer_statement"),
        ("The correct answer is option E.", "e", "answer_statement"),
        ("**Answer:** B", "b", "answer_statement"),
        ("Final answer: e", "e", "answer_statement"),
        ("The answer is a.", "a", "answer_statement"),
        ("I would choose D because the tonsillar exudate suggests adenovirus.", "d", "answer_statement"),
        ("Fever for 3 days without cough suggests several infections. "
         "Kawasaki disease needs 5 days of fever, but parvovirus B19 rarely causes exudative tonsillitis. "
         "The answer is E.", "e", "answer_statement"),
        ("Let's analyze each option:\n"
         "A. Kawasaki disease - requires fever for 5 days or more, so less likely.\n"
         "B. Streptococcal infection - exudative tonsillitis fits.\n"
         "C. EB virus infection - fits with cervical lymphadenopathy.\n"
         "D. Adenovirus infection - conjunctival injection and exudate fit.\n"
         "E. Parvovirus B19 infection - does not cause exudative tonsillitis.\n\n"
         "Therefore, the least likely diagnosis is E.", "e", "final_label"),
        ("Considering all findings, the best option is (B).", "b", "answer_statement"),
        ("A. Kawasaki disease", "a", "leading_label"),
        ("E) Parvovirus B19 infection", "e", "leading_label"),
        ("Parvovirus B19 infection", "e", "choice_text"),
        ("Option B is the most likely.", "b", "label_mention"),
        # a label followed by an explanation in brackets
        ("c (parvovirus rarely causes tonsillar exudate)", "c", "leading_label"),
        ("e (Parvovirus B19 infection)", "e", "leading_label"),
        ("I think (d) fits best.", "d", "label_mention"),
    ],
)
def test_english(output, expected, method):
    found = extract_choices(output, EN5, 1)
    assert (letters(found), found.method) == (expected, method)


@pytest.mark.parametrize(
    "output, expected, method",
    [
        # the English article "a" is not choice a
        ("The answer is a nerve conduction study.", "", UNPARSED),
        ("This is a classic presentation; the answer is b.", "b", "answer_statement"),
        # "Vitamin C", "HbA1c", "C-reactive protein" are not choice c
        ("Vitamin C deficiency causes scurvy, so the answer is b.", "b", "answer_statement"),
        ("Vitamin C", "a", "choice_text"),
        ("HbA1cが高値なので、dが正しい。", "d", "label_mention"),
        ("HbA1c", "c", "choice_text"),
        ("The answer is C-reactive protein.", "d", "choice_text"),
        ("C-reactive protein is an acute phase reactant.", "d", "choice_text_contained"),
        ("ビタミンCが不足している。", "", UNPARSED),
        ("CRPが上昇している。", "", UNPARSED),
        # a patient description that starts with the article
        ("A 45-year-old man with fatigue.", "", UNPARSED),
        # negation: the stated letter is the one rejected
        ("答えはaではなく、他の選択肢です", "", UNPARSED),
    ],
)
def test_false_positives(output, expected, method):
    found = extract_choices(output, EN, 1)
    assert (letters(found), found.method) == (expected, method)


def test_letter_run_that_is_a_word_is_not_a_label_list():
    # "ACE" is a run of valid letters a, c, e, but followed by an English word it is a word.
    found = extract_choices("The answer is ACE inhibitors.", JA, 1)
    assert found.method == UNPARSED and found.indices == frozenset()


def test_letters_only_up_to_the_number_of_choices():
    four = ("w", "x", "y", "z")
    assert extract_choices("答え：e", four, 1).method == UNPARSED  # e does not exist with 4 choices
    eight = tuple(f"choice {i}" for i in range(8))
    assert letters(extract_choices("答え：h", eight, 1)) == "h"
    assert letters(extract_choices("ｆ", eight, 1)) == "f"
    six = tuple(f"選択肢{i}" for i in range(6))
    assert letters(extract_choices("正解はfです", six, 1)) == "f"
    assert extract_choices("正解はgです", six, 1).method == UNPARSED


def test_a_label_list_does_not_run_across_lines():
    # "c." on the next line starts an explanation, it does not extend the answer "a"
    found = extract_choices("答え：a\nc. は自然治癒するので正しい", JA, 1)
    assert letters(found) == "a"


def test_repeated_letters_are_not_a_list():
    assert extract_choices("aa", JA, 2).method == UNPARSED


def test_unparsed_is_explicit():
    found = extract_choices("わかりません。", JA, 1)
    assert found.method == UNPARSED
    assert not found.parsed
    assert found.indices == frozenset() and found.span is None


def test_think_blocks_removed():
    out = "<think>aかもしれない。いや、答えはbだ。</think>\n答え：d"
    assert letters(extract_choices(out, JA, 1)) == "d"
    # unclosed think block: the model never answered
    assert extract_choices("<think>答えはbかな。まだ考える", JA, 1).method == UNPARSED
    # the chat template opened the block in the prompt: only the closing tag is generated
    assert letters(extract_choices("答えはbかな…</think>正解はc", JA, 1)) == "c"


def test_strip_think_keeps_offsets():
    text = "<think>x</think>c"
    assert len(strip_think(text)) == len(text)
    assert strip_think(text).strip() == "c"


def test_echoed_choice_list_is_not_the_answer():
    out = ("a. 夜盲を自覚する。\nb. 変視症を自覚する。\nc. 自然治癒することが多い。\n"
           "d. 蛍光眼底造影が有用である。\ne. 光干渉断層計〈OCT〉が有用である。\n\n答え：a")
    assert (letters(extract_choices(out, JA, 1)), extract_choices(out, JA, 1).method) == ("a", "answer_statement")
    # echo without any answer: unparsed, not "a" from the first echoed line
    echo_only = out.rsplit("\n\n", 1)[0]
    assert extract_choices(echo_only, JA, 1).method == UNPARSED
    # a per-choice analysis followed by the verdict
    analysis = "a: 誤り\nb: 正しい\nc: 正しい\nd: 正しい\ne: 正しい\nよって誤っているのはa"
    assert letters(extract_choices(analysis, JA, 1)) == "a"


def test_drop_echoed_choices_rules():
    # three increasing lettered lines for a select-1 question: an echo, blanked
    text = "a. x\nb. y\nc. z\nanswer"
    assert drop_echoed_choices(text, 5, 1) == "    \n    \n    \nanswer"
    # two lines answering a select-2 question are an answer, kept
    assert drop_echoed_choices("a. x\nc. z", 5, 2) == "a. x\nc. z"
    # Markdown bullets are lettered lines too
    assert drop_echoed_choices("- a: x\n- b: y\n- c: z", 5, 1).strip() == ""
    # three lines answering a select-3 question are an answer, kept
    assert drop_echoed_choices("a. x\nb. y\nd. z", 5, 3) == "a. x\nb. y\nd. z"


def test_base_model_writing_the_next_question_is_cut():
    out = "c\n\n問題: 次のうち正しいのはどれか。\na: …\n答え: a"
    found = extract_choices(out, JA, 1)
    assert (letters(found), found.method) == ("c", "label_only")
    out_en = "B\nQuestion: A 30-year-old woman ... Answer: A"
    assert letters(extract_choices(out_en, EN5, 1)) == "b"


def test_first_line_only_reproduces_the_reference_harness():
    out = "c\n答え：d"
    assert letters(extract_choices(out, JA, 1)) == "d"  # default: the final statement
    assert letters(extract_choices(out, JA, 1, first_line_only=True)) == "c"
    assert extract_choices("\n\n解説のみ\n答え：d", JA, 1, first_line_only=True).method == UNPARSED


def test_span_indexes_the_nfkc_output():
    out = "考察…　答え：（ｃ）"
    found = extract_choices(out, JA, 1)
    start, end = found.span
    assert nfkc(out)[start:end] == found.matched == "(c)"


def test_clean_output_keeps_length():
    out = "<think>…</think>ａ\n問題: 次"
    assert len(clean_output(out, n_choices=5)) == len(nfkc(out))


def test_no_choices_is_an_error():
    with pytest.raises(ValueError, match="numeric"):
        extract_choices("26", (), 1)


@pytest.mark.parametrize(
    "output, number, method",
    [
        ("答え：1.2", "1.2", "answer_statement"),
        ("解答：２６Torr", "26", "answer_statement"),
        ("The answer is 146 mg/dL.", "146", "answer_statement"),
        ("26", "26", "number_only"),
        ("1,130 kcal", "1,130", "number_only"),
        ("0.4。", "0.4", "number_only"),
        ("A-aDO2 = 150 - 40/0.8 - 74 = 26", "26", "last_number"),
        ("<think>100かな</think>答えは97", "97", "answer_statement"),
    ],
)
def test_extract_number(output, number, method):
    found = extract_number(output)
    assert (found.number, found.method) == (number, method)


def test_extract_number_unparsed():
    found = extract_number("計算できません")
    assert found.method == UNPARSED and found.number is None


def test_parse_number():
    from decimal import Decimal

    assert parse_number("1,130") == Decimal(1130)
    assert parse_number("０．４") == Decimal("0.4")
    assert parse_number("−2") == Decimal(-2)
    assert parse_number("abc") is None


@pytest.mark.parametrize(
    "output",
    [
        # "(a)", "(b)" after a noun name the exam's figures, not the answer
        "眼底写真(a)と光干渉断層計像(b)が提示されていないため、回答できません。",
        # a hedge between two choices (texts with labels after them) is not one answer
        "夜盲を自覚する(a)か変視症を自覚する(b)のどちらかだが、決められない。",
        # a copy of the label scheme inside a sentence
        "選択肢(a: ① b: ② c: ③)だけでは判断できません。",
    ],
)
def test_non_answers_stay_unparsed(output):
    assert extract_choices(output, JA, 1).method == UNPARSED
