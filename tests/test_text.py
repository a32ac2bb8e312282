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
        # Phrasings met in JJSIMQA / YakugakuQA: a stray space inside 選べ, full-width punctuation.
        ("関節リウマチとFMとの関係について正しいのはどれか.1つ選 べ.", 1),
        ("正しいものはどれか．２つ選べ．", 2),
        ("Please select two.", 2),
        ("Home care. Choose two that are correct.", 2),
        # False positives met in MedMCQA / MMLU: the verb is not an imperative to the reader,
        # or the number counts the options shown rather than the answers asked for.
        ("You choose 2 ampules of the drug and decide to mix it with saline.", None),
        ("The muscles will show signs of which of the four options below?", None),
        ("Choose one answer from the following:", 1),
    ],
)
def test_parse_n_select(text, expected):
    assert parse_n_select(text) == expected


def test_nfkc_folds_full_width():
    assert nfkc("ＡＢＣ１２（ａ）") == "ABC12(a)"


from jmedllm.text import first_nonempty_line, normalize_answer_text, split_answer_parts  # noqa: E402


@pytest.mark.parametrize(
    "text, expected",
    [
        ("夜盲を自覚する。", "夜盲を自覚する"),  # trailing 。
        ("  「夜盲を自覚する」。 ", "夜盲を自覚する"),  # strip, brackets, then 。 (repeated)
        ("c. 夜盲を自覚する", "夜盲を自覚する"),  # label "c. "
        ("ｃ：夜盲を自覚する", "夜盲を自覚する"),  # full-width label and colon
        ("(C) Vitamin C.", "vitamin c"),  # label, trailing ".", lower case
        ("'Kawasaki   disease'", "kawasaki disease"),  # quotes, white space folded
        ("A型肝炎", "a型肝炎"),  # a letter not followed by a label separator stays
        ("X線写真", "x線写真"),
    ],
)
def test_normalize_answer_text(text, expected):
    assert normalize_answer_text(text) == expected


def test_split_answer_parts():
    assert split_answer_parts("a. 夜盲、c. 自然治癒") == ["夜盲", "自然治癒"]
    assert split_answer_parts("1,200mL, 500mL") == ["1,200ml", "500ml"]  # thousands comma kept
    assert split_answer_parts("x；y\nz") == ["x", "y", "z"]  # full-width ; folded by NFKC


def test_first_nonempty_line():
    assert first_nonempty_line("\n\n c \nd") == " c "
    assert first_nonempty_line("  \n") == ""
