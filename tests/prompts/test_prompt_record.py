"""The Prompt record and build_prompt's guards."""

from __future__ import annotations

import pytest
from prompt_items import ja_select2, ja_single

from jmedllm.prompts import Prompt, build_prompt


def test_text_xor_messages():
    with pytest.raises(ValueError, match="either text or messages"):
        Prompt(text="x", messages=({"role": "user", "content": "x"},), family="alpaca", language="ja")
    with pytest.raises(ValueError, match="either text or messages"):
        Prompt(text=None, messages=None, family="alpaca", language="ja")
    with pytest.raises(ValueError, match="chat prompts only"):
        Prompt(text="x", messages=None, family="alpaca", language="ja", assistant_prefix="答え：")


def test_text_prompt_renders_as_is():
    p = build_prompt(ja_single(), family="terse", mode="letter")
    assert p.render() == p.text
    assert p.render(lambda m: "unused") == p.text
    assert not p.is_chat


def test_chat_render_passes_plain_dict_copies():
    p = build_prompt(ja_single(), family="chat", mode="loglik")
    seen = []
    out = p.render(lambda msgs: seen.append(msgs) or "<chat>")
    assert out == "<chat>答え："
    assert seen[0] == list(p.messages) and seen[0][0] is not p.messages[0]


def test_evaluated_item_among_its_shots_is_an_error():
    with pytest.raises(ValueError, match="igakuqa-116A1: the evaluated item is among its own few-shot exemplars"):
        build_prompt(ja_single(), family="alpaca", mode="generate", shots=[ja_select2(), ja_single()])
