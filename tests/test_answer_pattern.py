"""User-declared answer patterns: validation, the prompt-file declaration, and the precedence
run > prompt file > mapping, through the runner (`jmedllm score` and `prepare_items`)."""

import json
from pathlib import Path

import pytest

from jmedllm import answer_pattern as AP
from jmedllm.cli import main
from jmedllm.evaluate import EvalConfig, EvalError, prepare_items, verdict_for
from jmedllm.schema import Question

EXAMPLE = Path(__file__).resolve().parents[1] / "src" / "jmedllm" / "prompts" / "templates" / "alpaca_example.j2"
FILE_RX = r"FILE=(?P<answer>[a-e])"
RUN_RX = r"RUN=(?P<answer>[a-e])"
MAP_RX = r"MAP=(?P<answer>[a-e])"
# every declared style names another letter; the built-in extractor reads the statement (c)
RESPONSE = "MAP=e RUN=a FILE=b\n答え：c"


def _template(tmp_path, declaration=f"{{# answer_pattern: '{FILE_RX}' #}}\n"):
    path = tmp_path / "house.j2"
    path.write_text(declaration + EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    return path


def test_check_names_the_place_of_a_bad_pattern():
    assert AP.check(RUN_RX, "--answer-pattern") == RUN_RX
    with pytest.raises(AP.AnswerPatternError, match=r"^--answer-pattern: .*no named group 'answer'"):
        AP.check("答え：([a-e])", "--answer-pattern")
    with pytest.raises(AP.AnswerPatternError, match=r"^x.yaml: .*not a valid regular expression"):
        AP.check("答え：(?P<answer>[a-e]", "x.yaml")


def test_a_template_declares_its_pattern_in_a_comment_of_its_own(tmp_path):
    assert AP.from_template(_template(tmp_path)) == FILE_RX
    assert AP.from_template(EXAMPLE) is None  # a comment that does not start with answer_pattern: is no declaration
    twice = _template(tmp_path, f"{{# answer_pattern: '{FILE_RX}' #}}\n{{# answer_pattern: '{RUN_RX}' #}}\n")
    with pytest.raises(AP.AnswerPatternError, match="declared more than once .lines 1, 2."):
        AP.from_template(twice)
    bad = _template(tmp_path, "\n{# answer_pattern: '(no group)' #}\n")
    with pytest.raises(AP.AnswerPatternError, match=r"house.j2, line 2: .*no named group"):
        AP.from_template(bad)


@pytest.mark.parametrize("run, prompt_file, meta, expected", [
    (RUN_RX, FILE_RX, {"answer_pattern": MAP_RX}, (RUN_RX, "run")),
    (None, FILE_RX, {"answer_pattern": MAP_RX}, (FILE_RX, "prompt_file")),
    (None, None, {"answer_pattern": MAP_RX}, (MAP_RX, "mapping")),
    (None, None, {}, (None, None)),
])
def test_precedence_run_then_prompt_file_then_mapping(run, prompt_file, meta, expected):
    assert AP.resolve(run, prompt_file, meta) == expected


def test_each_source_changes_the_reading_of_the_same_answer():
    q = Question("h1", "house", "どれか。", ("A", "B", "C", "D", "E"), frozenset({2}), 1, "ja",
                 meta={"answer_pattern": MAP_RX})
    rec = {"output": RESPONSE}
    for run, file, letter in [(None, None, "e"), (None, FILE_RX, "b"), (RUN_RX, FILE_RX, "a")]:
        pattern, _ = AP.resolve(run, file, q.meta)
        assert verdict_for(q, rec, "generate", answer_pattern=pattern).predicted_letters == letter
    plain = Question("h2", "house", "どれか。", ("A", "B", "C", "D", "E"), frozenset({2}), 1, "ja")
    assert verdict_for(plain, rec, "generate").predicted_letters == "c"


def test_score_applies_and_records_the_pattern_in_force(data_root, tmp_path):
    src = tmp_path / "out.jsonl"
    src.write_text(json.dumps({"id": "116A1", "response": RESPONSE}, ensure_ascii=False) + "\n", encoding="utf-8")
    template = _template(tmp_path)
    base = ["score", str(src), "--data-root", str(data_root), "--benchmark", "igakuqa:2022:A:limit=1",
            "--bootstrap", "50"]
    runs = {"none": [], "file": ["--prompt", str(template)], "both": ["--prompt", str(template), "--answer-pattern",
                                                                      RUN_RX]}
    got = {}
    for name, extra in runs.items():
        assert main(base + ["--out", str(tmp_path / name), *extra]) == 0
        rec = json.loads((tmp_path / name / "items.jsonl").read_text(encoding="utf-8"))
        config = json.loads((tmp_path / name / "config.json").read_text(encoding="utf-8"))
        got[name] = (rec["verdict"]["predicted_letters"], rec.get("answer_pattern_source"),
                     config["identity"].get("answer_patterns"))
    assert got["none"] == ("c", None, None)
    assert got["file"] == ("b", "prompt_file", {"prompt_file": {"path": str(template), "pattern": FILE_RX},
                                                "precedence": "run > prompt_file > mapping"})
    assert got["both"][:2] == ("a", "run") and got["both"][2]["run"] == RUN_RX
    summary = json.loads((tmp_path / "both" / "summary.json").read_text(encoding="utf-8"))
    assert summary["run"]["answer_patterns"]["run"] == RUN_RX


def test_eval_renders_a_declaring_template_and_carries_its_pattern(data_root, tmp_path):
    template = _template(tmp_path)
    cfg = EvalConfig(model="m", benchmarks=["igakuqa:2022:A:limit=2"], prompt=str(template), data_root=str(data_root))
    prepared = prepare_items(cfg, data_root, None)
    assert [(it.answer_pattern, it.answer_pattern_source) for it in prepared.items] == [(FILE_RX, "prompt_file")] * 2
    assert "answer_pattern" not in prepared.items[0].prompt and "{#" not in prepared.items[0].prompt
    bad = EvalConfig(model="m", benchmarks=["igakuqa:2022:A:limit=2"], answer_pattern="(x)", data_root=str(data_root))
    with pytest.raises(EvalError, match="--answer-pattern: .*no named group"):
        prepare_items(bad, data_root, None)


def test_a_bad_pattern_flag_is_one_clear_line(data_root, tmp_path, capsys):
    src = tmp_path / "out.jsonl"
    src.write_text('{"id": "116A1", "response": "c"}\n')
    assert main(["score", str(src), "--out", str(tmp_path / "r"), "--data-root", str(data_root), "--benchmark",
                 "igakuqa:2022:A:limit=1", "--answer-pattern", "答え(.)"]) == 2
    assert "--answer-pattern: " in capsys.readouterr().err


def test_a_mappings_pattern_applies_unless_the_run_or_prompt_file_declares_one(tmp_path):
    d = tmp_path / "bank"
    d.mkdir()
    (d / "bank.jsonl").write_text(json.dumps({"qid": "h-1", "q": "どれか。", "opts": ["A", "B", "C", "D", "E"],
                                              "ans": "c"}, ensure_ascii=False) + "\n", encoding="utf-8")
    (d / "bank.yaml").write_text("name: house\ndata: bank.jsonl\nid: qid\nquestion: q\nchoices: opts\nanswer: ans\n"
                                 f"answer_pattern: '{MAP_RX}'\n", encoding="utf-8")
    from jmedllm.benchmarks import LoaderError, load_benchmark

    try:
        load_benchmark(f"custom:{d / 'bank.yaml'}")
    except LoaderError as exc:
        if "answer_pattern" in str(exc):
            pytest.skip("this checkout's custom mappings have no answer_pattern key yet (the custom branch adds it)")
        raise
    src = tmp_path / "out.jsonl"
    src.write_text(json.dumps({"id": "h-1", "response": RESPONSE}, ensure_ascii=False) + "\n", encoding="utf-8")
    spec = f"custom:{d / 'bank.yaml'}"
    got = {}
    for name, extra in {"map": [], "run": ["--answer-pattern", RUN_RX],
                        "file": ["--prompt", str(_template(tmp_path))]}.items():
        assert main(["score", str(src), "--out", str(tmp_path / name), "--benchmark", spec, "--bootstrap", "50",
                     *extra]) == 0
        rec = json.loads((tmp_path / name / "items.jsonl").read_text(encoding="utf-8"))
        config = json.loads((tmp_path / name / "config.json").read_text(encoding="utf-8"))
        got[name] = (rec["verdict"]["predicted_letters"], rec["answer_pattern_source"],
                     config["identity"]["answer_patterns"]["mapping"])
    assert got == {"map": ("e", "mapping", {spec: MAP_RX}), "run": ("a", "run", {spec: MAP_RX}),
                   "file": ("b", "prompt_file", {spec: MAP_RX})}
