"""YakugakuQA 2012-2024: one file set (no double counting), answers with notes, images, metadata."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from jmedllm.benchmarks import LoaderError, load_benchmark
from jmedllm.benchmarks.yakugakuqa import parse_answer, section_of


def by_id(b):
    return {q.id: q for q in b.questions}


def test_counts(bench):
    b = bench("yakugakuqa")
    assert len(b) == 4485  # 13 exams x 345, block files only (the combined NNN.jsonl is not read)
    assert not any(p.name[:3].isdigit() and "-" not in p.name for p in b.files)
    assert Counter(q.meta["year"] for q in b) == {y: 345 for y in range(2012, 2025)}
    assert Counter(q.meta["section"] for q in b if q.meta["year"] == 2024) == {"hissu": 90, "riron": 105, "jissen": 150}
    assert sum(q.explanation is not None for q in b) == 4248
    assert sum(q.meta["text_only"] for q in b) == 3021


def test_numbering_joins_metadata_across_blocks(bench):
    q = by_id(bench("yakugakuqa"))["097B001"]
    assert q.meta["number"] == 91 and q.meta["section"] == "riron"  # block A holds questions 1-90
    assert q.meta["category"] == "Physics"  # metadata row 097091
    assert [section_of(n) for n in (1, 90, 91, 195, 196, 345)] == ["hissu", "hissu", "riron", "riron", "jissen", "jissen"]


def test_answers(bench):
    b = by_id(bench("yakugakuqa"))
    assert b["097A001"].answer == {3} and b["097A001"].n_select == 1  # "4"
    assert Counter(len(q.answer) for q in b.values()) == {0: 19, 1: 2489, 2: 1971, 3: 6}
    any_one = b["101A021"]  # ["1", "2（いずれか一つを選択で正解とする）"]
    assert any_one.answer == {0, 1} and any_one.n_select == 1
    assert any_one.meta["answer_note"] == "1,2（いずれか一つを選択で正解とする）"
    no_key = b["102F003"]
    assert no_key.answer == frozenset() and no_key.meta["no_answer"] is True and no_key.n_select == 2
    split_note = b["109F045"]  # the note was split by a comma across three list items
    assert split_note.answer == {1, 4} and "解なしとなった" in split_note.meta["answer_note"]
    assert "解なし" in split_note.meta["note"]  # examiners' note from the metadata file


def test_image_choices(bench):
    b = by_id(bench("yakugakuqa"))
    q = b["097A007"]
    assert q.meta["image_choices"] is True and q.meta["text_only"] is False
    assert q.choices == tuple(f"（画像の選択肢{k}）" for k in range(1, 6)) and q.answer == {2}
    assert len(b["100B003"].choices) == 7 and b["100B003"].answer == {6}  # key "7": as many placeholders
    assert sum(q.meta.get("image_choices", False) for q in b.values()) == 396


def test_n_select_with_spaced_phrase(bench):
    assert by_id(bench("yakugakuqa"))["106A034"].n_select == 1  # "1つ選 べ。"


def test_metadata_duplicates_are_dropped_with_a_warning(bench):
    warnings = [w for w in bench("yakugakuqa").warnings if "repeated rows" in w]
    assert len(warnings) == 9  # 2012-2020
    assert "metadata_097.jsonl: 1035 repeated rows (identical) dropped; 345 kept" in warnings[0]


@pytest.mark.parametrize(
    "items, expected",
    [
        (["1", "3"], ([1, 3], None)),
        (["4", "3"], ([4, 3], None)),
        (["解なし"], ([], "解なし")),
        (["2", "4", "5（いずれか2つを選択で正解とする）"], ([2, 4, 5], "2,4,5（いずれか2つを選択で正解とする）")),
        (["2", "5（第109回では図に不備があり", "解なしとなった）"], ([2, 5], "2,5（第109回では図に不備があり,解なしとなった）")),
    ],
)
def test_parse_answer(tmp_path, items, expected):
    assert parse_answer(items, tmp_path, 1) == expected


def write_year(root, block_rows, metadata_rows, year=2024, exam=109):
    folder = root / "yakugakuqa" / "data" / str(year)
    folder.mkdir(parents=True)
    for block in "ABCDEF":
        rows = block_rows.get(block, [])
        (folder / f"{exam:03d}-{block}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                                          encoding="utf-8")
    (folder / f"metadata_{exam:03d}.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in metadata_rows), encoding="utf-8")


def row(pid="109A001", **changes):
    record = {"problem_id": pid, "problem_text": "どれか。1つ選べ。", "choices": ["1", "2", "3", "4", "5"],
              "text_only": True, "answer": ["2"], "comment": "", "points": "1"}
    record.update(changes)
    return record


def test_inconsistent_metadata_duplicates_are_an_error(tmp_path):
    meta = [{"problem_id": "109001", "category": "Physics", "note": ""},
            {"problem_id": "109001", "category": "Chemistry", "note": ""}]
    write_year(tmp_path, {"A": [row()]}, meta)
    with pytest.raises(LoaderError, match=r"metadata_109\.jsonl:2: field 'problem_id': 109001 repeated with different"):
        load_benchmark("yakugakuqa", tmp_path)


def test_answer_out_of_range_and_unreadable(tmp_path):
    write_year(tmp_path, {"A": [row(answer=["6"])]}, [])
    with pytest.raises(LoaderError, match=r"109-A\.jsonl:1: field 'answer': option number\(s\) \[6\] out of range 1\.\.5"):
        load_benchmark("yakugakuqa", tmp_path)
    (tmp_path / "yakugakuqa" / "data" / "2024" / "109-A.jsonl").write_text(json.dumps(row(answer=["x"])) + "\n",
                                                                         encoding="utf-8")
    with pytest.raises(LoaderError, match=r"109-A\.jsonl:1: field 'answer': 'x' is not an option number"):
        load_benchmark("yakugakuqa", tmp_path)
