"""Issue 10's loader faults, each reproduced: folders named as files, a non-integer n_select cell,
a mapping path escaping its folder, an unclosed CSV quote, a year the data does not hold, and a
data root that holds one block of an exam."""

from __future__ import annotations

import json
import shutil
import textwrap

import pytest

from jmedllm.benchmarks import BenchmarkSpecError, LoaderError, load_benchmark
from jmedllm.cli import main


def mapping(tmp_path, text, name="m.yaml"):
    (tmp_path / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return f"custom:{tmp_path / name}"


BASIC = "data: {data}\nquestion: q\nchoices: c\nanswer: a\n"


def rows(*records):
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def test_custom_naming_a_folder_is_a_loader_error_not_a_traceback(tmp_path, capsys):
    with pytest.raises(LoaderError, match="is a folder; custom: needs the mapping YAML file"):
        load_benchmark(f"custom:{tmp_path}")
    (tmp_path / "sub").mkdir()
    spec = mapping(tmp_path, BASIC.format(data="sub"))
    with pytest.raises(LoaderError) as err:
        load_benchmark(spec)
    assert (err.value.field, err.value.line) == ("data", 1) and "is a folder" in err.value.message
    assert main(["data", "check", "-b", spec]) == 1  # reported, exit 1, no traceback
    assert "is a folder" in capsys.readouterr().out


def test_non_integer_n_select_cell(tmp_path):
    (tmp_path / "x.jsonl").write_text(rows({"q": "Q", "c": ["x", "y"], "a": "a", "n": "²"}), encoding="utf-8")
    spec = mapping(tmp_path, BASIC.format(data="x.jsonl") + "n_select: n\n")
    with pytest.raises(LoaderError) as err:
        load_benchmark(spec)
    assert (err.value.line, err.value.field) == (1, "n") and "expected a positive integer, got '²'" in str(err.value)


def test_mapping_paths_stay_in_the_mapping_folder(tmp_path):
    inner = tmp_path / "exams"
    inner.mkdir()
    spec = mapping(inner, BASIC.format(data="../../../../etc/os-release"))
    with pytest.raises(LoaderError) as err:
        load_benchmark(spec)
    assert err.value.field == "data" and "outside the mapping's folder" in err.value.message
    assert "--allow-outside-paths" in err.value.message
    # a symlink inside the folder that points outside is outside too
    (tmp_path / "outside.jsonl").write_text(rows({"q": "Q", "c": ["x", "y"], "a": "a"}), encoding="utf-8")
    (inner / "link.jsonl").symlink_to(tmp_path / "outside.jsonl")
    with pytest.raises(LoaderError, match="outside the mapping's folder"):
        load_benchmark(mapping(inner, BASIC.format(data="link.jsonl")))
    # the user may opt in
    assert len(load_benchmark(mapping(inner, BASIC.format(data="../outside.jsonl")), allow_outside_paths=True)) == 1
    # images and exam-rules files are confined the same way
    (inner / "x.jsonl").write_text(rows({"q": "Q", "c": ["x", "y"], "a": "a", "img": "../../secret.png"}),
                                   encoding="utf-8")
    with pytest.raises(LoaderError, match="outside the mapping's folder") as err:
        load_benchmark(mapping(inner, BASIC.format(data="x.jsonl") + "images: img\n"))
    assert (err.value.line, err.value.field) == (1, "img")
    with pytest.raises(LoaderError, match="outside the mapping's folder"):
        load_benchmark(mapping(inner, BASIC.format(data="x.jsonl") + "exam_rules: ../rules.yaml\n"))


def test_unclosed_csv_quote_is_reported_at_the_record_that_opens_it(tmp_path):
    data = 'id,q,A,B,ans\n1,fine,x,y,a\n2,"never closed,x,y,a\n3,more,x,y,b\n4,more,x,y,b\n'
    (tmp_path / "x.csv").write_text(data, encoding="utf-8")
    spec = mapping(tmp_path, "data: x.csv\nquestion: q\nchoices: [A, B]\nanswer: ans\n")
    with pytest.raises(LoaderError) as err:
        load_benchmark(spec)
    assert err.value.line == 3 and "never closed" in err.value.message


def test_a_year_the_data_does_not_hold_is_a_spec_error(data_root, capsys):
    with pytest.raises(BenchmarkSpecError, match="igakuqa:2031: IgakuQA has no year 2031"):
        load_benchmark("igakuqa:2031", data_root)
    assert main(["data", "check", "--data-root", str(data_root), "-b", "igakuqa:2031"]) == 1
    assert "IgakuQA has no year 2031" in capsys.readouterr().out


@pytest.fixture
def one_block_root(tmp_path, data_root):
    """A data root that holds only block A of the 116th exam."""
    folder = tmp_path / "root" / "igakuqa" / "data" / "2022"
    folder.mkdir(parents=True)
    for suffix in ("", "_metadata", "_translate"):
        shutil.copy(data_root / "igakuqa" / "data" / "2022" / f"116-A{suffix}.jsonl", folder)
    return tmp_path / "root"


def test_a_data_root_with_one_block_of_an_exam_is_reported_and_not_judged(one_block_root, tmp_path, capsys):
    bench = load_benchmark("igakuqa:2022", one_block_root)
    assert len(bench) == 75 and bench.questions[0].meta["exam_incomplete"] == "75 of 400 items found"
    assert main(["data", "check", "--data-root", str(one_block_root), "-b", "igakuqa:2022"]) == 1
    out = capsys.readouterr().out
    assert "exam 116: 75 of 400 items found; no verdict" in out and "errors found" in out
    # an eval over it scores the items but gives no exam verdict, and says why
    from jmedllm.evaluate import EvalConfig, run_eval
    from jmedllm.schema import Completion

    class Engine:
        kind = "scripted"

        def generate(self, prompts, params):
            return [Completion("答え：a") for _ in prompts]

        def describe(self):
            return {"kind": "scripted"}

    run = run_eval(EvalConfig(model="scripted", benchmarks=["igakuqa:2022"], out=str(tmp_path / "run"),
                              data_root=str(one_block_root), limit=5, bootstrap=20), engine=Engine())
    summary = json.loads((run / "summary.json").read_text())
    assert summary["exams"] == []
    assert summary["exams_without_verdict"] == [
        {"benchmark": "igakuqa", "exam": 116, "reason": "exam 116: 75 of 400 items found; no verdict"}]
    assert "exam 116: 75 of 400 items found; no verdict" in (run / "summary.md").read_text()
    # asking for the block on purpose is a partial run of a whole exam, as before
    assert "exam_incomplete" not in load_benchmark("igakuqa:2022:A", one_block_root).questions[0].meta


def test_data_check_on_a_custom_mapping_needs_no_data_root(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("JMEDLLM_DATA_ROOT", raising=False)
    (tmp_path / "x.jsonl").write_text(rows({"q": "Q", "c": ["x", "y"], "a": "a"}, {"q": "R", "c": ["x", "y"], "a": "NA"}),
                                      encoding="utf-8")
    spec = mapping(tmp_path, BASIC.format(data="x.jsonl"))
    assert main(["data", "check", "-b", spec]) == 0
    out = capsys.readouterr().out
    assert "questions: 1" in out and "1 record(s) excluded: no official answer key" in out
    assert "2 (x.jsonl:2): no official answer key ('NA')" in out


def test_eval_with_an_unknown_year_fails_before_loading_any_model(data_root, tmp_path, capsys):
    code = main(["eval", "--model", str(tmp_path / "no-such-model"), "--benchmark", "igakuqa:2031",
                 "--out", str(tmp_path / "run"), "--data-root", str(data_root)])
    assert code == 2 and "IgakuQA has no year 2031" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
