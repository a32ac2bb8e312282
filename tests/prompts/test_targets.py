"""format_target: the ideal response, for exemplars and SFT targets."""

from __future__ import annotations

import pytest
from prompt_items import en_select2, en_single, ja_explained, ja_numeric, ja_select2, ja_single

from jmedllm.prompts import format_target
from jmedllm.schema import Question


def test_text_single_is_the_choice_text():
    assert format_target(ja_single()) == "α遮断薬が第一選択薬である。"  # answer {2} = choice c


def test_text_several_joined_per_language():
    # answer {2, 3}: choices c and d, joined with "、" in Japanese
    assert format_target(ja_select2()) == "エリスロポエチン製剤、HIF-PH阻害薬"
    # answer {0, 2}: Furosemide and Bumetanide, joined with ", " in English
    assert format_target(en_select2()) == "Furosemide, Bumetanide"
    # the separator follows the requested language, not the item's
    assert format_target(ja_select2(), language="en") == "エリスロポエチン製剤, HIF-PH阻害薬"


def test_letter():
    assert format_target(en_single(), style="letter") == "b"
    assert format_target(ja_select2(), style="letter") == "c, d"


def test_explanation_then_answer_line():
    assert format_target(ja_explained(), style="explanation") == (
        "正電荷と負電荷の重心が一致しない極性分子は水である。\n答え：水"
    )


def test_explanation_without_explanation_is_the_answer_line():
    assert format_target(en_select2(), style="explanation") == "Answer: Furosemide, Bumetanide"


def test_numeric_gives_the_number_in_every_style():
    q = ja_numeric()
    assert format_target(q) == "2.1"
    assert format_target(q, style="letter") == "2.1"
    assert format_target(q, style="explanation") == "答え：2.1"


def test_errors():
    with pytest.raises(ValueError, match="unknown answer style"):
        format_target(ja_single(), style="json")
    no_gold = Question(id="x1", benchmark="b", text="?", choices=("a", "b"), answer=frozenset(), n_select=1, language="en")
    with pytest.raises(ValueError, match="x1: no correct choice"):
        format_target(no_gold)
    no_number = Question(id="x2", benchmark="b", text="?", choices=(), answer=frozenset(), n_select=0, language="ja")
    with pytest.raises(ValueError, match="x2: numeric item without numeric_answer"):
        format_target(no_number)
    with pytest.raises(ValueError, match="unknown prompt language"):
        format_target(ja_single(), language="de")
