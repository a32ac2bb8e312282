"""The custom mapping's keys one by one: JSON arrays, dotted paths, the embedded-choice rule,
per-record answer types, missing keys, selection, answer patterns, exam rules by field."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from jmedllm.benchmarks import LoaderError, load_benchmark
from jmedllm.benchmarks.custom import MAPPING_KEYS, detect_selection, split_embedded


def spec_for(tmp_path, mapping: str, name: str, data) -> str:
    (tmp_path / "m.yaml").write_text(textwrap.dedent(mapping), encoding="utf-8")
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, indent=1)
    (tmp_path / name).write_text(text, encoding="utf-8")
    return f"custom:{tmp_path / 'm.yaml'}"


@pytest.mark.parametrize("text, stem, choices", [
    ("Q?\na　x\nb　y", "Q?", ["x", "y"]),
    ("Q?\nａ．x\nｂ．y\nｃ．z", "Q?", ["x", "y", "z"]),  # full-width labels and 。-style dot
    ("Q?\n(a) x\n(b) y", "Q?", ["x", "y"]),
    ("Q?\nア）x\nイ）y\nウ）z", "Q?", ["x", "y", "z"]),
    ("Q?\n1. x\n2. y\n\n3. z\n", "Q?", ["x", "y", "z"]),  # blank lines between and after
    ("Which?\nA. x\nB. y\nC. z", "Which?", ["x", "y", "z"]),
    ("Q?\n| | 1 | 2 |\n|---|---|---|\n| a | p | q |\n| b | r | s |", "Q?\n| | 1 | 2 |\n|---|---|---|",
     ["p | q", "r | s"]),
    ("Q?\nア　s\nイ　t\na　ア\nb　イ", "Q?\nア　s\nイ　t", ["ア", "イ"]),  # statements stay in the stem
])
def test_the_embedded_choice_rule(text, stem, choices):
    assert split_embedded(text) == (stem, choices)


@pytest.mark.parametrize("text", [
    "Q?\na　x",                      # one line is not a list of choices
    "Q?\nb　x\nc　y",                # must start at the first label
    "Q?\na　x\nc　y",                # consecutive labels only
    "Q?\na　x\nb　y\n以上から選べ。",  # choices must end the text
    "a　x\nb　y",                    # nothing would be left of the question
    "a patient with a fever",        # a plain space after a label is not a separator
])
def test_text_without_embedded_choices(text):
    assert split_embedded(text) is None


@pytest.mark.parametrize("text, selection", [
    ("正しいものをすべて選べ。", "all"), ("Select all that apply.", "all"), ("全て選べ", "all"),
    ("発生の順に並べよ。", "order"), ("Put the steps in the correct order.", "order"),
    ("2つ選べ。", "n"), ("Which is correct?", "n"),
])
def test_selection_from_the_question_text(text, selection):
    assert detect_selection(text) == selection


def test_json_array_nested_records_dotted_paths_and_choice_fields(tmp_path):
    data = {"meta": {"exam": "x"}, "items": [
        {"no": "1", "body": {"text": "Q1?", "opts": [{"t": "x"}, {"t": "y"}]}, "key": {"letters": "b"}},
        {"no": "2", "body": {"text": "Q2?", "opts": [{"t": "u"}, {"t": "v"}]}, "key": {"letters": "a"}},
    ]}
    mapping = """\
        data: d.json
        records: items
        id: "no"
        question: body.text
        choices: [body.opts.0.t, body.opts.1.t]
        answer: key.letters
    """
    b = load_benchmark(spec_for(tmp_path, mapping, "d.json", data))
    assert [(q.id, q.text, q.choices, q.answer) for q in b] == [
        ("1", "Q1?", ("x", "y"), {1}), ("2", "Q2?", ("u", "v"), {0})]
    # a top-level object without 'records' is named
    (tmp_path / "m.yaml").write_text(textwrap.dedent(mapping).replace("records: items\n", ""), encoding="utf-8")
    with pytest.raises(LoaderError, match="name the array of records with 'records: <key>'"):
        load_benchmark(f"custom:{tmp_path / 'm.yaml'}")


def test_json_array_errors_point_at_the_record(tmp_path):
    data = '[\n {"q": "Q", "c": ["x", "y"], "a": "a"},\n {"q": "R", "c": ["x", "y"], "a": "f"}\n]\n'
    spec = spec_for(tmp_path, "data: d.json\nquestion: q\nchoices: c\nanswer: a\n", "d.json", data)
    with pytest.raises(LoaderError) as err:
        load_benchmark(spec)
    assert (err.value.line, err.value.field) == (3, "a") and "unknown answer letter 'f'" in err.value.message


def test_one_file_holds_choice_and_numeric_items(tmp_path):
    rows = [{"q": "Q?", "c": ["x", "y"], "a": "b"}, {"q": "何mLか。", "c": [], "a": "２５０"},
            {"q": "R?", "a": 3.5}]
    b = load_benchmark(spec_for(tmp_path, "data: d.json\nquestion: q\nchoices: c\nanswer: a\n", "d.json", rows))
    assert [(q.is_numeric, q.numeric_answer, q.answer) for q in b] == [
        (False, None, {1}), (True, "250", set()), (True, "3.5", set())]
    rows[1]["a"] = "two hundred"
    with pytest.raises(LoaderError, match=r"2: no choices \(no list, none by the embedded-choice rule\), but the answer"):
        load_benchmark(spec_for(tmp_path, "data: d.json\nquestion: q\nchoices: c\nanswer: a\n", "d.json", rows))


def test_missing_answers_are_configurable(tmp_path):
    rows = [{"q": "Q?", "c": ["x", "y"], "a": "b"}, {"q": "R?", "c": ["x", "y"], "a": "解なし"}]
    base = "data: d.json\nquestion: q\nchoices: c\nanswer: a\n"
    with pytest.raises(LoaderError, match="unknown answer letter '解なし'"):  # not a no-key marker by default
        load_benchmark(spec_for(tmp_path, base, "d.json", rows))
    b = load_benchmark(spec_for(tmp_path, base + "missing_answer: [解なし]\n", "d.json", rows))
    assert len(b) == 1 and b.excluded == ("2 (d.json:10): no official answer key ('解なし')",)  # line of its "{"
    rows[1]["a"] = "NA"
    with pytest.raises(LoaderError, match="no answer key") as err:
        load_benchmark(spec_for(tmp_path, base + "on_missing_answer: error\n", "d.json", rows))
    assert err.value.field == "a"


def test_selection_field_answer_pattern_and_regex_checks(tmp_path):
    rows = [{"q": "Q?", "c": ["x", "y", "z"], "a": ["c", "a", "b"], "kind": "order"}]
    base = "data: d.json\nquestion: q\nchoices: c\nanswer: a\nselection: kind\n"
    (q,) = load_benchmark(spec_for(tmp_path, base + "answer_pattern: 'ANS=(?P<answer>.+)'\n", "d.json", rows))
    assert (q.selection, q.answer_order, q.meta["answer_pattern"]) == ("order", (2, 0, 1), "ANS=(?P<answer>.+)")
    with pytest.raises(LoaderError, match="needs a named group 'answer'") as err:
        load_benchmark(spec_for(tmp_path, base + "answer_pattern: 'ANS=(.+)'\n", "d.json", rows))
    assert (err.value.line, err.value.field) == (6, "answer_pattern")
    with pytest.raises(LoaderError, match="invalid regular expression"):
        load_benchmark(spec_for(tmp_path, base + "answer_pattern: '(?P<answer>'\n", "d.json", rows))
    rows[0]["kind"] = "some"
    with pytest.raises(LoaderError, match="expected one of n, all, order, got 'some'"):
        load_benchmark(spec_for(tmp_path, base, "d.json", rows))


def test_exam_rules_with_a_points_field_and_inline_rules(tmp_path):
    rows = [{"q": "Q1?", "c": ["x", "y"], "a": "a", "blk": "A", "pts": 2, "ng": "b"},
            {"q": "Q2?", "c": ["x", "y"], "a": "b", "blk": "a", "pts": "1"}]
    mapping = """\
        data: d.json
        question: q
        choices: c
        answer: a
        block: blk
        exam_rules:
          exam: 7
          points_field: pts
          kinki_field: ng
          kinki_max: 0
          sections:
            - {name: all, blocks: [A], line_fraction: 0.5}
    """
    b = load_benchmark(spec_for(tmp_path, mapping, "d.json", rows))
    assert [(q.meta["points"], q.meta["block"], q.meta["kinki"]) for q in b] == [(2, "A", (1,)), (1, "A", ())]
    assert b.questions[0].meta["exam_rules"].sections[0].maximum == 3
    rows[1]["blk"] = "C"
    with pytest.raises(LoaderError, match="block 'C' belongs to no section"):
        load_benchmark(spec_for(tmp_path, mapping, "d.json", rows))
    with pytest.raises(LoaderError, match="need the block of each item"):
        load_benchmark(spec_for(tmp_path, mapping.replace("        block: blk\n", ""), "d.json", rows))


def test_duplicate_mapping_keys_are_refused(tmp_path):
    with pytest.raises(LoaderError, match=r"key given twice \(first at line 2\)") as err:
        load_benchmark(spec_for(tmp_path, "data: d.json\nquestion: q\nanswer: a\nquestion: r\n", "d.json", []))
    assert err.value.line == 4


def test_every_mapping_key_is_documented():
    text = (Path(__file__).resolve().parents[2] / "docs" / "custom-benchmarks.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(\w+)` \|", text, re.M))
    assert set(MAPPING_KEYS) <= documented, sorted(set(MAPPING_KEYS) - documented)


def test_a_yaml_boolean_where_a_field_name_belongs_is_explained(tmp_path):
    with pytest.raises(LoaderError, match="YAML reads no / yes / on / off unquoted as booleans: quote the field name"):
        load_benchmark(spec_for(tmp_path, "data: d.json\nid: no\nquestion: q\nanswer: a\n", "d.json", []))


def test_a_real_exam_export_loads_through_a_mapping_alone(tmp_path, data_root):
    """IgakuQA119 as published (a JSON array per block, choices with their 'a. ' labels, answers
    in a CSV of their own), read by a mapping, agrees with the dedicated loader on every item
    it does not repair (that loader splits merged choices and recovers two inline choice lists)."""
    folder = data_root / "igakuqa119"
    agree = repaired = 0
    for block in "ABCDEF":
        mapping = f"""\
            data: {folder / 'questions' / f'119{block}_json.json'}
            id: number
            question: question
            choices: choices
            strip_choice_labels: true
            embedded_choices: true
            answers_from: {{data: {folder / 'results' / 'correct_answers.csv'}, id: 問題番号, answer: 解答}}
            id_pattern: '^119(?P<block>[A-F])(?P<number>\\d+)$'
        """
        spec = spec_for(tmp_path, mapping, "unused.json", [])
        if block == "A":
            with pytest.raises(LoaderError, match="outside the mapping's folder"):
                load_benchmark(spec)
        if block == "E":  # 119E45 writes its choices inline in a paragraph: outside the documented rule
            with pytest.raises(LoaderError, match="119E45: no choices .* but the answer 'e' .* is not a number"):
                load_benchmark(spec, allow_outside_paths=True)
            continue
        mine = {q.id: q for q in load_benchmark(spec, allow_outside_paths=True)}
        theirs = {q.id: q for q in load_benchmark(f"igakuqa119:{block}", data_root)}
        assert set(mine) == set(theirs)
        for i, t in theirs.items():
            if t.meta.get("choices_repaired") or t.meta.get("choices_from_text"):
                repaired += 1
                continue
            m = mine[i]
            assert (m.choices, m.answer, m.numeric_answer, m.n_select, m.meta["block"]) == (
                t.choices, t.answer, t.numeric_answer, t.n_select, block), i
            agree += 1
    assert (agree, repaired) == (347, 3)  # 350 items of blocks A-D, F


def test_answers_from_another_file(tmp_path):
    rows = [{"qid": "1", "q": "Q?", "c": ["a. x", "b. y"]}, {"qid": "2", "q": "R?", "c": ["(a) u", "(b) v"]},
            {"qid": "3", "q": "S?", "c": ["x", "y"]}]
    (tmp_path / "key.csv").write_text("id,key\n1,b\n2,NA\n9,a\n", encoding="utf-8")
    mapping = """\
        data: d.json
        id: qid
        question: q
        choices: c
        strip_choice_labels: true
        answers_from: {data: key.csv, id: id, answer: key}
    """
    b = load_benchmark(spec_for(tmp_path, mapping, "d.json", rows))
    assert [(q.id, q.choices, q.answer) for q in b] == [("1", ("x", "y"), {1})]
    assert [e.split(":")[0] for e in b.excluded] == ["2 (d.json", "3 (d.json"]
    assert "no row in key.csv" in b.excluded[1] and "key.csv:3" in b.excluded[0]
    assert any("key.csv:4: answer for an unknown id '9'" in w for w in b.warnings)
    (tmp_path / "key.csv").write_text("id,key\n1,b\n1,a\n", encoding="utf-8")
    with pytest.raises(LoaderError, match=r"duplicate id '1' \(first at line 2\)") as err:
        load_benchmark(spec_for(tmp_path, mapping, "d.json", rows))
    assert (err.value.file.name, err.value.line) == ("key.csv", 3)
    (tmp_path / "key.csv").write_text("id,key\n1,z\n", encoding="utf-8")
    with pytest.raises(LoaderError, match="unknown answer letter 'z'") as err:
        load_benchmark(spec_for(tmp_path, mapping, "d.json", rows))
    assert (err.value.file.name, err.value.line, err.value.field) == ("key.csv", 2, "key")


def test_a_numeric_answer_makes_the_item_numeric_even_after_numbered_lines(tmp_path):
    # the stem ends in numbered lines that look like choices, but the answer is a number
    text = "次の値から平均を求めよ。\n1. 10\n2. 20\n3. 30"
    rows = [{"q": text, "a": "20"}, {"q": "正しいのは?\na　x\nb　y", "a": "b"}]
    b = load_benchmark(spec_for(tmp_path, "data: d.json\nquestion: q\nembedded_choices: true\nanswer: a\n", "d.json",
                                rows))
    assert [(q.is_numeric, q.text == text, q.answer) for q in b] == [(True, True, set()), (False, False, {1})]
