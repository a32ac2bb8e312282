import pytest

from jmedllm.text import nfkc, parse_n_select


@pytest.mark.parametrize(
    "text, expected",
    [
        ("誤っているのはどれか。2つ選べ。", 2),
        ("正しいのはどれか。３つ選べ。", 3),  # full-width digit
        ("適切なのはどれか。二つ選べ。", 2),
        ("1つ選べ。", 1),
        ("Which of the following are correct? Select two.", 2),
        ("Choose three.", 3),
        ("What are the two appropriate treatments?", 2),
        ("Which two of the following should be considered first?", 2),
        ("正しいのはどれか。", None),
        ("A 45-year-old man presents after two days of fever. Which is the diagnosis?", None),
        ("Select the condition that fits.", None),
    ],
)
def test_parse_n_select(text, expected):
    assert parse_n_select(text) == expected


def test_nfkc_folds_full_width():
    assert nfkc("ＡＢＣ１２（ａ）") == "ABC12(a)"
