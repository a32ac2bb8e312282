"""Registry: names, selectors, filters and errors (the speed of loading everything: bench/bench_loading.py)."""

from __future__ import annotations

import pytest

from jmedllm.benchmarks import BenchmarkSpecError, Filters, benchmark_names, list_benchmarks, load_benchmark, parse_spec
from jmedllm.paths import DataRootError

EXPECTED_COUNTS = {
    "igakuqa": 2000,
    "igakuqa-en": 2000,
    "igakuqa119": 400,
    "jjsimqa": 460,
    "medqa": 1273,
    "medmcqa": 4183,
    "mmlu-med": 1089,
    "jmmlu-med": 824,  # 132 + 150 + 143 + 150 + 99 + 150
    "jmmlu-med-ext": 1273,  # + 150 + 149 + 150
    "pubmedqa": 500,  # the test split by default
    "yakugakuqa": 4485,
}


def test_every_benchmark_loads_with_its_count(bench):
    assert set(list_benchmarks()) == set(EXPECTED_COUNTS)
    for name, count in EXPECTED_COUNTS.items():
        b = bench(name)
        assert len(b) == count, name
        assert b.name == name and b.language == list_benchmarks()[name].language
        assert b.files and all(p.is_file() for p in b.files)
        assert len({q.id for q in b}) == len(b)  # unique ids
        assert all(q.meta["source_file"] and q.meta["source_line"] >= 1 for q in b)


@pytest.mark.parametrize(
    "spec, filters",
    [
        ("igakuqa", Filters()),
        ("igakuqa:2022", Filters(years=(2022,))),
        ("igakuqa-en:2018-2020:A", Filters(years=(2018, 2019, 2020), blocks=("A",))),
        ("igakuqa:116:BE", Filters(exams=(116,), blocks=("B", "E"))),
        ("igakuqa:A,C:text_only=true:limit=5", Filters(blocks=("A", "C"), text_only=True, limit=5)),
        ("yakugakuqa:2024:n_answers=2", Filters(years=(2024,), n_answers=(2,))),
        ("mmlu-med:anatomy,virology", None),  # virology is not a medical MMLU subject
        ("jmmlu-med-ext:virology", Filters(subjects=("virology",))),
        ("pubmedqa:all", Filters(split="all")),
        ("medqa:n_choices=4", Filters(n_choices=(4,))),
    ],
)
def test_parse_spec(spec, filters):
    if filters is None:
        with pytest.raises(BenchmarkSpecError, match="cannot read selector 'anatomy,virology'"):
            parse_spec(spec)
    else:
        assert parse_spec(spec)[:2] == (spec.split(":")[0], filters)


def test_selectors_and_filters_select_the_right_questions(bench):
    assert {q.id[:4] for q in bench("igakuqa:2022:A")} == {"116A"}
    assert len(bench("igakuqa:2022:A")) == 75
    assert len(bench("igakuqa:116")) == 400 and len(bench("igakuqa:116:BE")) == 100
    text_only_5 = bench("igakuqa:text_only=true:n_choices=5")
    assert len(text_only_5) == 1455
    assert [q.id for q in bench("igakuqa-en:2022:limit=3")] == ["116A1", "116A2", "116A3"]
    assert len(bench("igakuqa:n_answers=2,3")) == 299  # 243 + 55 + 112B30 ("a or d")
    assert len(bench("yakugakuqa:2024")) == 345 and len(bench("yakugakuqa:109:F")) == 60
    assert len(bench("pubmedqa:train")) == 500 and len(bench("pubmedqa:all")) == 1000
    assert len(bench("mmlu-med:anatomy")) == 135 and len(bench("igakuqa119:B,E")) == 100


def test_keyword_filters_are_recorded_in_the_name(data_root):
    b = load_benchmark("igakuqa:2022", data_root, blocks="A", text_only=True, limit=4)
    assert b.name == "igakuqa:2022:blocks=A:text_only=true:limit=4"
    assert len(b) == 4 and all(q.meta["block"] == "A" and q.meta["text_only"] for q in b)
    assert len(load_benchmark(b.name, data_root)) == 4  # the name alone reproduces the selection


def test_files_are_only_those_read(bench):
    files = bench("igakuqa:2022:A").files
    assert sorted(p.name for p in files) == ["116-A.jsonl", "116-A_metadata.jsonl"]
    assert len(bench("igakuqa-en:2022:A").files) == 3  # + the translation
    assert [p.name for p in bench("mmlu-med:anatomy").files] == ["anatomy_test.csv"]
    assert sorted(p.name for p in bench("igakuqa:116:BE").files) == [
        "116-B.jsonl", "116-B_metadata.jsonl", "116-E.jsonl", "116-E_metadata.jsonl"]
    assert {p.parent.name for p in bench("yakugakuqa:109:F").files} == {"2024"}


@pytest.mark.parametrize(
    "spec, message",
    [
        ("igakua", r"unknown benchmark 'igakua' \(valid: igakuqa, igakuqa-en, igakuqa119, .*custom\)"),
        ("igakuqa:xyz", "cannot read selector 'xyz'; valid: a year or range"),
        ("medqa:2022", "medqa takes no selectors"),
        ("igakuqa:2022:2021", "years given twice"),
        ("igakuqa:limit=x", "bad value 'x' for filter 'limit'"),
        ("igakuqa:colour=red", "unknown filter 'colour'"),
        ("igakuqa:text_only=maybe", "expected true or false"),
        ("yakugakuqa:G", r"no questions with block G \(available: A, B, C, D, E, F\)"),
        ("pubmedqa:dev", "cannot read selector 'dev'"),
        ("medqa:years=2020", "cannot filter by years: its questions have no 'year'"),
        ("custom:", "give the mapping file"),
    ],
)
def test_spec_errors(data_root, spec, message):
    with pytest.raises(BenchmarkSpecError, match=message):
        load_benchmark(spec, data_root)


def test_missing_year_is_reported_with_the_available_ones(data_root):
    with pytest.raises(ValueError, match=r"IgakuQA has no year 2017 .*\(available: 2018, 2019, 2020, 2021, 2022\)"):
        load_benchmark("igakuqa:2017", data_root)


def test_data_root_from_the_environment(monkeypatch, data_root):
    monkeypatch.setenv("JMEDLLM_DATA_ROOT", str(data_root))
    assert len(load_benchmark("jjsimqa")) == 460
    monkeypatch.delenv("JMEDLLM_DATA_ROOT")
    with pytest.raises(DataRootError, match="no data root given"):
        load_benchmark("jjsimqa")


def test_names():
    assert benchmark_names()[-1] == "custom"
    assert all(entry.description and entry.language in ("ja", "en") for entry in list_benchmarks().values())
