"""IgakuQA 2018-2022: counts, every documented quirk, en/ja alignment, points per section."""

from __future__ import annotations

from collections import Counter

import pytest

from jmedllm.benchmarks import LoaderError, load_benchmark
from jmedllm.benchmarks.igakuqa import SECTIONS, numeric_gold, parse_kinki

from .sources import igakuqa_item, igakuqa_meta, igakuqa_translation, write_igakuqa, write_jsonl


def by_id(benchmark):
    return {q.id: q for q in benchmark.questions}


def test_counts(bench):
    ja = bench("igakuqa")
    assert len(ja) == 2000 and len(bench("igakuqa-en")) == 2000
    assert sum(not q.meta["text_only"] for q in ja) == 529
    assert sum(q.meta["text_only"] and len(q.choices) == 5 for q in ja) == 1455
    # The question text asks for 2 or 3 choices in 243 + 55 = 298 questions (the README's 298 multi-answer).
    assert Counter(q.n_select for q in ja) == {1: 1702, 2: 243, 3: 55}
    assert all(q.language == "ja" and q.benchmark == "igakuqa" for q in ja)
    assert Counter(q.meta["year"] for q in ja) == {2018: 400, 2019: 400, 2020: 400, 2021: 400, 2022: 400}


def test_n_select_matches_gold_count_except_the_a_or_d_item(bench):
    for q in bench("igakuqa"):
        if q.choices and q.id != "112B30":
            assert q.n_select == len(q.answer), q.id


def test_a_or_d_answer_112B30(bench):
    q = by_id(bench("igakuqa"))["112B30"]
    assert q.answer == {0, 3} and q.n_select == 1 and q.meta["answer_note"] == "a or d"


def test_numeric_items_keep_a_gold_value(bench):
    numeric = {q.id: q for q in bench("igakuqa") if q.is_numeric}
    assert len(numeric) == 12
    assert all(not q.answer and q.numeric_answer for q in numeric.values())
    # Slot digits placed into the template by hand: 解答：①.②g/日 with "21" is 2.1; ①.② with "04" is 0.4;
    # ①②.③ with "100" is 10.0; "1, ①②③ kcal" with "130" is 1,130 kcal; keys with a point stay as they are.
    expected = {"116B50": "2.1", "116F74": "0.4", "114C75": "10.0", "114F75": "1130", "112F84": "1.2",
                "113F84": "7.20", "112C66": "26"}
    for qid, value in expected.items():
        assert numeric[qid].numeric_answer == value, qid
    assert numeric["116B50"].meta["numeric_answer_raw"] == "21"
    assert numeric["116B50"].meta["answer_template"] == "①.②g/日"


@pytest.mark.parametrize(
    "raw, text, expected",
    [
        ("21", "…を求めよ。解答：①.②g/日", ("2.1", "①.②g/日", True)),
        ("04", "解答：①.②", ("0.4", "①.②", True)),
        ("1.2", "解答：①.②", ("1.2", "①.②", True)),
        ("130", "解答：1, ①②③ kcal", ("1130", "1, ①②③ kcal", True)),
        ("26", "解答：①②Torr", ("26", "①②Torr", True)),
        ("7", "解答：①②Torr", ("7", "①②Torr", False)),  # one digit for two slots: kept, flagged
        ("3.5", "解答：①②③", ("3.5", "①②③", False)),  # point placed differently from the template
        ("40", "…を求めよ。", ("40", None, True)),  # no template at all
    ],
)
def test_numeric_gold(raw, text, expected):
    assert numeric_gold(raw, text) == expected


def test_six_and_eight_choices(bench):
    wide = {q.id: len(q.choices) for q in bench("igakuqa") if len(q.choices) > 5}
    assert wide == {"113C66": 6, "113F83": 8, "115D75": 8, "116F75": 6}
    assert by_id(bench("igakuqa"))["113F83"].answer == {6}  # "g"


def test_points_are_ints_and_zero_marks_exclusion(bench):
    points = Counter(q.meta["points"] for q in bench("igakuqa"))
    assert points == {1: 1741, 3: 248, 0: 11}


def test_sections_follow_blocks(bench):
    assert SECTIONS == {"A": "ippan_rinsho", "B": "hisshu", "C": "ippan_rinsho", "D": "ippan_rinsho",
                        "E": "hisshu", "F": "ippan_rinsho"}
    for q in bench("igakuqa"):
        assert q.meta["section"] == SECTIONS[q.meta["block"]]
        assert q.meta["exam"] == q.meta["year"] - 1906  # 112th exam in 2018


def test_points_per_section_reproduce_the_official_maxima(bench):
    # Published maxima (必修 / 一般+臨床), from the exam papers via the data README.
    official = {112: (200, 299), 113: (200, 296), 114: (197, 299), 115: (200, 300), 116: (197, 297)}
    for spec in ("igakuqa", "igakuqa-en"):
        totals = Counter()
        for q in bench(spec):
            totals[q.meta["exam"], q.meta["section"]] += q.meta["points"]
        for exam, (hisshu, ippan) in official.items():
            assert (totals[exam, "hisshu"], totals[exam, "ippan_rinsho"]) == (hisshu, ippan), (spec, exam)


def test_metadata_is_joined(bench):
    ja = by_id(bench("igakuqa"))
    q = ja["116A1"]
    assert q.meta["category"] == "呼吸器" and q.meta["kinki"] == ()
    assert q.meta["human_accuracy"] == 87.8
    assert q.meta["breakdown"] == (2.6, 0.0, 87.8, 4.7, 4.9)
    assert q.meta["source_file"] == "igakuqa/data/2022/116-A.jsonl" and q.meta["source_line"] == 1
    assert "human_accuracy" not in ja["112A43"].meta  # the source leaves it empty
    assert "breakdown" not in ja["112A43"].meta
    assert sum("kinki" in q.meta for q in ja.values()) == 2000


def test_kinki_quirks_on_real_items(bench):
    ja = by_id(bench("igakuqa"))
    assert ja["112A27"].meta["kinki"] == (2, 3, 4)  # ["cde"]
    assert ja["112C9"].meta["kinki"] == (0, 1, 2, 3)  # ["abcd"]
    assert ja["115E28"].meta["kinki"] == (3, 4)  # ["d", " e"]
    assert ja["112F66"].meta["kinki"] == (1,)  # ["ｂ"] full-width
    assert "禁忌" in ja["112A27"].meta["kinki_reason"]
    assert sum(bool(q.meta["kinki"]) for q in ja.values()) == 135
    assert any("112A27" in w and "concatenates" in w for w in bench("igakuqa").warnings)


def test_parse_kinki(tmp_path):
    path = tmp_path / "m.jsonl"
    assert parse_kinki(["c"], 5, path, 1) == ((2,), [])
    indices, notes = parse_kinki(["d", " e", "ａ"], 5, path, 1)
    assert indices == (0, 3, 4) and len(notes) == 2
    with pytest.raises(LoaderError, match=r"m\.jsonl:4: field 'kinki': unknown choice letter 'f'"):
        parse_kinki(["f"], 5, path, 4)


def test_english_is_aligned_with_japanese(bench):
    ja, en = bench("igakuqa"), bench("igakuqa-en")
    assert [q.id for q in ja] == [q.id for q in en]
    for a, b in zip(ja, en):
        assert b.language == "en" and b.benchmark == "igakuqa-en"
        assert (a.answer, a.numeric_answer, len(a.choices)) == (b.answer, b.numeric_answer, len(b.choices))
        assert a.n_select == b.n_select
        drop = ("source_file", "source_line")
        assert {k: v for k, v in a.meta.items() if k not in drop} == {k: v for k, v in b.meta.items() if k not in drop}
        assert b.meta["source_file"].endswith("_translate.jsonl")


def test_english_n_select_falls_back_to_the_japanese_text_never_to_gold(tmp_path):
    items = [
        igakuqa_item("116A1", problem_text="正しいのはどれか。2つ選べ。", answer=["a", "c"]),
        igakuqa_item("116A2", problem_text="正しいのはどれか。", answer=["a", "c"]),  # says nothing: 1
        igakuqa_item("116A3", problem_text="正しいのはどれか。", answer=["b"]),
    ]
    translations = [
        igakuqa_translation("116A1", problem_text_en="Which are correct?", answer=["a", "c"]),  # falls back: 2
        igakuqa_translation("116A2", problem_text_en="Which are correct?", answer=["a", "c"]),
        igakuqa_translation("116A3", problem_text_en="Which are correct? Select three.", answer=["b"]),
    ]
    write_igakuqa(tmp_path, items, translations=translations)
    en = {q.id: q.n_select for q in load_benchmark("igakuqa-en", tmp_path)}
    assert en == {"116A1": 2, "116A2": 1, "116A3": 3}


def test_misspelled_asnwer_key(tmp_path):
    translation = igakuqa_translation()
    del translation["answer"]
    translation["asnwer"] = ["c"]
    write_igakuqa(tmp_path, [igakuqa_item()], translations=[translation])
    assert load_benchmark("igakuqa-en", tmp_path).questions[0].answer == {2}
    both = igakuqa_translation(asnwer=["d"])  # "answer": ["c"] and "asnwer": ["d"] disagree
    write_igakuqa(tmp_path, [igakuqa_item()], translations=[both])
    with pytest.raises(LoaderError, match=r"116-A_translate\.jsonl:1: field 'asnwer': disagrees"):
        load_benchmark("igakuqa-en", tmp_path)


def test_real_asnwer_rows_are_read(data_root):
    path = data_root / "igakuqa" / "data" / "2022" / "116-A_translate.jsonl"
    assert '"asnwer"' in path.read_text(encoding="utf-8")  # the quirk is present in the source


def test_translation_with_another_gold_is_an_error(tmp_path):
    write_igakuqa(tmp_path, [igakuqa_item()], translations=[igakuqa_translation(answer=["d"])])
    with pytest.raises(LoaderError, match=r"116-A_translate\.jsonl:1: field 'answer': .*differs from the Japanese"):
        load_benchmark("igakuqa-en", tmp_path)


def test_translation_with_other_choice_count_is_an_error(tmp_path):
    write_igakuqa(tmp_path, [igakuqa_item()], translations=[igakuqa_translation(choices_en=["1", "2", "3", "4"])])
    with pytest.raises(LoaderError, match=r"field 'choices_en': 4 choices"):
        load_benchmark("igakuqa-en", tmp_path)


def test_missing_field_names_file_line_and_field(tmp_path):
    item = igakuqa_item("116A2")
    del item["problem_text"]
    write_igakuqa(tmp_path, [igakuqa_item("116A1"), item])
    with pytest.raises(LoaderError) as err:
        load_benchmark("igakuqa", tmp_path)
    assert (err.value.file.name, err.value.line, err.value.field) == ("116-A.jsonl", 2, "problem_text")


def test_unknown_answer_letter(tmp_path):
    write_igakuqa(tmp_path, [igakuqa_item(answer=["f"])])
    with pytest.raises(LoaderError, match=r"116-A\.jsonl:1: field 'answer': unknown answer letter 'f' \(valid: abcde\)"):
        load_benchmark("igakuqa", tmp_path)


def test_truncated_line(tmp_path):
    path = write_igakuqa(tmp_path, [igakuqa_item()])
    path.write_text(path.read_text(encoding="utf-8")[:40] + "\n", encoding="utf-8")
    with pytest.raises(LoaderError, match=r"116-A\.jsonl:1: invalid JSON"):
        load_benchmark("igakuqa", tmp_path)


def test_id_from_another_block_is_an_error(tmp_path):
    write_igakuqa(tmp_path, [igakuqa_item("116B1")])
    with pytest.raises(LoaderError, match="field 'problem_id': '116B1' does not belong to exam 116 block A"):
        load_benchmark("igakuqa", tmp_path)


def test_bad_breakdown_and_points(tmp_path):
    write_igakuqa(tmp_path, [igakuqa_item()], metas=[igakuqa_meta(breakdown=["1", "2"])])
    with pytest.raises(LoaderError, match=r"_metadata\.jsonl:1: field 'breakdown': 2 values for 5 choices"):
        load_benchmark("igakuqa", tmp_path)
    write_igakuqa(tmp_path, [igakuqa_item(points="one")])
    with pytest.raises(LoaderError, match=r"field 'points': expected an integer, got 'one'"):
        load_benchmark("igakuqa", tmp_path)


def test_bom_and_crlf_files_load(tmp_path):
    folder = tmp_path / "igakuqa" / "data" / "2022"
    write_jsonl(folder / "116-A.jsonl", [igakuqa_item()], bom=True, newline="\r\n")
    write_jsonl(folder / "116-A_metadata.jsonl", [igakuqa_meta(kinki=["ａ"])], bom=True, newline="\r\n")
    write_jsonl(folder / "116-A_translate.jsonl", [igakuqa_translation()], bom=True, newline="\r\n")
    (q,) = load_benchmark("igakuqa", tmp_path).questions
    assert q.id == "116A1" and q.answer == {2} and q.meta["kinki"] == (0,)
    assert load_benchmark("igakuqa-en", tmp_path).questions[0].answer == {2}


def test_missing_metadata_row_is_a_warning_not_a_skip(tmp_path):
    write_igakuqa(tmp_path, [igakuqa_item("116A1"), igakuqa_item("116A2")], metas=[igakuqa_meta("116A1")])
    b = load_benchmark("igakuqa", tmp_path)
    assert [q.id for q in b] == ["116A1", "116A2"]
    assert "kinki" not in b.questions[1].meta
    assert any("116A2: no metadata row" in w for w in b.warnings)


def test_numeric_item_needs_one_answer(tmp_path):
    write_igakuqa(tmp_path, [igakuqa_item(choices=[], answer=["1", "2"], problem_text="求めよ。解答：①")])
    with pytest.raises(LoaderError, match="field 'answer': a question without choices needs one numeric answer"):
        load_benchmark("igakuqa", tmp_path)
