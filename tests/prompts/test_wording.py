"""The instruction says how many choices to pick, in words our own n_select parser reads back."""

from __future__ import annotations

import pytest
from prompt_items import en_select2, ja_select2

from jmedllm.prompts import FAMILIES, build_prompt
from jmedllm.prompts.wording import task_sentence
from jmedllm.schema import Question
from jmedllm.text import parse_n_select


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("mode", ["generate", "letter"])
def test_select2_wording_in_every_family(family, mode):
    for q, phrase in ((ja_select2(), "2つ選"), (en_select2(), "Select 2")):
        p = build_prompt(q, family=family, mode=mode)
        text = p.text if p.text is not None else p.messages[-1]["content"]
        # the item's own text also says "2つ選べ" / "Which two", so count our phrase in the rest
        own = q.text
        assert phrase in text.replace(own, "")


@pytest.mark.parametrize("language", ["ja", "en"])
@pytest.mark.parametrize("style", ["text", "letter", "explanation"])
@pytest.mark.parametrize("n", [1, 2, 3])
def test_task_sentence_round_trips_through_parse_n_select(language, style, n):
    sentence = task_sentence(n_select=n, numeric=False, style=style, list_choices=True, language=language)
    if n == 1 and language == "en":
        # "Choose the one option": the parser reads digits / number words after the verb only
        assert "the one option" in sentence
    else:
        assert parse_n_select(sentence) == n


def test_loglik_states_the_count_without_listing_choices():
    assert "答えを2つ、「、」で区切って書いてください。" in build_prompt(ja_select2(), family="alpaca", mode="loglik").text
    assert 'The question has 2 answers; write them separated by ", ".' in build_prompt(
        en_select2(), family="alpaca", mode="loglik"
    ).text


def test_n_select_zero_on_a_choice_item_reads_as_one():
    q = Question(id="z", benchmark="b", text="Which?", choices=("x", "y"), answer={0}, n_select=0, language="en")
    assert "Choose the one option" in build_prompt(q, family="alpaca", mode="generate").text
