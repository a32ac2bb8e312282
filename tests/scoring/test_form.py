"""Well-formed generated answers, on hand-written Japanese and English outputs."""

import pytest

from jmedllm.schema import Question
from jmedllm.scoring.form import answer_form, form_counts
from jmedllm.scoring.verdict import score_generation

Q = Question(id="1", benchmark="t", text="高アンモニア血症をきたす疾患はどれか。",
             choices=("Gaucher病", "von Gierke病", "Hurler症候群", "メープルシロップ尿症", "OTC欠損症"),
             answer=frozenset({4}), n_select=1, language="ja")
Q2 = Question(id="2", benchmark="t", text="Choose two.", choices=("fever", "cough", "rash", "pain", "edema"),
              answer=frozenset({0, 1}), n_select=2, language="en")


def form(q, output):
    v = score_generation(q, output)
    return answer_form(q, output, v.predicted, v.parsed)


@pytest.mark.parametrize("q, output, expected", [
    (Q, "e", "well-formed"),
    (Q, "答え: e", "well-formed"),
    (Q, "OTC欠損症", "well-formed"),
    (Q, "メープルシロップ尿症", "well-formed"),  # wrong, but well-formed: form is not correctness
    (Q, "", "unparsed"),
    (Q, "症例は65歳男性。既往歴に特記事項なし。", "unparsed"),
    (Q, "a, e", "wrong number"),
    (Q, "e\n症例は65歳男性で、2年前から咳嗽を自覚していた。胸部X線写真で異常影を認める。", "rambling"),
    (Q2, "a, b", "well-formed"),
    (Q2, "a", "wrong number"),
])
def test_answer_forms(q, output, expected):
    assert form(q, output) == expected


def test_a_long_single_line_is_rambling():
    # longest choice 'メープルシロップ尿症' is 10 characters; + 16 slack = 26: 'e' followed by 30 more is too long
    assert answer_form(Q, "e" + "。" * 30, {4}, True) == "rambling"
    assert answer_form(Q, "e" + "。" * 20, {4}, True) == "well-formed"


def test_form_counts():
    assert form_counts(["well-formed", "rambling", "well-formed"]) == {
        "well-formed": 2, "unparsed": 0, "wrong number": 0, "rambling": 1}
    with pytest.raises(ValueError):
        form_counts(["odd"])
