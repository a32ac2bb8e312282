"""Numeric-answer items: mark-sheet box templates and value comparison."""

from decimal import Decimal

import pytest

from jmedllm.schema import Question
from jmedllm.scoring.numeric import answer_template, gold_value, numeric_correct


def numeric_item(text, gold, qid="q"):
    return Question(qid, "igakuqa", text, (), frozenset(), 0, "ja", numeric_answer=gold)


@pytest.mark.parametrize(
    "tail, gold, value",
    [
        # IgakuQA templates (question endings as in the data) and gold box digits:
        ("小数第1位を四捨五入すること。解答：①②Torr", "26", Decimal("26")),  # 112C66
        ("小数第2位を四捨五入すること。解答：①.②", "1.2", Decimal("1.2")),  # 112F84: digits 1,2 -> 1.2
        ("小数第3位を四捨五入すること。解答：①.②③", "7.20", Decimal("7.20")),  # 113F84
        ("小数第2位を四捨五入すること。解答：①②.③/人口1,000対", "100", Decimal("10.0")),  # 114C75: 1,0,0 -> 10.0
        ("アミノ酸は4kcal/gとする。解答：1, ①②③ kcal", "130", Decimal("1130")),  # 114F75: printed 1 + 130
        ("小数第2位を四捨五入すること。解答：①.②g/日", "21", Decimal("2.1")),  # 116B50: 2,1 -> 2.1
        ("小数第2位を四捨五入すること。解答：①.②", "04", Decimal("0.4")),  # 116F74: 0,4 -> 0.4
        ("解答：①②％", "27", Decimal("27")),  # 115C75
        # no template (IgakuQA119): the gold read as a number
        ("水分出納バランスを求めよ。", "600", Decimal("600")),
        # gold already resolved by a loader: box count differs, read as written
        ("解答：1, ①②③ kcal", "1130", Decimal("1130")),
        ("解答：①.②", "0.4", Decimal("0.4")),  # digits 0,4 fill ①.② -> 0.4 either way
    ],
)
def test_gold_value(tail, gold, value):
    assert gold_value(numeric_item("前文。" + tail, gold)) == value


def test_answer_template():
    assert answer_template("…解答：1, ①②③ kcal") == "1###"
    assert answer_template("…解答：①②.③/人口1,000対") == "##.#"
    assert answer_template("…を求めよ。") is None


@pytest.mark.parametrize(
    "predicted, correct",
    [
        ("0.4", True),
        ("０．４", True),  # full width
        ("0.40", True),  # same value, same mark sheet
        ("04", False),  # 4 is not 0.4: the box template turns gold "04" into 0.4
        ("4", False),
        (None, False),  # unparsed
        ("abc", False),
    ],
)
def test_numeric_correct_0_4(predicted, correct):
    item = numeric_item("解答：①.②", "04")
    assert numeric_correct(predicted, item) is correct


def test_numeric_correct_thousands():
    item = numeric_item("解答：1, ①②③ kcal", "130")
    assert numeric_correct("1,130", item)
    assert numeric_correct("1130", item)
    assert not numeric_correct("130", item)


def test_numeric_without_gold_is_an_error():
    with pytest.raises(ValueError, match="numeric_answer"):
        gold_value(numeric_item("解答：①", None))
    with pytest.raises(ValueError, match="not a number"):
        gold_value(numeric_item("…", "abc"))
