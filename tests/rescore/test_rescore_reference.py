"""Reference verdicts and answers, and the agreement / disagreement listing, on hand-made cases."""

import pytest

from jmedllm.rescore.inputs import InputError
from jmedllm.rescore.reference import answer_reading, compare, jmedllm_reading, markdown, parse_verdict
from jmedllm.schema import Question
from jmedllm.scoring import score_generation

CHOICE = Question("q1", "t", "どれか。2つ選べ。", ("A", "B", "C", "D", "E"), frozenset({0, 2}), 2, "ja")
NUMERIC = Question("q2", "t", "何 mg か。", (), frozenset(), 0, "ja", numeric_answer="0.4")


@pytest.mark.parametrize("value, expected", [
    (True, True), (False, False), (1, True), (0, False), ("True", True), ("false", False), ("1", True), ("0", False),
    ("○", True), ("×", False), ("◯", True), ("✗", False), ("正解", True), ("不正解", False), ("ＴＲＵＥ", True),
    ("yes", True), ("incorrect", False), ("", None), (None, None), ("  ", None),
])
def test_reference_verdicts(value, expected):
    assert parse_verdict(value, "f.csv:3", "ok") is expected


def test_an_unreadable_reference_verdict_is_an_error_naming_the_place():
    with pytest.raises(InputError, match=r"f.csv:3: field 'ok' holds 'maybe', not a verdict"):
        parse_verdict("maybe", "f.csv:3", "ok")


@pytest.mark.parametrize("value, expected", [
    ("ac", "ac"), ("CA", "ac"), ("a, c", "ac"), ("a と c", "ac"), ("ＡＣ", "ac"), ("c,a,a", "ac"), ("af", None),
    ("", None), (None, None), ("[選んだ回答(単数/複数/数値)]", None), ("a or c", None),
])
def test_reference_answers_for_choice_items(value, expected):
    assert answer_reading(value, CHOICE) == expected


@pytest.mark.parametrize("value, expected", [("0.40", "0.4"), ("０.４", "0.4"), ("600", "600"), ("1,200", "1200"),
                                             ("", None), ("abc", None)])
def test_reference_answers_for_numeric_items(value, expected):
    assert answer_reading(value, NUMERIC) == expected


def test_jmedllm_readings_use_the_same_canonical_form():
    assert jmedllm_reading(CHOICE, score_generation(CHOICE, "答え：c, a")) == "ac"
    assert jmedllm_reading(CHOICE, score_generation(CHOICE, "わかりません")) is None
    assert jmedllm_reading(NUMERIC, score_generation(NUMERIC, "答え：0.40")) == "0.4"


def _rec(key, output, **ref):
    return {"key": key, "id": key, "output": output, "reference": ref, "source": {"where": f"f.jsonl:{key}"}}


def test_agreement_counts_and_every_disagreement_with_both_readings():
    items = []
    for key, output, ref in [
        ("1", "答え：a,c", {"verdict": True, "answer": "ac"}),  # agree on both
        ("2", "答え：a,b", {"verdict": True, "answer": "ac"}),  # disagree on both (jmedllm: ab, wrong)
        ("3", "わかりません", {"verdict": False, "answer": ""}),  # unparsed vs no answer: agree
        ("4", "答え：a,c", {"verdict": None, "answer": "a c"}),  # no reference verdict: not compared
        ("5", "c と a です", {"verdict": False, "answer": "ca"}),  # verdict disagrees only
    ]:
        items.append((CHOICE, score_generation(CHOICE, output), _rec(key, output, **ref)))
    counts, dis = compare(items, verdict_field="ok", answer_field="parsed")
    # verdicts compared on items 1, 2, 3, 5: agree on 1 and 3 -> 2 / 4; answers on 1, 2, 4, 5 (3 is empty): 3 / 4
    assert counts["verdict"] == {"field": "ok", "compared": 4, "agree": 2, "no_reference": 1, "rate": 0.5}
    assert counts["answer"] == {"field": "parsed", "compared": 4, "agree": 3, "no_reference": 1, "rate": 0.75}
    assert [(d["key"], d["on"]) for d in dis] == [("2", ["verdict", "answer"]), ("5", ["verdict"])]
    assert dis[0]["jmedllm"]["answer"] == "ab" and dis[0]["jmedllm"]["correct"] is False
    assert dis[0]["reference"] == {"verdict": True, "answer": "ac", "reading": "ac"}
    text = markdown(counts, dis)
    assert "| verdict | `ok` | 4 | 2 | 50.0 % | 1 |" in text
    assert "2 item(s) where jmedllm disagrees" in text and "| 2 | verdict+answer | ab (" in text
