"""Golden renderings: the exact prompt text of every family, in Japanese and English.

The expected strings are written out by hand from the wording documented in
docs/prompts.md; a change of wording must change these tests on purpose.
"""

from __future__ import annotations

from prompt_items import en_context, en_select2, en_single, ja_explained, ja_numeric, ja_select2, ja_single

from jmedllm.prompts import build_prompt

JA_BODY = """問題：睡眠時無呼吸症候群による高血圧について、正しくないのはどれか。
選択肢：
a. 夜間高血圧となることが多い。
b. 肥満患者では減量を推奨する。
c. α遮断薬が第一選択薬である。
d. 家庭血圧では早朝に高血圧となることが多い。
e. 持続的気道陽圧法〈CPAP〉で降圧が期待される。"""

EN_BODY = """Question: A 30-year-old woman has fever and neck stiffness. Which test should be done first?
Options:
a. Lumbar puncture
b. Blood culture
c. Head CT
d. Chest X-ray"""


# ---------------------------------------------------------------- alpaca

def test_alpaca_generate_ja():
    expected = (
        "### 指示:\n"
        "次の問題に答えてください。答えとなる選択肢を1つ選び、その選択肢の文をそのまま書いてください。\n"
        "\n"
        "### 入力:\n" + JA_BODY + "\n"
        "\n"
        "### 応答:\n"
    )
    p = build_prompt(ja_single(), family="alpaca", mode="generate")
    assert p.text == expected
    assert (p.family, p.language, p.mode, p.answer_style, p.messages) == ("alpaca", "ja", "generate", "text", None)


def test_alpaca_generate_en():
    expected = (
        "### Instruction:\n"
        "Answer the following question. Choose the one option that answers the question and write its text exactly as given.\n"
        "\n"
        "### Input:\n" + EN_BODY + "\n"
        "\n"
        "### Response:\n"
    )
    assert build_prompt(en_single(), family="alpaca", mode="generate").text == expected


def test_alpaca_letter_en_ends_with_answer_header():
    expected = (
        "### Instruction:\n"
        "Answer the following question. Choose the one option that answers the question and write its letter.\n"
        "\n"
        "### Input:\n" + EN_BODY + "\n"
        "\n"
        "### Response:\n"
        "Answer:"
    )
    assert build_prompt(en_single(), family="alpaca", mode="letter").text == expected


def test_alpaca_loglik_ja_does_not_list_choices():
    expected = (
        "### 指示:\n"
        "次の問題に答えてください。答えを書いてください。\n"
        "\n"
        "### 入力:\n"
        "問題：睡眠時無呼吸症候群による高血圧について、正しくないのはどれか。\n"
        "\n"
        "### 応答:\n"
        "答え："
    )
    assert build_prompt(ja_single(), family="alpaca", mode="loglik").text == expected


def test_alpaca_few_shot_ja_select2_exemplar():
    # One exemplar (select 2) then the evaluated item; the exemplar's response is its two
    # correct choice texts (c, d) joined with "、".
    expected = (
        "### 指示:\n"
        "次の問題に答えてください。答えとなる選択肢を2つ選び、選んだ選択肢の文を「、」で区切ってそのまま書いてください。\n"
        "\n"
        "### 入力:\n"
        "問題：腎性貧血の治療に用いるのはどれか。2つ選べ。\n"
        "選択肢：\n"
        "a. 鉄剤\n"
        "b. 葉酸\n"
        "c. エリスロポエチン製剤\n"
        "d. HIF-PH阻害薬\n"
        "e. ビタミンB12\n"
        "\n"
        "### 応答:\n"
        "エリスロポエチン製剤、HIF-PH阻害薬\n"
        "\n"
        "### 指示:\n"
        "次の問題に答えてください。答えとなる選択肢を1つ選び、その選択肢の文をそのまま書いてください。\n"
        "\n"
        "### 入力:\n" + JA_BODY + "\n"
        "\n"
        "### 応答:\n"
    )
    assert build_prompt(ja_single(), family="alpaca", mode="generate", shots=[ja_select2()]).text == expected


def test_alpaca_context_en():
    expected = (
        "### Instruction:\n"
        "Answer the following question. Choose the one option that answers the question and write its text exactly as given.\n"
        "\n"
        "### Input:\n"
        "Context: Patients mobilised within 24 h left hospital 1.5 days earlier.\n"
        "Question: Does early mobilisation shorten hospital stay?\n"
        "Options:\n"
        "a. yes\n"
        "b. no\n"
        "c. maybe\n"
        "\n"
        "### Response:\n"
    )
    assert build_prompt(en_context(), family="alpaca", mode="generate").text == expected


# ---------------------------------------------------------------- medpalm

def test_medpalm_generate_ja():
    expected = (
        "あなたは医療の専門家として、医療に関する問題に答えます。\n"
        "\n" + JA_BODY + "\n"
        "段階的に考えて理由を簡潔に述べてから、答えとなる選択肢を1つ選び、"
        "最後の行に「答え：」に続けてその選択肢の文を書いてください。\n"
        "\n"
        "回答：\n"
    )
    p = build_prompt(ja_single(), family="medpalm", mode="generate")
    assert p.text == expected
    assert p.answer_style == "explanation"


def test_medpalm_generate_en_select2():
    expected = (
        "You are a medical expert answering questions on medicine.\n"
        "\n"
        "Question: Which two drugs are loop diuretics?\n"
        "Options:\n"
        "a. Furosemide\n"
        "b. Spironolactone\n"
        "c. Bumetanide\n"
        "d. Amiloride\n"
        "Select 2 options that answer the question. Explain your reasoning step by step, then write the final "
        'answer on its own last line as "Answer: " followed by the option texts, separated by ", ".\n'
        "\n"
        "Solution:\n"
    )
    assert build_prompt(en_select2(), family="medpalm", mode="generate").text == expected


def test_medpalm_exemplar_with_explanation_ja():
    # The exemplar (YakugakuQA, with an explanation) answers with the explanation, then the
    # answer line holding choice d's text; the preamble appears once.
    expected = (
        "あなたは医療の専門家として、医療に関する問題に答えます。\n"
        "\n"
        "問題：永久双極子モーメントをもつ分子はどれか。1つ選べ。\n"
        "選択肢：\n"
        "a. ベンゼン\n"
        "b. メタン\n"
        "c. 二酸化炭素\n"
        "d. 水\n"
        "e. 四塩化炭素\n"
        "段階的に考えて理由を簡潔に述べてから、答えとなる選択肢を1つ選び、"
        "最後の行に「答え：」に続けてその選択肢の文を書いてください。\n"
        "\n"
        "回答：\n"
        "正電荷と負電荷の重心が一致しない極性分子は水である。\n"
        "答え：水\n"
        "\n" + JA_BODY + "\n"
        "段階的に考えて理由を簡潔に述べてから、答えとなる選択肢を1つ選び、"
        "最後の行に「答え：」に続けてその選択肢の文を書いてください。\n"
        "\n"
        "回答：\n"
    )
    assert build_prompt(ja_single(), family="medpalm", mode="generate", shots=[ja_explained()]).text == expected


# ---------------------------------------------------------------- terse

def test_terse_ja():
    expected = (
        "問題：睡眠時無呼吸症候群による高血圧について、正しくないのはどれか。\n"
        "a. 夜間高血圧となることが多い。\n"
        "b. 肥満患者では減量を推奨する。\n"
        "c. α遮断薬が第一選択薬である。\n"
        "d. 家庭血圧では早朝に高血圧となることが多い。\n"
        "e. 持続的気道陽圧法〈CPAP〉で降圧が期待される。\n"
        "答え："
    )
    assert build_prompt(ja_single(), family="terse", mode="letter").text == expected
    # terse generate asks for a letter too: the same text
    assert build_prompt(ja_single(), family="terse", mode="generate").text == expected


def test_terse_en_select2_with_exemplar():
    expected = (
        "Question: A 30-year-old woman has fever and neck stiffness. Which test should be done first?\n"
        "a. Lumbar puncture\n"
        "b. Blood culture\n"
        "c. Head CT\n"
        "d. Chest X-ray\n"
        "Answer: b\n"
        "\n"
        "Question: Which two drugs are loop diuretics?\n"
        "a. Furosemide\n"
        "b. Spironolactone\n"
        "c. Bumetanide\n"
        "d. Amiloride\n"
        "Select 2.\n"
        "Answer:"
    )
    assert build_prompt(en_select2(), family="terse", mode="letter", shots=[en_single()]).text == expected


def test_terse_ja_select2_hint():
    p = build_prompt(ja_select2(), family="terse", mode="letter")
    assert p.text.endswith("e. ビタミンB12\n2つ選べ。\n答え：")


# ---------------------------------------------------------------- chat

def test_chat_generate_ja_with_exemplar():
    p = build_prompt(ja_single(), family="chat", mode="generate", shots=[ja_select2()])
    assert p.text is None
    assert p.assistant_prefix == ""
    assert p.messages == (
        {"role": "system", "content": "あなたは医療の専門家です。問題に正確に答えてください。"},
        {
            "role": "user",
            "content": "次の問題に答えてください。答えとなる選択肢を2つ選び、選んだ選択肢の文を「、」で区切ってそのまま書いてください。\n"
            "\n"
            "問題：腎性貧血の治療に用いるのはどれか。2つ選べ。\n"
            "選択肢：\n"
            "a. 鉄剤\n"
            "b. 葉酸\n"
            "c. エリスロポエチン製剤\n"
            "d. HIF-PH阻害薬\n"
            "e. ビタミンB12",
        },
        {"role": "assistant", "content": "エリスロポエチン製剤、HIF-PH阻害薬"},
        {
            "role": "user",
            "content": "次の問題に答えてください。答えとなる選択肢を1つ選び、その選択肢の文をそのまま書いてください。\n"
            "\n" + JA_BODY,
        },
    )


def test_chat_letter_en_has_answer_prefix():
    p = build_prompt(en_single(), family="chat", mode="letter")
    assert p.messages == (
        {"role": "system", "content": "You are a medical expert. Answer questions accurately."},
        {
            "role": "user",
            "content": "Answer the following question. Choose the one option that answers the question and write its letter.\n"
            "\n" + EN_BODY,
        },
    )
    assert p.assistant_prefix == "Answer:"
    # rendered through a chat formatter, the prefix follows the generation prompt
    assert p.render(lambda msgs: f"<{len(msgs)} messages>") == "<2 messages>Answer:"


# ---------------------------------------------------------------- numeric

def test_numeric_ja_alpaca_asks_for_a_number():
    expected = (
        "### 指示:\n"
        "次の問題に答えてください。答えを数値で書いてください。\n"
        "\n"
        "### 入力:\n"
        "問題：1日尿蛋白量（g/日）を求めよ。解答：①.②g/日\n"
        "\n"
        "### 応答:\n"
    )
    assert build_prompt(ja_numeric(), family="alpaca", mode="generate").text == expected


def test_numeric_terse_en_prompt_language():
    # an English prompt for a Japanese item: the prompt's own words follow `language`
    expected = "Question: 1日尿蛋白量（g/日）を求めよ。解答：①.②g/日\nAnswer:"
    assert build_prompt(ja_numeric(), family="terse", mode="generate", language="en").text == expected
