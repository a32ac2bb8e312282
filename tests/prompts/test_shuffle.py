"""Choice shuffling: answers, kinki and per-choice metadata follow their choices."""

from __future__ import annotations

import pytest
from prompt_items import ja_numeric

from jmedllm.prompts import format_target, permutation_for, permute_choices, shuffle_choices, to_original_indices
from jmedllm.schema import Question


def item(**meta) -> Question:
    return Question(
        id="igakuqa-112A5",
        benchmark="igakuqa",
        text="誤っているのはどれか。2つ選べ。",
        choices=("A0", "B1", "C2", "D3", "E4"),
        answer={1, 3},
        n_select=2,
        language="ja",
        meta={"kinki": (0, 4), "breakdown": ("10", "20", "30", "25", "15"), **meta},
    )


def test_hand_checked_permutation():
    # perm = new position -> original index: new a=C2, b=A0, c=E4, d=B1, e=D3
    q = permute_choices(item(), (2, 0, 4, 1, 3))
    assert q.choices == ("C2", "A0", "E4", "B1", "D3")
    # answer was {1 (B1), 3 (D3)}: B1 now at position 3, D3 at position 4
    assert q.answer == frozenset({3, 4})
    assert q.answer_letters == "de"
    # kinki was {0 (A0), 4 (E4)}: A0 now at 1, E4 at 2
    assert q.meta["kinki"] == (1, 2)
    # breakdown follows the choices: new order C2, A0, E4, B1, D3
    assert q.meta["breakdown"] == ("30", "10", "15", "20", "25")
    assert q.meta["permutation"] == (2, 0, 4, 1, 3)
    # the gold text answer is unchanged in content, now in the new choice order (d, e)
    assert format_target(q) == "B1、D3"


def test_map_back_predictions():
    q = permute_choices(item(), (2, 0, 4, 1, 3))
    # a model that picked new positions d and e picked originals 1 and 3: the gold answer
    assert to_original_indices(q, {3, 4}) == frozenset({1, 3})
    # new position a is original C2 (index 2)
    assert to_original_indices(q, [0]) == frozenset({2})
    # an unshuffled item maps to itself
    assert to_original_indices(item(), {0, 2}) == frozenset({0, 2})
    with pytest.raises(ValueError, match="out of range"):
        to_original_indices(q, {5})


def test_shuffling_twice_composes_to_the_original_order():
    once = permute_choices(item(), (2, 0, 4, 1, 3))  # C2 A0 E4 B1 D3
    twice = permute_choices(once, (4, 3, 2, 1, 0))  # reversed: D3 B1 E4 A0 C2
    assert twice.choices == ("D3", "B1", "E4", "A0", "C2")
    assert twice.meta["permutation"] == (3, 1, 4, 0, 2)
    assert twice.answer == frozenset({0, 1})  # D3, B1
    assert to_original_indices(twice, twice.answer) == frozenset({1, 3})


def test_breakdown_as_letter_mapping():
    q = permute_choices(item(breakdown={"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}), (2, 0, 4, 1, 3))
    # original c (3) is now a, a (1) is b, e (5) is c, b (2) is d, d (4) is e
    assert q.meta["breakdown"] == {"b": 1, "d": 2, "a": 3, "e": 4, "c": 5}


def test_shuffle_choices_is_stable_and_consistent():
    q = item()
    s1, s2 = shuffle_choices(q, seed=3), shuffle_choices(q, seed=3)
    assert s1 == s2
    perm = permutation_for(q, 3)
    assert sorted(perm) == [0, 1, 2, 3, 4]
    assert s1 == permute_choices(q, perm)
    # every correct and forbidden choice keeps its text
    assert {s1.choices[i] for i in s1.answer} == {"B1", "D3"}
    assert {s1.choices[i] for i in s1.meta["kinki"]} == {"A0", "E4"}
    # seeds give different orders for a five-choice item (120 orders; 20 seeds)
    assert len({permutation_for(q, s) for s in range(20)}) > 5


def test_bad_metadata_is_an_error():
    with pytest.raises(ValueError, match=r"igakuqa-112A5: meta\['kinki'\] must hold choice indices"):
        shuffle_choices(item(kinki=("cde",)), seed=0)
    with pytest.raises(ValueError, match="breakdown'] has 4 entries for 5 choices"):
        shuffle_choices(item(breakdown=("1", "2", "3", "4")), seed=0)
    with pytest.raises(ValueError, match="not a permutation"):
        permute_choices(item(), (0, 0, 1, 2, 3))


def test_numeric_items_are_unchanged():
    q = ja_numeric()
    assert shuffle_choices(q, seed=1) is q
