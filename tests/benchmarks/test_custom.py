"""The custom format: JSONL and CSV, every answer style, precise errors (file, line, field)."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from jmedllm.benchmarks import LoaderError, load_benchmark


def write(tmp_path, mapping: str, data_name: str, data: str | bytes):
    (tmp_path / "mapping.yaml").write_text(textwrap.dedent(mapping), encoding="utf-8")
    target = tmp_path / data_name
    if isinstance(data, bytes):
        target.write_bytes(data)
    else:
        target.write_text(data, encoding="utf-8")
    return f"custom:{tmp_path / 'mapping.yaml'}"


def jsonl(*rows) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


JSONL_MAPPING = """\
    name: my-exam
    description: two questions of my exam
    data: exam.jsonl
    id: qid
    question: question
    choices: options
    answer: answer
    answer_style: {style}
    {extra}
"""


def jsonl_spec(tmp_path, style, rows, extra=""):
    return write(tmp_path, JSONL_MAPPING.format(style=style, extra=extra), "exam.jsonl", jsonl(*rows))


def test_jsonl_worked_example_from_the_docs(tmp_path):
    mapping = """\
        name: my-exam
        description: my hospital's internal exam
        language: ja
        data: my_exam.jsonl
        id: qid
        question: question
        choices: options
        answer: answer
        answer_style: letters
        answer_separator: ","
        explanation: explanation
        category: field
        meta: [year]
    """
    data = jsonl(
        {"qid": "2024-001", "question": "高カリウム血症で正しいのはどれか。", "options": ["T波増高", "U波出現", "QT延長", "デルタ波", "J波"],
         "answer": "a", "explanation": "テント状T波が特徴。", "field": "腎臓", "year": 2024},
        {"qid": "2024-002", "question": "ループ利尿薬の副作用はどれか。2つ選べ。",
         "options": ["高カリウム血症", "低カリウム血症", "高尿酸血症", "低血糖", "徐脈"], "answer": "b,c",
         "field": "腎臓", "year": 2024},
    )
    spec = write(tmp_path, mapping, "my_exam.jsonl", data)
    b = load_benchmark(spec)
    assert b.name == spec and b.language == "ja" and b.description == "my hospital's internal exam"
    q1, q2 = b.questions
    assert (q1.id, q1.answer, q1.n_select, q1.explanation) == ("2024-001", {0}, 1, "テント状T波が特徴。")
    assert (q2.id, q2.answer, q2.n_select, q2.explanation) == ("2024-002", {1, 2}, 2, None)
    assert q1.benchmark == "my-exam" and q1.meta["category"] == "腎臓" and q1.meta["year"] == 2024
    assert q2.meta["source_line"] == 2 and q2.meta["source_file"].endswith("my_exam.jsonl")
    assert [p.name for p in b.files] == ["mapping.yaml", "my_exam.jsonl"]


@pytest.mark.parametrize(
    "style, extra, answers, expected",
    [
        ("letters", "", ["c", "ce", ["A", "c"], "Ｂ"], [{2}, {2, 4}, {0, 2}, {1}]),
        ("letters", "answer_separator: '|'", ["a|c"], [{0, 2}]),
        ("index0", "", [0, "4", [1, 2]], [{0}, {4}, {1, 2}]),
        ("index1", "answer_separator: ','", [1, "5", "1,3", [2, 4]], [{0}, {4}, {0, 2}, {1, 3}]),
        ("text", "", ["three", ["one", "five"]], [{2}, {0, 4}]),
        ("text", "answer_separator: ';'", ["two;four"], [{1, 3}]),
    ],
)
def test_jsonl_answer_styles(tmp_path, style, extra, answers, expected):
    rows = [{"qid": f"q{k}", "question": "Which?", "options": ["one", "two", "three", "four", "five"], "answer": a}
            for k, a in enumerate(answers)]
    b = load_benchmark(jsonl_spec(tmp_path, style, rows, extra))
    assert [q.answer for q in b] == expected
    assert all(q.language == "en" for q in b)  # detected from the script


def test_number_style_for_questions_without_choices(tmp_path):
    mapping = """\
        data: calc.jsonl
        question: q
        answer: a
        answer_style: number
    """
    spec = write(tmp_path, mapping, "calc.jsonl", jsonl({"q": "体重を求めよ。", "a": "62.5"}, {"q": "x?", "a": 3}))
    b = load_benchmark(spec)
    assert [(q.id, q.numeric_answer, q.is_numeric) for q in b] == [("1", "62.5", True), ("2", "3", True)]
    assert b.language == "mixed" and b.questions[0].benchmark == "mapping"  # name defaults to the file stem


CSV_MAPPING = """\
    data: exam.csv
    language: en
    id: id
    question: Question
    choices: [A, B, C, D, E]
    answer: Answer
    answer_style: index1
    answer_separator: " "
    n_select: N
    context: Passage
"""


def test_csv_with_header_bom_crlf_and_trailing_empty_choices(tmp_path):
    data = ("\ufeffid,Question,A,B,C,D,E,Answer,N,Passage\r\n"
            "x1,Which?,p,q,r,s,t,2 4,2,A short text.\r\n"
            '"x2","Multi\r\nline?",p,q,r,s,,3,,\r\n').encode("utf-8")
    b = load_benchmark(write(tmp_path, CSV_MAPPING, "exam.csv", data))
    q1, q2 = b.questions
    assert (q1.answer, q1.n_select, q1.context, q1.meta["source_line"]) == ({1, 3}, 2, "A short text.", 2)
    assert (q2.text, q2.choices, q2.answer, q2.n_select, q2.context) == ("Multi\nline?", ("p", "q", "r", "s"), {2}, 1, None)
    assert q2.meta["source_line"] == 3


def test_csv_without_header_uses_column_numbers(tmp_path):
    mapping = """\
        data: mmlu_like.csv
        header: false
        question: 0
        choices: [1, 2, 3, 4]
        answer: 5
    """
    b = load_benchmark(write(tmp_path, mapping, "mmlu_like.csv", "What?,a,b,c,d,D\n問い？,甲,乙,丙,丁,a\n"))
    assert [(q.id, q.answer, q.language) for q in b] == [("1", {3}, "en"), ("2", {0}, "ja")]


def test_filters_in_the_custom_spec(tmp_path):
    rows = [{"qid": f"q{k}", "question": "Which?", "options": ["a", "b"], "answer": "a"} for k in range(5)]
    spec = jsonl_spec(tmp_path, "letters", rows)
    assert [q.id for q in load_benchmark(spec + ":limit=2")] == ["q0", "q1"]
    assert len(load_benchmark(spec, limit=3)) == 3


# ---- errors: each names the file, the line and the field ----------------------------------

def error_of(spec) -> LoaderError:
    with pytest.raises(LoaderError) as err:
        load_benchmark(spec)
    return err.value


def test_unknown_answer_letter(tmp_path):
    rows = [{"qid": "1", "question": "Q", "options": ["a", "b"], "answer": "a"},
            {"qid": "2", "question": "Q", "options": ["a", "b"], "answer": "c"}]
    err = error_of(jsonl_spec(tmp_path, "letters", rows))
    assert (err.file.name, err.line, err.field) == ("exam.jsonl", 2, "answer")
    assert "unknown answer letter 'c' (valid: ab)" in str(err)


def test_missing_field(tmp_path):
    rows = [{"qid": "1", "options": ["a", "b"], "answer": "a"}]
    err = error_of(jsonl_spec(tmp_path, "letters", rows))
    assert (err.file.name, err.line, err.field, err.message) == ("exam.jsonl", 1, "question", "missing")


def test_truncated_json_line(tmp_path):
    spec = write(tmp_path, JSONL_MAPPING.format(style="letters", extra=""), "exam.jsonl",
                 '{"qid": "1", "question": "Q", "options": ["a", "b"], "answer": "a"}\n{"qid": "2", "quest\n')
    err = error_of(spec)
    assert (err.file.name, err.line) == ("exam.jsonl", 2) and "invalid JSON" in err.message


def test_answer_text_not_among_choices(tmp_path):
    rows = [{"qid": "1", "question": "Q", "options": ["one", "two"], "answer": "three"}]
    err = error_of(jsonl_spec(tmp_path, "text", rows))
    assert (err.line, err.field) == (1, "answer") and "matches 0 choices" in err.message


def test_index_out_of_range(tmp_path):
    rows = [{"qid": "1", "question": "Q", "options": ["one", "two"], "answer": 3}]
    err = error_of(jsonl_spec(tmp_path, "index1", rows))
    assert (err.line, err.field) == (1, "answer") and "out of range 1..2" in err.message


def test_duplicate_id(tmp_path):
    rows = [{"qid": "1", "question": "Q", "options": ["a", "b"], "answer": "a"}] * 2
    err = error_of(jsonl_spec(tmp_path, "letters", rows))
    assert (err.line, err.field) == (2, "qid") and "duplicate id '1' (first at line 1)" in err.message


def test_choices_must_be_a_list(tmp_path):
    rows = [{"qid": "1", "question": "Q", "options": "a b", "answer": "a"}]
    err = error_of(jsonl_spec(tmp_path, "letters", rows))
    assert (err.line, err.field) == (1, "options") and "expected a list of choices" in err.message


def test_csv_row_with_wrong_column_count(tmp_path):
    data = "id,Question,A,B,C,D,E,Answer,N,Passage\nx1,Q,a,b,c,d,e,1,1,p,EXTRA\n"
    err = error_of(write(tmp_path, CSV_MAPPING, "exam.csv", data))
    assert (err.file.name, err.line) == ("exam.csv", 2) and "11 columns, the header (line 1) has 10" in err.message


def test_mapping_errors_name_the_mapping_line_and_key(tmp_path):
    spec = write(tmp_path, "data: x.jsonl\nquestion: q\nqestion: q\nanswer: a\nchoices: c\n", "x.jsonl", "")
    err = error_of(spec)
    assert (err.file.name, err.line, err.field) == ("mapping.yaml", 3, "qestion") and "unknown key" in err.message
    spec = write(tmp_path, "data: x.jsonl\nquestion: q\nchoices: c\n", "x.jsonl", "")
    err = error_of(spec)
    assert (err.field, err.message) == ("answer", "required key missing")
    spec = write(tmp_path, "data: x.jsonl\nquestion: q\nanswer: a\nchoices: c\nanswer_style: roman\n", "x.jsonl", "")
    err = error_of(spec)
    assert (err.line, err.field) == (5, "answer_style") and "'roman' is not one of" in err.message
    spec = write(tmp_path, "data: x.csv\nquestion: q\nanswer: a\nchoices: c\n", "x.csv", "")
    assert "list the choice columns" in error_of(spec).message
    spec = write(tmp_path, "data: [unclosed\n", "x.jsonl", "")
    assert "invalid YAML" in error_of(spec).message


def test_missing_data_file(tmp_path):
    (tmp_path / "m.yaml").write_text("data: nowhere.jsonl\nquestion: q\nanswer: a\nchoices: c\n", encoding="utf-8")
    with pytest.raises(LoaderError, match=r"nowhere\.jsonl: file not found"):
        load_benchmark(f"custom:{tmp_path / 'm.yaml'}")


def doc_blocks(kind: str) -> list[str]:
    text = (Path(__file__).resolve().parents[2] / "docs" / "custom-benchmarks.md").read_text(encoding="utf-8")
    return re.findall(rf"```{kind}\n(.*?)```", text, re.S)


def test_the_documented_examples_load(tmp_path):
    (tmp_path / "my_exam.yaml").write_text(doc_blocks("yaml")[0], encoding="utf-8")
    (tmp_path / "my_exam.jsonl").write_text(doc_blocks("json")[0], encoding="utf-8")
    b = load_benchmark(f"custom:{tmp_path / 'my_exam.yaml'}")
    assert [(q.id, q.answer, q.n_select) for q in b] == [("2024-001", {0}, 1), ("2024-002", {1, 2}, 2)]
    (tmp_path / "csv.yaml").write_text(doc_blocks("yaml")[1], encoding="utf-8")
    (tmp_path / "exam.csv").write_text(doc_blocks("csv")[0], encoding="utf-8")
    b = load_benchmark(f"custom:{tmp_path / 'csv.yaml'}")
    # "1 3" in index1 style is choices 1 and 3 (0-based 0, 2); the empty fifth choice of x2 is dropped.
    assert [(q.id, q.answer, q.n_select, len(q.choices)) for q in b] == [("x1", {0, 2}, 2, 5), ("x2", {0}, 1, 4)]
