"""Numeric-answer items: mark-sheet box templates and value comparison."""

from decimal import Decimal

import pytest

from jmedllm.schema import Question
from jmedllm.scoring.numeric import gold_value, numeric_correct


def numeric_item(text, gold, qid="q"):
    return Question(qid, "igakuqa", text, (), frozenset(), 0, "ja", numeric_answer=gold)


@pytest.mark.parametrize(
    "gold, value",
    [
        # gold values as the IgakuQA loader resolves them from the mark-sheet box digits
        # (tests/benchmarks/test_igakuqa.py::test_numeric_gold checks that decoding)
        ("26", Decimal("26")),  # 112C66
        ("7.20", Decimal("7.20")),  # 113F84
        ("10.0", Decimal("10.0")),  # 114C75: boxes ①②.③ filled 1, 0, 0
        ("1130", Decimal("1130")),  # 114F75: printed 1 + boxes 130
        ("0.4", Decimal("0.4")),  # 116F74: boxes ①.② filled 0, 4
        ("６００", Decimal("600")),  # full width
    ],
)
def test_gold_value(gold, value):
    assert gold_value(numeric_item("前文。", gold)) == value


@pytest.mark.parametrize(
    "predicted, correct",
    [
        ("0.4", True),
        ("０．４", True),  # full width
        ("0.40", True),  # same value, same mark sheet
        ("04", False),  # 4 is not 0.4
        ("4", False),
        (None, False),  # unparsed
        ("abc", False),
    ],
)
def test_numeric_correct_0_4(predicted, correct):
    item = numeric_item("解答：①.②", "0.4")  # key "04" in the data; the loader resolves it
    assert numeric_correct(predicted, item) is correct


def test_numeric_correct_thousands():
    item = numeric_item("解答：1, ①②③ kcal", "1130")  # key "130" in the data
    assert numeric_correct("1,130", item)
    assert numeric_correct("1130", item)
    assert not numeric_correct("130", item)


def test_numeric_without_gold_is_an_error():
    with pytest.raises(ValueError, match="numeric_answer"):
        gold_value(numeric_item("解答：①", None))
    with pytest.raises(ValueError, match="not a number"):
        gold_value(numeric_item("…", "abc"))


def test_loaded_numeric_items_score_their_own_gold(data_root):
    """Every IgakuQA numeric item, as loaded, is right when the model writes its resolved value."""
    from jmedllm.benchmarks import load_benchmark

    items = [q for q in load_benchmark("igakuqa", data_root).questions if q.is_numeric]
    assert len(items) == 12
    for q in items:
        assert numeric_correct(q.numeric_answer, q), q.id
    by_id = {q.id: q for q in items}
    assert numeric_correct("0.4", by_id["116F74"]) and not numeric_correct("4", by_id["116F74"])
    assert numeric_correct("1,130", by_id["114F75"]) and not numeric_correct("130", by_id["114F75"])
