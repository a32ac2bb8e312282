"""sft_example: the training example is the evaluation prompt plus the format_target answer."""

from __future__ import annotations

import pytest
from prompt_items import en_select2, en_single, ja_explained, ja_numeric, ja_select2, ja_single

from jmedllm.prompts import FAMILIES, build_prompt, choice_continuations, format_target, sft_example


@pytest.mark.parametrize("family", [f for f in FAMILIES if not FAMILIES[f].is_chat])
@pytest.mark.parametrize("question", [ja_single(), ja_select2(), en_single(), en_select2(), ja_explained(), ja_numeric()])
def test_text_family_prompt_is_the_eval_prompt(family, question):
    ex = sft_example(question, family=family)
    assert set(ex) == {"prompt", "completion"}
    assert ex["prompt"] == build_prompt(question, family=family, mode="generate").text


def test_alpaca_text_target():
    ex = sft_example(ja_select2(), family="alpaca")
    assert ex["prompt"].endswith("### 応答:\n")
    assert ex["completion"] == "エリスロポエチン製剤、HIF-PH阻害薬"


def test_medpalm_explanation_target():
    ex = sft_example(ja_explained(), family="medpalm")
    assert ex["prompt"].endswith("回答：\n")
    assert ex["completion"] == "正電荷と負電荷の重心が一致しない極性分子は水である。\n答え：水"


def test_letter_target_matches_letter_mode_scoring():
    # English: the prompt ends with "Answer:", the completion starts with the space that the
    # letter-mode continuation " b" also starts with.
    ex = sft_example(en_single(), family="alpaca", target_style="letter")
    assert ex["prompt"] == build_prompt(en_single(), family="alpaca", mode="letter").text
    assert ex["completion"] == " b"
    assert ex["completion"] in choice_continuations(en_single(), mode="letter")[1]
    # Japanese terse: "答え：" then "c, d"
    ex = sft_example(ja_select2(), family="terse")
    assert ex["prompt"].endswith("答え：") and ex["completion"] == "c, d"


def test_exemplar_equals_training_example():
    # A few-shot prompt is the exemplars' training examples followed by the zero-shot prompt.
    shot = ja_select2()
    ex = sft_example(shot, family="alpaca")
    zero = build_prompt(ja_single(), family="alpaca", mode="generate").text
    few = build_prompt(ja_single(), family="alpaca", mode="generate", shots=[shot]).text
    assert few == ex["prompt"] + ex["completion"] + "\n\n" + zero


def test_chat_messages():
    ex = sft_example(en_single(), family="chat")
    assert list(ex) == ["messages"]
    prompt = build_prompt(en_single(), family="chat", mode="generate")
    assert ex["messages"][:-1] == list(prompt.messages)
    assert ex["messages"][-1] == {"role": "assistant", "content": "Blood culture"}
    letter = sft_example(en_single(), family="chat", target_style="letter")
    assert letter["messages"][-1] == {"role": "assistant", "content": "Answer: b"}


def test_target_style_must_fit_the_family():
    with pytest.raises(ValueError, match="cannot ask for the 'explanation'"):
        sft_example(ja_single(), family="terse", target_style="explanation")
    assert sft_example(ja_single(), family="alpaca", target_style="text")["completion"] == format_target(ja_single())


def test_chat_eval_prompt_is_a_prefix_of_the_training_text(tiny_model_dir):
    """With a real tokenizer's chat template: the letter-mode evaluation prompt followed by the
    correct continuation is exactly the start of the rendered training conversation."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)

    def format_chat(messages, add_generation_prompt=True):
        return tok.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=add_generation_prompt)

    for q in (ja_single(), en_single()):
        prompt = build_prompt(q, family="chat", mode="letter").render(format_chat)
        gold = sorted(q.answer)[0]
        continuation = choice_continuations(q, mode="letter")[gold][0]
        trained = format_chat(sft_example(q, family="chat", target_style="letter")["messages"], add_generation_prompt=False)
        assert trained.startswith(prompt + continuation)
        assert prompt.endswith("<|im_start|>assistant\n" + ("答え：" if q.language == "ja" else "Answer:"))


def test_render_chat_without_formatter_is_an_error():
    with pytest.raises(ValueError, match="pass the engine's format_chat"):
        build_prompt(ja_single(), family="chat", mode="generate").render()
