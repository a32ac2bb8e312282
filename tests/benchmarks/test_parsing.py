"""Shared readers: line numbers, BOM / CRLF tolerance, precise errors."""

from __future__ import annotations

import pytest

from jmedllm.benchmarks.parsing import (
    LoaderError,
    field,
    int_field,
    letters_to_indices,
    read_csv,
    read_json_items,
    read_jsonl,
)


def test_read_jsonl_numbers_lines_and_skips_blank_lines(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"x": 1}\n\n{"x": 2}\n', encoding="utf-8")
    assert list(read_jsonl(path)) == [(1, {"x": 1}), (3, {"x": 2})]


def test_read_jsonl_tolerates_bom_and_crlf(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"x": "\xe3\x81\x82"}\r\n{"x": 2}\r\n')
    assert list(read_jsonl(path)) == [(1, {"x": "あ"}), (2, {"x": 2})]


def test_truncated_json_line_names_file_and_line(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"x": 1}\n{"x": [1, 2\n', encoding="utf-8")
    with pytest.raises(LoaderError) as err:
        list(read_jsonl(path))
    assert err.value.file == path and err.value.line == 2
    assert str(err.value).startswith(f"{path}:2:") and "invalid JSON" in str(err.value)


def test_json_array_line_is_not_an_object(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text("[1, 2]\n", encoding="utf-8")
    with pytest.raises(LoaderError, match=r"a\.jsonl:1: expected a JSON object, got list"):
        list(read_jsonl(path))


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"x": 1}\n{"x": "\xff"}\n')
    with pytest.raises(LoaderError) as err:
        list(read_jsonl(path))
    assert err.value.line == 2 and "UTF-8" in err.value.message


def test_missing_file_is_a_loader_error(tmp_path):
    with pytest.raises(LoaderError, match="file not found"):
        list(read_jsonl(tmp_path / "absent.jsonl"))


def test_read_json_items_keeps_start_lines_of_array_and_object(tmp_path):
    array = tmp_path / "a.json"
    array.write_text('[\n  {"n": 1},\n  {\n    "n": 2\n  }\n]\n', encoding="utf-8")
    assert read_json_items(array) == [(2, 0, {"n": 1}), (3, 1, {"n": 2})]
    obj = tmp_path / "o.json"
    obj.write_bytes(b'\xef\xbb\xbf{\r\n "a": 1,\r\n "b": {"c": 2}\r\n}')
    assert read_json_items(obj) == [(2, "a", 1), (3, "b", {"c": 2})]
    empty = tmp_path / "e.json"
    empty.write_text("[ ]", encoding="utf-8")
    assert read_json_items(empty) == []


def test_read_json_items_reports_the_broken_line(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[\n {"n": 1},\n {"n": \n', encoding="utf-8")
    with pytest.raises(LoaderError) as err:
        read_json_items(path)
    assert err.value.line == 4  # the value after "n": is missing where the file ends (line 4)


def test_read_csv_counts_lines_of_multiline_records(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(b'\xef\xbb\xbfq1,a,b\r\n"multi\r\nline",c,d\r\n\r\nq3,e,f\r\n')
    assert list(read_csv(path)) == [(1, ["q1", "a", "b"]), (2, ["multi\nline", "c", "d"]), (5, ["q3", "e", "f"])]


def test_field_checks_presence_and_type(tmp_path):
    path = tmp_path / "x.jsonl"
    with pytest.raises(LoaderError) as err:
        field({"a": 1}, "b", path, 7)
    assert (err.value.line, err.value.field, err.value.message) == (7, "b", "missing")
    with pytest.raises(LoaderError, match=r"x\.jsonl:7: field 'a': expected str, got int 1"):
        field({"a": 1}, "a", path, 7)


def test_letters_to_indices(tmp_path):
    path = tmp_path / "x.jsonl"
    assert letters_to_indices("ce", 5, path, 1, "answer") == {2, 4}
    assert letters_to_indices("Ｃ", 5, path, 1, "answer") == {2}  # full-width capital
    with pytest.raises(LoaderError, match=r"x\.jsonl:3: field 'answer': unknown answer letter 'f' \(valid: abcde\)"):
        letters_to_indices("f", 5, path, 3, "answer")


def test_int_field_accepts_the_forms_sources_use(tmp_path):
    path = tmp_path / "x"
    assert [int_field(v, path, 1, "points") for v in ("3", 1.0, 0)] == [3, 1, 0]
    for bad in ("1.5", True, None, "x"):
        with pytest.raises(LoaderError, match="points"):
            int_field(bad, path, 1, "points")
