"""IgakuQA119: answers from the CSV, label stripping, repaired and recovered choices."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from jmedllm.benchmarks import LoaderError, load_benchmark
from jmedllm.benchmarks.igakuqa119 import choices_from_text


def by_id(b):
    return {q.id: q for q in b.questions}


def test_counts_and_meta(bench):
    b = bench("igakuqa119")
    assert len(b) == 400
    assert Counter(q.meta["block"] for q in b) == {"A": 75, "B": 50, "C": 75, "D": 75, "E": 50, "F": 75}
    assert sum(not q.meta["text_only"] for q in b) == 103  # has_image: true
    assert all("points" not in q.meta for q in b)  # the source gives none; none are invented
    q = by_id(b)["119A1"]
    assert q.meta["exam"] == 119 and q.meta["year"] == 2025 and q.meta["section"] == "ippan_rinsho"
    assert by_id(b)["119B1"].meta["section"] == "hisshu"
    assert q.text == "自己免疫性膵炎で誤っているのはどれか"  # trailing space stripped
    assert q.choices[0] == "膵の萎縮を認める。"  # "a. " prefix stripped
    assert q.answer == {0}


def test_answers_from_csv(bench):
    b = by_id(bench("igakuqa119"))
    assert b["119A12"].answer == {2, 4}  # "ce"
    assert Counter(len(q.answer) for q in b.values() if q.choices) == {1: 356, 2: 35, 3: 5}
    assert b["119A75"].numeric_answer == "600" and b["119A75"].is_numeric
    assert sorted(q.id for q in b.values() if q.is_numeric) == ["119A75", "119C74", "119C75", "119F75"]


def test_label_without_space(bench):
    assert by_id(bench("igakuqa119"))["119F16"].choices[4] == "細胞傷害性T細胞〈CTL〉"  # source: "e.細胞…"


def test_choices_recovered_from_question_text(bench):
    b = by_id(bench("igakuqa119"))
    q = b["119E48"]
    assert q.choices == ("アトロピン", "ジアゼパム", "フロセミド", "アドレナリン", "グルココルチコイド")
    assert q.answer == {4} and q.meta["choices_from_text"] is True
    assert q.text.endswith("次に静脈内投与すべき薬剤はどれか。")
    assert b["119E45"].choices[4] == "「周りに同じ症状の人はいますか」"


def test_choices_from_text_unit(tmp_path):
    stem, choices = choices_from_text("どれか。 a甲 b乙 C丙 d丁 e戊 ", tmp_path, 1)
    assert stem == "どれか。" and choices == ["甲", "乙", "丙", "丁", "戊"]
    with pytest.raises(LoaderError, match="no choices a-e found"):
        choices_from_text("どれか。", tmp_path, 1)


def test_merged_choices_are_split_back(bench):
    b = by_id(bench("igakuqa119"))
    assert b["119A22"].choices == ("皮膚筋炎", "関節リウマチ", "全身性強皮症", "結節性多発動脈炎", "抗リン脂質抗体症候群")
    assert b["119A22"].answer_texts == ("全身性強皮症",)  # key "c"
    assert b["119C19"].answer_texts == ("低出生体重児の届出",)  # key "d"
    assert b["119C5"].answer_texts == ("経済的虐待",)  # key "b"
    assert all(b[i].meta["choices_repaired"] for i in ("119A22", "119C5", "119C19"))
    assert sum(len(q.choices) == 5 for q in b.values()) == 396


def write_119(root, questions, answers_csv):
    (root / "igakuqa119" / "questions").mkdir(parents=True)
    (root / "igakuqa119" / "results").mkdir(parents=True)
    (root / "igakuqa119" / "questions" / "119A_json.json").write_text(
        json.dumps(questions, ensure_ascii=False, indent=2), encoding="utf-8")
    (root / "igakuqa119" / "results" / "correct_answers.csv").write_text(answers_csv, encoding="utf-8")


def item(number="119A1", **changes):
    record = {"number": number, "question": "どれか。", "choices": ["a. 1", "b. 2", "c. 3", "d. 4", "e. 5"],
              "has_image": False}
    record.update(changes)
    return record


def test_unknown_answer_letter_points_into_the_csv(tmp_path):
    write_119(tmp_path, [item()], "問題番号,解答\n119A1,f\n")
    with pytest.raises(LoaderError, match=r"correct_answers\.csv:2: field '解答': unknown answer letter 'f'"):
        load_benchmark("igakuqa119", tmp_path)


def test_missing_answer_row(tmp_path):
    write_119(tmp_path, [item(), item("119A2")], "問題番号,解答\n119A1,a\n")
    # indent=2: "[" on line 1, the first item on lines 2-13 (4 keys, 5 choices, 3 brackets), the second from 14.
    with pytest.raises(LoaderError, match=r"119A_json\.json:14: field 'number': 119A2 has no row"):
        load_benchmark("igakuqa119", tmp_path)


def test_wrong_choice_label(tmp_path):
    write_119(tmp_path, [item(choices=["a. 1", "c. 2"])], "問題番号,解答\n119A1,a\n")
    with pytest.raises(LoaderError, match="field 'choices': choice 2 is labelled 'c', expected 'b'"):
        load_benchmark("igakuqa119", tmp_path)
