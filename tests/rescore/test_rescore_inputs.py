"""Reading another tool's output files and matching their ids (pure, hand-made inputs)."""

import json

import pytest

from jmedllm.rescore.inputs import InputError, format_of, get_field, match_rows, normalize_id, read_rows
from jmedllm.benchmarks.parsing import LoaderError


def test_dotted_fields_reach_nested_values_and_a_dotted_key_wins():
    rec = {"answers": [{"answer": "c"}, {"answer": "d"}], "a.b": 1, "a": {"b": 2}}
    assert get_field(rec, "answers.0.answer") == "c"
    assert get_field(rec, "answers.-1.answer") == "d"
    assert get_field(rec, "a.b") == 1  # the literal key first
    from jmedllm.rescore.inputs import _MISSING
    assert get_field(rec, "answers.5.answer") is _MISSING
    assert get_field(rec, "nope") is _MISSING


@pytest.mark.parametrize("raw, loose", [
    ("116A1", "116.a.1"), ("116-A-1", "116.a.1"), ("116a001", "116.a.1"), ("１１６Ａ１", "116.a.1"),
    (" 116_A_1 ", "116.a.1"), ("1-11", "1.11"), ("11-1", "11.1"), ("medqa-0007", "medqa.7"),
])
def test_loose_ids_ignore_case_width_separators_and_leading_zeros_but_not_boundaries(raw, loose):
    assert normalize_id(raw, "loose") == loose
    assert normalize_id(raw, "exact") == raw.strip()


def _rows(tmp_path, text, name="out.jsonl", **kw):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return read_rows(path, format_of(path, kw.pop("fmt", None)), **({"id_field": "id", "response_field": "r"} | kw))


def test_jsonl_rows_keep_where_they_came_from_and_null_responses(tmp_path):
    rows = _rows(tmp_path, '{"id": "116A1", "r": "c"}\n\n{"id": 7, "r": null}\n')
    assert [(r.raw_id, r.response, r.response_missing) for r in rows] == [("116A1", "c", False), ("7", "", True)]
    assert rows[0].where.endswith("out.jsonl:1") and rows[1].where.endswith("out.jsonl:3")


def test_json_array_and_json_object_with_records(tmp_path):
    rows = _rows(tmp_path, '[\n {"id": "a1", "r": "b"},\n {"id": "a2", "r": 3}\n]\n', name="out.json")
    assert [(r.raw_id, r.response) for r in rows] == [("a1", "b"), ("a2", "3")]
    assert rows[1].where.endswith("out.json:3")
    doc = {"meta": 1, "results": [{"q": {"no": "a1"}, "answers": [{"text": "c"}]}]}
    rows = _rows(tmp_path, json.dumps(doc), name="nested.json", records="results", id_field="q.no",
                 response_field="answers.0.text")
    assert [(r.raw_id, r.response) for r in rows] == [("a1", "c")]
    assert rows[0].where.endswith("nested.json: results[0]")
    with pytest.raises(LoaderError, match="--records KEY; its keys: meta, results"):
        _rows(tmp_path, json.dumps(doc), name="nested2.json")


def test_csv_rows_with_a_header_and_quoted_cells(tmp_path):
    rows = _rows(tmp_path, "\ufeffqid,answer,ok\n116A1,\"a, c\",○\n116A2,b,×\n", name="x.csv", id_field="qid",
                 response_field="answer", reference_verdict_field="ok")
    assert [(r.raw_id, r.response, r.reference_verdict) for r in rows] == [("116A1", "a, c", "○"), ("116A2", "b", "×")]
    assert rows[1].where.endswith("x.csv:3")


def test_bad_rows_name_the_file_line_and_field(tmp_path):
    with pytest.raises(InputError, match=r"out.jsonl:2: field 'r' \(the response\) is missing; fields here: id, resp"):
        _rows(tmp_path, '{"id": "1", "r": "a"}\n{"id": "2", "resp": "a"}\n')
    with pytest.raises(InputError, match=r"out.jsonl:1: field 'id' \(the item id\) is missing"):
        _rows(tmp_path, '{"r": "a"}\n')
    with pytest.raises(InputError, match="holds list"):
        _rows(tmp_path, '{"id": "1", "r": ["a"]}\n')
    with pytest.raises(LoaderError, match="out.jsonl:1"):
        _rows(tmp_path, '{"id": "1", "r": "a"\n')
    with pytest.raises(LoaderError, match="2 columns where the header has 3"):
        _rows(tmp_path, "id,r,x\n1,a\n", name="x.csv")
    with pytest.raises(LoaderError, match="--records applies to JSON input, and this file is jsonl"):
        _rows(tmp_path, '{"id": "1", "r": "a"}\n', records="results")
    with pytest.raises(LoaderError, match="give --format"):
        format_of(tmp_path / "x.txt", None)


def test_match_lists_unknown_and_missing_and_refuses_duplicates_and_ambiguity(tmp_path):
    keys = [("igakuqa:2022::116A1", "116A1"), ("igakuqa:2022::116A2", "116A2"), ("igakuqa:2022::116A3", "116A3")]
    rows = _rows(tmp_path, '{"id": "116A1", "r": "a"}\n{"id": "116-A-2", "r": "b"}\n{"id": "999Z1", "r": "c"}\n')
    exact = match_rows(rows, keys, "exact")
    assert list(exact.by_key) == ["igakuqa:2022::116A1"]
    assert [r.raw_id for r in exact.unknown] == ["116-A-2", "999Z1"]
    assert exact.missing == ["igakuqa:2022::116A2", "igakuqa:2022::116A3"]
    loose = match_rows(rows, keys, "loose")
    assert sorted(loose.by_key) == ["igakuqa:2022::116A1", "igakuqa:2022::116A2"]
    assert [r.raw_id for r in loose.unknown] == ["999Z1"] and loose.missing == ["igakuqa:2022::116A3"]
    # a jmedllm item key, also one written under another spec of the same benchmark
    keyed = _rows(tmp_path, '{"id": "igakuqa:2022::116A3", "r": "a"}\n{"id": "igakuqa:2022:A::116A2", "r": "a"}\n',
                  name="k.jsonl")
    assert sorted(match_rows(keyed, keys).by_key) == ["igakuqa:2022::116A2", "igakuqa:2022::116A3"]
    dup = _rows(tmp_path, '{"id": "116A1", "r": "a"}\n{"id": "116a1", "r": "b"}\n', name="d.jsonl")
    with pytest.raises(InputError, match=r"d.jsonl:2: a second response for item igakuqa:2022::116A1 \(the first"):
        match_rows(dup, keys, "loose")
    both = [("igakuqa:2022::116A1", "116A1"), ("igakuqa-en:2022::116A1", "116A1")]
    with pytest.raises(InputError, match="matches several items .*BENCHMARK::ID.*--benchmark-field"):
        match_rows(rows[:1], both)


def test_a_key_or_a_benchmark_field_picks_the_benchmark(tmp_path):
    both = [("igakuqa:2022::116A1", "116A1"), ("igakuqa-en:2022::116A1", "116A1")]
    rows = _rows(tmp_path, '{"id": "116A1", "r": "a", "b": "igakuqa-en"}\n{"id": "116A1", "r": "b", "b": "igakuqa:2022"}\n'
                 '{"id": "116A1", "r": "c", "b": "medqa"}\n', benchmark_field="b")
    m = match_rows(rows, both)
    assert {k: r.response for k, r in m.by_key.items()} == {"igakuqa-en:2022::116A1": "a", "igakuqa:2022::116A1": "b"}
    assert [r.raw_id for r in m.unknown] == ["116A1"] and m.unknown[0].benchmark == "medqa"
    # a key of another benchmark never lands on this one's item of the same id
    keyed = _rows(tmp_path, '{"id": "igakuqa-en:2022::116A1", "r": "a"}\n', name="k.jsonl")
    assert [r.raw_id for r in match_rows(keyed, both[:1]).unknown] == ["igakuqa-en:2022::116A1"]
    with pytest.raises(InputError, match=r"out.jsonl:1: field 'b' \(the benchmark\) is missing"):
        _rows(tmp_path, '{"id": "116A1", "r": "a"}\n', benchmark_field="b")
