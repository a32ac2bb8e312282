"""choice_continuations and the mode rules around them."""

from __future__ import annotations

import pytest
from prompt_items import en_single, ja_numeric, ja_single, with_choices

from jmedllm.prompts import FAMILIES, build_prompt, choice_continuations


def test_loglik_ja_choice_text_directly_after_header():
    assert choice_continuations(ja_single(), mode="loglik") == [
        ["夜間高血圧となることが多い。"],
        ["肥満患者では減量を推奨する。"],
        ["α遮断薬が第一選択薬である。"],
        ["家庭血圧では早朝に高血圧となることが多い。"],
        ["持続的気道陽圧法〈CPAP〉で降圧が期待される。"],
    ]


def test_loglik_en_leading_space():
    assert choice_continuations(en_single(), mode="loglik") == [
        [" Lumbar puncture"], [" Blood culture"], [" Head CT"], [" Chest X-ray"],
    ]


def test_letter_variants_ja_and_en():
    ja = choice_continuations(ja_single(), mode="letter")
    assert ja[0] == ["a", "A", "ａ", "Ａ"]
    assert ja[4] == ["e", "E", "ｅ", "Ｅ"]
    en = choice_continuations(en_single(), mode="letter")
    assert en == [
        [" a", " A", " ａ", " Ａ"],
        [" b", " B", " ｂ", " Ｂ"],
        [" c", " C", " ｃ", " Ｃ"],
        [" d", " D", " ｄ", " Ｄ"],
    ]


@pytest.mark.parametrize("n, last", [(6, "f"), (8, "h")])
def test_six_and_eight_choices(n, last):
    q = with_choices(n)
    conts = choice_continuations(q, mode="letter")
    assert len(conts) == n
    assert conts[-1][0] == last
    text = build_prompt(q, family="alpaca", mode="letter").text
    assert f"\n{last}. 選択肢{n - 1}\n" in text
    assert f"\n{chr(ord(last) + 1)}. " not in text


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("mode", ["letter", "loglik"])
@pytest.mark.parametrize("question", [ja_single(), en_single()])
def test_every_scoring_prompt_ends_with_the_answer_header(family, mode, question):
    # The continuations assume the prompt ends exactly with 答え： / Answer: (no trailing space).
    p = build_prompt(question, family=family, mode=mode)
    header = "答え：" if question.language == "ja" else "Answer:"
    rendered = p.render(lambda msgs: "<chat>")
    assert rendered.endswith(header)


def test_numeric_items_cannot_be_scored():
    with pytest.raises(ValueError, match="igakuqa-116B50: a numeric item has no choices"):
        choice_continuations(ja_numeric(), mode="letter")
    with pytest.raises(ValueError, match="mode='generate'"):
        build_prompt(ja_numeric(), family="alpaca", mode="loglik")


def test_bad_modes():
    with pytest.raises(ValueError, match="loglik and letter modes"):
        choice_continuations(ja_single(), mode="generate")
    with pytest.raises(ValueError, match="unknown prompt mode"):
        build_prompt(ja_single(), family="alpaca", mode="cloze")
    with pytest.raises(ValueError, match="unknown prompt family"):
        build_prompt(ja_single(), family="llama", mode="generate")
    with pytest.raises(ValueError, match="letter mode always uses the 'letter' answer style"):
        build_prompt(ja_single(), family="alpaca", mode="letter", answer_style="text")
    with pytest.raises(ValueError, match="cannot ask for the 'explanation'"):
        build_prompt(ja_single(), family="terse", mode="generate", answer_style="explanation")


def test_too_many_choices_for_letters():
    with pytest.raises(ValueError, match="27 choices"):
        build_prompt(with_choices(27), family="alpaca", mode="letter")
