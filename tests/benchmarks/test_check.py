"""`jmedllm data check` and `data list`: counts, problems found, exit codes."""

from __future__ import annotations

from pathlib import Path

from jmedllm.benchmarks import Benchmark
from jmedllm.benchmarks.check import ERROR, WARNING, check_spec, find_problems, section_points, summarize
from jmedllm.cli import main
from jmedllm.schema import Question

from .sources import igakuqa_item, write_igakuqa


def q(qid, answer, n_select=1, choices=("a", "b", "c", "d", "e"), text="Q", **meta):
    return Question(id=qid, benchmark="t", text=text, choices=choices, answer=frozenset(answer), n_select=n_select,
                    language="ja", meta=meta)


def make(*questions, warnings=()):
    return Benchmark(name="t", questions=questions, files=(Path("x"),), language="ja", description="d",
                     warnings=warnings)


def test_summary_of_real_igakuqa(bench):
    s = summarize(bench("igakuqa"))
    assert s["questions"] == 2000 and s["numeric"] == 12 and s["text_only"] == 1471
    assert s["text_only_by_n_choices"][5] == 1455
    assert s["by_n_answers"] == {1: 1689, 2: 244, 3: 55}  # 1702 - 12 numeric - 112B30, which has 2 keys
    assert s["section_points"] == {112: {"hisshu": 200, "ippan_rinsho": 299}, 113: {"hisshu": 200, "ippan_rinsho": 296},
                                   114: {"hisshu": 197, "ippan_rinsho": 299}, 115: {"hisshu": 200, "ippan_rinsho": 300},
                                   116: {"hisshu": 197, "ippan_rinsho": 297}}


def test_real_benchmarks_have_no_errors(bench):
    for spec in ("igakuqa", "igakuqa-en", "igakuqa119", "jjsimqa", "yakugakuqa"):
        assert not [p for p in find_problems(bench(spec)) if p.severity == ERROR], spec


def test_problems_on_hand_built_questions():
    bench = make(
        q("1", {0}, kinki=(0, 3)),  # the gold answer is forbidden: an error
        q("2", {0, 1}, n_select=1),  # more keys than asked
        q("3", {2}, n_select=2),  # fewer keys than asked
        q("4", set(), n_select=1),  # no key (解なし)
        q("5", {1}, text=" "),  # empty text
        warnings=("f.jsonl:3: something tolerated",),
    )
    severities = sorted((p.severity, p.details) for p in find_problems(bench))
    assert severities == sorted([
        (WARNING, ("f.jsonl:3: something tolerated",)),
        (WARNING, ("4",)),
        (WARNING, ("2 (asks 1, 2 keys)",)),
        (WARNING, ("3 (asks 2, 1 keys)",)),
        (WARNING, ("5",)),
        (ERROR, ("1 (kinki [0, 3], gold [0])",)),
    ])


def test_points_per_section_checked_against_published_maxima():
    # Exam 112 with all six blocks but only one point in each section: 1 / 1, not 200 / 299.
    questions = [q(f"112{b}1", {0}, exam=112, block=b, section="hisshu" if b in "BE" else "ippan_rinsho",
                   points=1 if b in "AB" else 0) for b in "ABCDEF"]
    bench = make(*questions)
    assert section_points(bench) == {112: {"hisshu": 1, "ippan_rinsho": 1}}
    (problem,) = find_problems(bench)
    assert problem.severity == ERROR and "112: loaded" in problem.details[0]
    # An incomplete exam (a block filter) is not compared.
    assert find_problems(make(*questions[:2])) == []


def test_check_spec_reports_a_loading_failure_as_error(tmp_path):
    write_igakuqa(tmp_path, [igakuqa_item(answer=["z"])])
    report = check_spec("igakuqa", tmp_path)
    assert report.summary is None and report.has_errors
    assert "116-A.jsonl:1: field 'answer': unknown answer letter 'z'" in report.problems[0].message


def test_cli_data_list(capsys, data_root, monkeypatch):
    monkeypatch.delenv("JMEDLLM_DATA_ROOT", raising=False)
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "igakuqa-en" in out and "custom:<mapping.yaml>" in out and "questions" not in out.splitlines()[0]
    assert main(["data", "list", "--data-root", str(data_root)]) == 0
    lines = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert lines["igakuqa"][2] == "2000" and lines["yakugakuqa"][2] == "4485" and lines["pubmedqa"][2] == "500"


def test_cli_data_check(capsys, data_root):
    assert main(["data", "check", "--data-root", str(data_root), "-b", "igakuqa", "-b", "jjsimqa"]) == 0
    out = capsys.readouterr().out
    assert "== igakuqa\n  questions: 2000 (ja)" in out
    assert "exam 116 points per section: hisshu: 197, ippan_rinsho: 297" in out
    assert "text-only: 1471 (per number of choices: 0: 12, 5: 1455, 6: 2, 8: 2)" in out
    assert "WARNING: 1 question(s) with more gold keys than choices asked for" in out
    assert out.rstrip().endswith("no errors")


def test_cli_data_check_exit_codes(capsys, tmp_path):
    write_igakuqa(tmp_path, [igakuqa_item(answer=["z"])])
    assert main(["data", "check", "--data-root", str(tmp_path), "-b", "igakuqa"]) == 1
    assert "ERROR: does not load" in capsys.readouterr().out
    assert main(["data", "check", "--data-root", str(tmp_path), "-b", "nope"]) == 2
    assert "unknown benchmark 'nope'" in capsys.readouterr().err
    assert main(["data", "check", "--data-root", str(tmp_path / "absent")]) == 2
