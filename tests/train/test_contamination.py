"""Contamination guard: planted evaluation questions are found and named; clean text passes."""

from __future__ import annotations

import json

import pytest

from jmedllm.train.contamination import (
    ContaminationError,
    EvalItem,
    TrainingText,
    check_contamination,
    normalize_for_match,
)
from jmedllm.train.corpus import read_corpus


def igakuqa_items(data_root, block="112-A") -> list[EvalItem]:
    path = data_root / "igakuqa" / "data" / "2018" / f"{block}.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [EvalItem("igakuqa", r["problem_id"], r["problem_text"], tuple(r["choices"])) for r in rows]


def by_id(items, item_id):
    return next(i for i in items if i.item_id == item_id)


@pytest.mark.parametrize("text, expected", [
    ("７５歳の男性。", "75歳の男性"),                       # full-width digits, punctuation
    ("Select  TWO  options!", "selecttwooptions"),           # case and spaces
    ("血圧150/72 mmHg（座位）", "血圧15072mmhg座位"),          # symbols and brackets
    ("「緊急手術が必要です」", "緊急手術が必要です"),
])
def test_normalisation(text, expected):
    assert normalize_for_match(text) == expected


def test_containment_score_by_hand():
    # ngram 3. Item pieces: stem "abcdef" -> abc, bcd, cde, def; choice "xy" is shorter than 3 -> one piece.
    # Record "abcdeXxy" normalises to "abcdexxy": n-grams abc, bcd, cde, dex, exx, xxy -> 3 of the stem's 4,
    # and "xy" occurs in it -> 1 of 1. Score = (3 + 1) / 5 = 0.8 >= 0.5; not exact (stem "abcdef" absent).
    item = EvalItem("b", "q1", "abcdef", ("xy",))
    report = check_contamination([TrainingText("t.jsonl:1", "abcdeXxy")], [item], ngram=3, threshold=0.5,
                                 min_exact_chars=3)
    (o,) = report.overlaps
    assert (o.kind, o.score, o.item_id, o.record) == ("near", 0.8, "q1", "t.jsonl:1")
    # Raising the threshold above 0.8 clears it.
    assert check_contamination([TrainingText("t", "abcdeXxy")], [item], ngram=3, threshold=0.81).clean


def test_verbatim_question_in_a_longer_record_is_exact_and_named(data_root):
    items = igakuqa_items(data_root)
    q = by_id(items, "112A22")
    planted = ("以下は練習問題です。\n" + q.stem + "\n" +
               "\n".join(f"{l}. {c}" for l, c in zip("abcde", q.choices)) + "\n答え: e")
    records = [TrainingText("train.jsonl:1", "高血圧の治療について述べる。"), TrainingText("train.jsonl:2", planted)]
    report = check_contamination(records, items)
    assert [(o.benchmark, o.item_id, o.record, o.kind) for o in report.overlaps] == [
        ("igakuqa", "112A22", "train.jsonl:2", "exact")]
    text = report.format()
    assert "112A22" in text and "train.jsonl:2" in text


def test_lightly_edited_question_is_near(data_root):
    items = igakuqa_items(data_root)
    q = by_id(items, "112A34")  # 102 characters
    edited = (q.stem.replace("2歳の男児", "３歳の男児")          # another age, full-width
              .replace("母親", "父親", 1)                        # a changed word
              .replace("。", "．"))                              # other punctuation
    report = check_contamination([TrainingText("synth.jsonl:7", edited)], items)
    (o,) = report.overlaps
    assert (o.item_id, o.kind, o.record) == ("112A34", "near", "synth.jsonl:7")
    assert 0.5 <= o.score < 1


def test_short_stem_needs_its_choices_to_be_exact():
    # The stem (8 normalised characters) is below min_exact_chars: alone it proves nothing.
    long_choice = "洞不全症候群ではペースメーカー植込みを考慮する"
    item = EvalItem("b", "q", "正しいのはどれか。", ("心房細動", "心室細動", long_choice))
    only_stem = TrainingText("r1", "次のうち正しいのはどれか。気胸の治療を答えよ。")
    whole = TrainingText("r2", f"正しいのはどれか。 a 心房細動 b 心室細動 c {long_choice}")
    report = check_contamination([only_stem, whole], [item], ngram=13)
    assert [(o.record, o.kind) for o in report.overlaps] == [("r2", "exact")]


def test_items_too_short_to_attribute_are_counted():
    # No segment reaches 13 characters: nothing can be indexed, the item is reported as unchecked.
    item = EvalItem("b", "tiny", "正しいのは?", ("はい", "いいえ"))
    report = check_contamination([TrainingText("r", "正しいのは? はい いいえ")], [item])
    assert report.unchecked_items == 1 and report.clean
    assert "1 items too short to check" in report.format()


def test_clean_corpus_passes(data_root):
    corpus = read_corpus([data_root / "medtxt"])
    records = [TrainingText(f"{d.source}:{d.line}", d.text) for d in corpus.documents]
    report = check_contamination(records, igakuqa_items(data_root) + igakuqa_items(data_root, "112-B"))
    assert report.clean, report.format()
    assert report.records == 138 and report.items == 75 + 49  # `wc -l`: 112-A has 75 questions, 112-B 49


def test_error_carries_the_report():
    item = EvalItem("igakuqa", "112A1", "高アンモニア血症をきたす疾患はどれか。オルニチン", ())
    report = check_contamination([TrainingText("f.txt:3", item.stem)], [item])
    err = ContaminationError(report, hint="pass --allow-overlap")
    assert err.report is report and "112A1" in str(err) and "f.txt:3" in str(err) and "--allow-overlap" in str(err)
