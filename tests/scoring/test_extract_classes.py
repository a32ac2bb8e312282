"""Answer extraction by class of answer style, in Japanese and English.

Short excerpts are quoted from public model outputs (a line or two each, source named in
a comment): naoto-iwase/JMLE2026-Bench (MIT; 120th national medical exam, prompt asks for
"【回答】"), aki-wada/IgakuQA-evaluation, vlievin/medical-reasoning (Apache-2.0) and
jungokasai/IgakuQA. Everything else is written for the class it tests.
"""

import pytest

from jmedllm.scoring.extract import (
    UNPARSED,
    compile_answer_pattern,
    extract_choices,
    extract_number,
    template_digits,
)

# 116A3 (IgakuQA)
JA = ("夜盲を自覚する。", "変視症を自覚する。", "自然治癒することが多い。", "蛍光眼底造影が有用である。",
      "光干渉断層計〈OCT〉が有用である。")
EN = ("Kawasaki disease", "Streptococcal infection", "EB virus infection", "Adenovirus infection",
      "Parvovirus B19 infection")
EN4 = ("MgSO4", "Nifedipine", "Ritodrine", "Isoxsuprine")


def letters(found):
    return "".join("abcdefgh"[i] for i in sorted(found.indices))


def pick(output, choices=JA, n=1, **kw):
    found = extract_choices(output, choices, n, **kw)
    return letters(found), found.method


# ---------------------------------------------------------------------------
# labels in brackets and markdown
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("output, expected", [
    ("【回答】a", "a"),  # JMLE2026-Bench, gpt-5.2 on 120A-1
    ("【回答】a,b", "ab"),  # JMLE2026-Bench, gpt-oss-20b
    ("【解答】c", "c"),
    ("［答］ a, c", "ac"),
    ("〔解答〕 d", "d"),
    ("《答》b", "b"),
    ("「答え」: e", "e"),
    ("**答え**: c", "c"),
    ("**解答：** ｃ", "c"),
    ("### 回答\n\nc", "c"),
    ("## 解答\nb\n\n理由: …", "b"),
    ("【回答】\nd", "d"),
])
def test_japanese_brackets_and_markdown(output, expected):
    assert pick(output, n=len(expected)) == (expected, "answer_statement")


@pytest.mark.parametrize("output, expected", [
    ("**Answer:** B", "b"),
    ("**Final Answer**\n\nC", "c"),
    ("## Final Answer\n\n**D**", "d"),
    ("Final Answer:\n\nE", "e"),
    ('{"answer": "A", "reasoning": "…"}', "a"),  # CoTLab JSON format
    ("[Answer] (C)", "c"),
])
def test_english_brackets_and_markdown(output, expected):
    assert pick(output, EN) == (expected, "answer_statement")


def test_a_keyword_inside_a_line_does_not_read_the_next_line():
    # JMLE2026-Bench, GPT-OSS-Swallow-120B on 120D-51: the answer, then a copy of the choices
    # with "← 正解" after b; the next line "c 日光角化症" is no answer
    out = "したがって最も妥当な診断は基底細胞癌です。\n\n【回答】b\n\n---\n\n選択肢\na　悪性黒色腫\nb　基底細胞癌 ← 正解\nc　日光角化症\nd　有棘細胞癌"
    assert letters(extract_choices(out, JA, 1)) == "b"


# ---------------------------------------------------------------------------
# LaTeX
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("output, expected", [
    (r"\boxed{c}", "c"),
    (r"The answer is $\boxed{C}$.", "c"),
    (r"\boxed{\text{A}}", "a"),
    (r"Final answer: $\text{D}$", "d"),
    (r"よって答えは $\boxed{\textbf{e}}$", "e"),
    (r"\boxed{B. Streptococcal infection}", "b"),
    (r"\boxed{a, c}", "ac"),
])
def test_latex(output, expected):
    assert pick(output, EN, len(expected)) == (expected, "answer_statement")


def test_boxed_number():
    assert extract_number(r"BMI = 84 / 1.73^2 ≒ 28.07 より $\boxed{28}$").number == "28"


# ---------------------------------------------------------------------------
# final-answer statements, wherever they stand; the last one wins
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("output, expected", [
    ("最終解答：b", "b"),
    ("結論：d", "d"),
    ("以上を踏まえ、結論として正解は c である。", "c"),
    ("最終的な答え: e", "e"),
    ("e が正解です。", "e"),
    ("Therefore, the answer is B.", "b"),
    ("Therefore, among A through D, the answer is B.", "b"),  # medical-reasoning, MedMCQA
    ("My answer: b", "b"),
    ("The correct option is (D).", "d"),
    ("So the answer is most likely C.", "c"),
    ("(C) is the correct answer.", "c"),
])
def test_final_answer_statements(output, expected):
    assert pick(output, EN) == (expected, "answer_statement")


def test_last_statement_wins_over_earlier_statements_and_reasoning():
    out = "最初は答えはbと思ったが、選択肢cも検討する。見直すと…\n\n【回答】d"
    assert pick(out) == ("d", "answer_statement")
    out_en = "Answer: A? Wait, reconsider: A is wrong because … option C fits.\n\nFinal answer: C"
    assert pick(out_en, EN) == ("c", "answer_statement")


def test_statement_beats_letters_in_the_reasoning_before_it():
    # JMLE2026-Bench, Qwen3.5-35B-A3B: reasoning over every choice, a restated question, then 【回答】
    out = ("### 問題：この時点で行うべき対応は？\n\n選択肢：\na 緊急手術\nb 胸膜癒着術\nc 昇圧薬投与\n\n"
           "#### b) 胸膜癒着術\n→ 出血を止めることはできない。\n\n### 結論：\n\n緊急手術が必要である。\n\n【回答】a")
    assert pick(out) == ("a", "answer_statement")


# ---------------------------------------------------------------------------
# an answer line followed by an explanation; a letter with its choice text; choice text alone
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("output, choices, expected, method", [
    ("答え：c\n\n解説：a は網膜色素変性症の症状であり誤り。", JA, "c", "answer_statement"),
    ("c\n\n解説: 自然治癒することが多いので誤り。", JA, "c", "leading_label"),
    ("Answer: B\n\nExplanation: A is incorrect because Kawasaki disease needs 5 days of fever.", EN, "b", "answer_statement"),
    ("c. 自然治癒することが多い。", JA, "c", "leading_label"),
    ("正解は c（自然治癒することが多い）です。", JA, "c", "answer_statement"),
    ("E) Parvovirus B19 infection", EN, "e", "leading_label"),
    ("**c: Date and place of birth**\n\n**理由:**", JA, "c", "leading_label"),  # IgakuQA-evaluation, medgemma-27b
    ("自然治癒することが多い", JA, "c", "choice_text"),
    ("答えは「自然治癒することが多い」です。", JA, "c", "choice_text"),
    ("Parvovirus B19 infection", EN, "e", "choice_text"),
])
def test_answer_line_letter_with_text_and_choice_text(output, choices, expected, method):
    assert pick(output, choices) == (expected, method)


def test_choice_text_that_contradicts_its_label_is_unparsed():
    # medical-reasoning (MedMCQA): "riboflavin (B)" where riboflavin is choice c: which one? neither
    choices = ("Vitamin B1", "Vitamin B6", "Riboflavin", "Niacin")
    out = "Therefore, among A through D, the answer is riboflavin (B)."
    assert pick(out, choices) == ("", UNPARSED)
    assert pick("Therefore, among A through D, the answer is riboflavin (C).", choices) == ("c", "choice_text")


# ---------------------------------------------------------------------------
# several answers in every separator
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("output", [
    "a, c", "a，c", "ａ，ｃ", "a、c", "a・c", "a/c", "a および c", "aおよびc", "a 及び c", "a と c",
    "a and c", "A & C", "a; c", "ac", "(a)(c)", "【回答】a、c", "答え：ａ，ｃ", "The answers are A and C.",
])
def test_two_answers_in_every_separator(output):
    assert letters(extract_choices(output, JA, 2)) == "ac"


def test_three_answers_with_an_oxford_comma():
    assert letters(extract_choices("The answer is A, C, and E.", EN, 3)) == "ace"


# ---------------------------------------------------------------------------
# mark-sheet numbers
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("output, digits, decimals, number", [
    ("【回答】2 8", 2, 0, "28"),  # JMLE2026-Bench, Qwen3-32B (no think) on 120D-75
    ("【回答】3 1 5", 3, 0, "315"),  # JMLE2026-Bench, gpt-oss-120b on 120A-75
    ("解答：① 2 ② 8", 2, 0, "28"),
    ("①2②8", 2, 0, "28"),
    ("① 0 ② 4 ③ 0", 3, 2, "0.40"),
    ("答え：040", 3, 2, "0.40"),
    ("【回答】0.40 g/gCr", 3, 2, "0.40"),
    ("BMI は 28.07 なので、【回答】28", 2, 0, "28"),
])
def test_mark_sheet_numbers(output, digits, decimals, number):
    assert extract_number(output, digits=digits, decimals=decimals).number == number


def test_spaced_digits_need_the_template():
    # without the box count "2 8" is two numbers; the statement reads the first
    assert extract_number("【回答】2 8").number == "2"


def test_template_digits():
    assert template_digits("①．②③ g/gCr") == (3, 2)
    assert template_digits("①②") == (2, 0)
    assert template_digits("①②③ mOsm/kgH₂O") == (3, 0)
    assert template_digits("g/日") == (None, 0)
    assert template_digits(None) == (None, 0)
    with pytest.raises(ValueError, match="digits"):
        extract_number("1", digits=0)


# ---------------------------------------------------------------------------
# negation and ambiguity: unparsed, never a guess
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("output, choices", [
    ("(e) グルココルチコイドは使用できない。", JA),
    ("eは誤り。", JA),
    ("aは誤りである。bも誤り。", JA),
    ("e is incorrect.", EN),
    ("Option B is unlikely given the exudate.", EN),
    ("Therefore, among A through D, the answer is not A.", EN4),  # medical-reasoning
    ("Therefore, among A through D, the answer is C or A.", EN4),  # medical-reasoning
    ("Therefore, among A through D, the answer is either A or B.", EN4),  # medical-reasoning
    ("Therefore, among A through D, the answer is none of the above.", EN4),  # medical-reasoning
    ("Therefore, among A through D, the answer is E.", EN4),  # a letter beyond the choices
    ("選択肢aが正しいと考えられる。しかし選択肢cが正しい可能性もある。", JA),
    ("Answer a multiple-choice question from a list of options (a, b, c, d, e).", JA),  # IgakuQA-evaluation, glm-4.7-flash
    ("答えはaではなく、他の選択肢です", JA),
    ("<think>答えはbだろう。まだ考える", JA),
])
def test_negated_or_ambiguous_is_unparsed(output, choices):
    assert pick(output, choices) == ("", UNPARSED)


def test_a_rejected_choice_is_not_picked_but_the_accepted_one_is():
    out = "(e) グルココルチコイドは使用できない。一方、選択肢cが正しい。"
    assert pick(out) == ("c", "label_mention")
    out_en = "B is incorrect because the fever is short. C is correct."
    assert pick(out_en, EN) == ("c", "label_mention")


def test_a_stated_answer_that_cannot_be_read_stops_the_guessing():
    # the model stated an answer (E, beyond four choices); "MgSO4" elsewhere in the text must not be guessed
    out = "MgSO4 is neuroprotective in preterm labour. Therefore, among A through D, the answer is E."
    assert pick(out, EN4) == ("", UNPARSED)


# ---------------------------------------------------------------------------
# chat-template tokens and follow-on text
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("output, expected", [
    ("c<|END_RESPONSE|>", "c"),  # IgakuQA-evaluation, command-a
    ("c<|end|><|user|>問題: 次の…\n答え: a", "c"),  # a model writing the next user turn
    ("b<end_of_turn>\n<start_of_turn>user\n答え：a", "b"),
    ("<|channel|>analysis<|message|>maybe a<|end|><|start|>assistant<|channel|>final<|message|>【回答】d<|return|>", "d"),
    ("**Answer:** B\n\n## Medical Question\n\nA 30-year-old woman … **Answer:** C", "b"),  # CoTLab, medgemma-4b
])
def test_control_tokens_and_follow_on_text(output, expected):
    assert letters(extract_choices(output, EN, 1)) == expected


# ---------------------------------------------------------------------------
# user answer patterns
# ---------------------------------------------------------------------------

def test_answer_pattern_is_tried_first():
    out = "選んだのは b。念のため答え：c と書いておく"
    found = extract_choices(out, JA, 1, answer_pattern=r"選んだのは\s*(?P<answer>[a-e])")
    assert (letters(found), found.method) == ("b", "answer_pattern")
    assert letters(extract_choices(out, JA, 1)) == "c"  # without it, the last statement


def test_answer_pattern_capture_is_read_as_labels_or_text():
    pat = r"ANSWER=\[(?P<answer>[^\]]+)\]"
    assert pick("ANSWER=[a, c]", JA, 2, answer_pattern=pat) == ("ac", "answer_pattern")
    assert pick("ANSWER=[自然治癒することが多い]", JA, answer_pattern=pat) == ("c", "answer_pattern")
    # the last match wins; full-width input matches a pattern written with ASCII
    assert pick("ANSWER=[a] … ANSWER=[ｄ]", JA, answer_pattern=pat) == ("d", "answer_pattern")
    # a pattern written with full-width characters matches the output as written
    assert pick("回答＝ｃ", JA, answer_pattern=r"回答＝(?P<answer>\S)") == ("c", "answer_pattern")


def test_answer_pattern_that_does_not_match_falls_through_to_the_chain():
    assert pick("答え：c", JA, answer_pattern=r"ANSWER=(?P<answer>\w)") == ("c", "answer_statement")


def test_answer_pattern_for_numbers():
    found = extract_number("計算すると… RESULT{0 4 0}", answer_pattern=r"RESULT\{(?P<answer>[^}]+)\}", digits=3, decimals=2)
    assert (found.number, found.method) == ("0.40", "answer_pattern")


@pytest.mark.parametrize("pattern, message", [
    ("答え(", "not a valid regular expression"),
    (r"答え：(.+)", "no named group 'answer'"),
    ("", "non-empty"),
])
def test_bad_answer_patterns_are_clear_errors(pattern, message):
    with pytest.raises(ValueError, match=message):
        compile_answer_pattern(pattern)
    with pytest.raises(ValueError, match=message):
        extract_choices("c", JA, 1, answer_pattern=pattern)


# ---------------------------------------------------------------------------
# select-all and ordering
# ---------------------------------------------------------------------------

def test_select_all_takes_any_number_of_labels():
    assert pick("a, c, e", JA, 0, selection="all") == ("ace", "label_only")
    assert pick("正解は b のみ", JA, 0, selection="all") == ("b", "answer_statement")
    # five lettered lines answer a select-all item rather than echo the list
    out = "a. 夜盲\nb. 変視症\nc. 自然治癒\nd. 蛍光眼底造影"
    assert letters(extract_choices(out, JA, 0, selection="all")) == "abcd"


def test_select_all_does_not_guess_from_choice_texts_mentioned():
    out = "夜盲を自覚する点が重要だが、決め手に欠ける。"
    assert pick(out, JA, 0, selection="all") == ("", UNPARSED)


@pytest.mark.parametrize("output", [
    "c → a → e → b → d", "c->a->e->b->d", "caebd", "c, a, e, b, d", "【回答】c→a→e→b→d", "答え：c、a、e、b、d",
])
def test_ordering_keeps_the_written_order(output):
    found = extract_choices(output, JA, 5, selection="order")
    assert found.order == (2, 0, 4, 1, 3) and found.indices == frozenset(range(5))


def test_order_is_filled_for_every_multi_letter_answer():
    assert extract_choices("c, a", JA, 2).order == (2, 0)
    assert extract_choices("答え：e と b", JA, 2).order == (4, 1)
    assert extract_choices("c", JA, 1).order == (2,)
    assert extract_choices("わからない", JA, 1).order == ()


def test_bad_selection_is_an_error():
    with pytest.raises(ValueError, match="selection"):
        extract_choices("a", JA, 1, selection="some")


def test_program_code_is_no_answer():
    # CoTLab, MedGemma 4B running on into Python after its answer (MedMCQA sample 645)
    out = 'Final Answer: B\n```python\nanswer = "C"\nreasoning = analyze_question(question, answer)\n```'
    assert pick(out, EN4) == ("b", "answer_statement")
    assert pick('```python\nanswer = "C"\n', EN4) == ("", UNPARSED)
    # a JSON block is an answer format, kept
    assert pick('```json\n{"answer": "D", "reasoning": "…"}\n```', EN4) == ("d", "answer_statement")


@pytest.mark.parametrize("output, n, expected", [
    ("Ans: C", 1, "c"),
    ("C is the answer.", 1, "c"),
    ("Correct answer → C", 1, "c"),
    ("Answer: Both A and C", 2, "ac"),
    ("【最終回答】b", 1, "b"),
    ("【正解】c", 1, "c"),
    ("The answers are (A) and (C).", 2, "ac"),
    (r"\( \boxed{B} \)", 1, "b"),
])
def test_more_statement_spellings(output, n, expected):
    assert pick(output, EN, n) == (expected, "answer_statement")


def test_a_label_list_named_together_in_reasoning():
    assert pick("aとcが正しい。", JA, 2) == ("ac", "label_mention")
    # but not when the question asks for one answer: ambiguous
    assert pick("aとcが正しい。", JA, 1) == ("", UNPARSED)


def test_slot_digits_around_a_point():
    assert extract_number("①0．②4③0", digits=3, decimals=2).number == "0.40"


def test_a_keyword_pointing_ahead_does_not_stop_the_reading():
    out = "正解は以下のとおりです。\n\n検討の結果、選択肢cが正しい。"
    assert pick(out) == ("c", "label_mention")
