"""Per-item letter constraints (--letter-grammar): what each item's answer may be, as a regular
expression (vLLM structured output) and a GBNF grammar (llama.cpp), on hand-checked cases."""

import re

import pytest

from jmedllm.engines.base import LetterChoice
from jmedllm.evaluate.records import letter_choice
from jmedllm.schema import Question


def q(n_choices=5, n_select=1, selection="n", answer=(0,), order=None):
    return Question("q", "b", "text", tuple(f"choice {i}" for i in range(n_choices)), frozenset(answer),
                    n_select, "ja", selection=selection, answer_order=order)


def test_letter_choice_of_each_kind_of_question():
    assert letter_choice(q()) == LetterChoice("abcde", 1, 1)
    assert letter_choice(q(n_select=2, answer=(0, 3))) == LetterChoice("abcde", 2, 2)
    assert letter_choice(q(4, 0, "all", (1, 2))) == LetterChoice("abcd", 1, None)
    assert letter_choice(q(3, 0, "order", (0, 1, 2), (2, 0, 1))) == LetterChoice("abc", 3, 3)
    assert letter_choice(Question("n", "b", "計算せよ", (), frozenset(), 0, "ja", numeric_answer="12")) is None


@pytest.mark.parametrize("choice,good,bad", [
    (LetterChoice("abcde"), ["a", "e"], ["f", "A", "a,b", "", "ab"]),
    (LetterChoice("abcde", 2, 2), ["a,c", "e,e"], ["a", "a,b,c", "ac", "a,f"]),
    (LetterChoice("abcd", 1, None), ["b", "a,b,c,d"], ["", "e", "a,"]),
    (LetterChoice("abc", 3, 3), ["c,a,b"], ["a,b", "a,b,c,a"]),
])
def test_regex_accepts_exactly_the_answers_of_the_item(choice, good, bad):
    pattern = re.compile(choice.regex())
    assert all(pattern.fullmatch(s) for s in good)
    assert not any(pattern.fullmatch(s) for s in bad)


def test_gbnf_text():
    assert LetterChoice("abc").gbnf() == 'root ::= label\nlabel ::= ("a" | "b" | "c")\n'
    assert LetterChoice("ab", 2, 3).gbnf() == 'root ::= label "," label ("," label)?\nlabel ::= ("a" | "b")\n'
    assert LetterChoice("ab", 1, None).gbnf() == 'root ::= label ("," label)*\nlabel ::= ("a" | "b")\n'


def test_bad_letter_choice():
    with pytest.raises(ValueError):
        LetterChoice("abc", 2, 1)
    with pytest.raises(ValueError):
        LetterChoice("", 1, 1)
