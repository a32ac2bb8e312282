"""JJSIMQA: 460 questions, select-2 items, the stray separator in one answer list."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from jmedllm.benchmarks import LoaderError, load_benchmark
from jmedllm.benchmarks.jjsimqa import RELATIVE_PATH


def test_counts(bench):
    b = bench("jjsimqa")
    assert len(b) == 460 and all(q.language == "ja" and len(q.choices) == 5 for q in b)
    # 205 items have two answer letters in the source, plus 107_888-26 written ["d", ",", "e"].
    assert sum(len(q.answer) == 2 for q in b) == 206
    assert Counter(q.n_select for q in b) == {1: 254, 2: 206}
    assert all(q.meta["points"] == 1 and q.meta["text_only"] for q in b)


def test_stray_separator_and_spaced_select_phrase(bench):
    qs = {q.id: q for q in bench("jjsimqa")}
    assert qs["107_888-26"].answer == {3, 4} and qs["107_888-26"].n_select == 2
    assert any("107_888-26" in w and "stray separator" in w for w in bench("jjsimqa").warnings)
    assert qs["108_2129-160"].n_select == 1  # "1つ選 べ." (a space inside 選べ)


def test_missing_answer_is_an_error(tmp_path):
    path = tmp_path / RELATIVE_PATH
    path.parent.mkdir(parents=True)
    rows = [{"problem_id": "1", "problem_text": "どれか.1つ選べ.", "choices": list("abcde"), "text_only": True,
             "answer": [","], "points": 1.0}]
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    with pytest.raises(LoaderError, match=r"jjsimqa\.jsonl:1: field 'answer': no answer letter"):
        load_benchmark("jjsimqa", tmp_path)
