"""Judge extraction (--extract-with): the fixed prompt, the separate method and counts, and real runs
with the tiny random model as judge (its replies are noise; the path, recording and counting are real)."""

import json
from pathlib import Path

import pytest

from jmedllm import judge
from jmedllm.cli import main
from jmedllm.schema import Question
from jmedllm.scoring import score_generation

ANSWERS = Path(__file__).parent / "rescore" / "data" / "pfn-medllm-qwen-72b_119A_answers_excerpt.json"
Q = Question("q1", "t", "正しいのはどれか。", ("高血圧", "低血圧", "頻脈"), frozenset({1}), 1, "ja")
QN = Question("q2", "t", "何 mg か。", (), frozenset(), 0, "en", numeric_answer="4")


def test_the_judge_prompt_names_the_choices_and_keeps_the_tail_of_a_long_response():
    text, cut = judge.judge_prompt(Q, "考えると……\n結局、二番目です。")
    assert not cut and "a. 高血圧\nb. 低血圧\nc. 頻脈" in text and text.rstrip().endswith("選んだ記号:")
    assert "結局、二番目です。" in text
    long = "x" * 5000 + "THE END"
    text, cut = judge.judge_prompt(QN, long)
    assert cut and "THE END" in text and "x" * (judge.MAX_RESPONSE_CHARS + 1) not in text
    assert text.startswith("State the number") and text.rstrip().endswith("Number:")
    order = Question("q3", "t", "Arrange.", ("x", "y", "z"), frozenset({0, 1, 2}), 0, "en", selection="order",
                     answer_order=(2, 0, 1))
    assert "Keep the order the response gave." in judge.judge_prompt(order, "z, x, y")[0]


def test_a_judge_reply_is_read_by_the_rules_and_recorded_as_its_own_method():
    assert judge.judge_verdict(Q, "b").method == judge.METHOD
    assert judge.judge_verdict(Q, "b").correct
    none = judge.judge_verdict(Q, "なし")
    assert not none.parsed and none.method == "unparsed"


def test_the_summary_shows_rules_only_and_with_judge_side_by_side():
    rule = [score_generation(Q, o) for o in ["答え：b", "答え：a", "よくわからない", "難しい"]]
    judged = [None, None, judge.judge_verdict(Q, "b"), judge.judge_verdict(Q, "なし")]
    section = judge.summarize(rule, judged, model="m", seed=0, n_resamples=200)
    # rules: 1 right of 4; with the judge: item 3 read as b (right) -> 2 of 4; item 4 stays unparsed
    assert (section["asked"], section["parsed_by_judge"], section["still_unparsed"]) == (2, 1, 1)
    assert section["rules_only"]["metrics"]["accuracy"]["mean"] == pytest.approx(0.25)
    assert section["with_judge"]["metrics"]["accuracy"]["mean"] == pytest.approx(0.5)
    assert section["rules_only"]["unparsed"] == 2 and section["with_judge"]["unparsed"] == 1
    assert section["with_judge"]["methods"] == {"answer_statement": 2, "judge": 1, "unparsed": 1}
    text = judge.summary_markdown(section)
    assert "| accuracy | 25.0 [" in text and "| unparsed | 2 | 1 |" in text


def _records(out):
    return [json.loads(x) for x in (out / "items.jsonl").read_text(encoding="utf-8").splitlines()]


def test_score_with_a_judge_model(tiny_model_dir, data_root, tmp_path):
    args = ["score", str(ANSWERS), "--data-root", str(data_root), "--benchmark", "igakuqa119:A", "--records",
            "results", "--id-field", "question_number", "--response-field", "answers.0.explanation",
            "--bootstrap", "200"]
    assert main(args + ["--out", str(tmp_path / "rules")]) == 0
    assert main(args + ["--out", str(tmp_path / "judged"), "--extract-with", str(tiny_model_dir),
                        "--device", "cpu"]) == 0
    rules, judged = _records(tmp_path / "rules"), _records(tmp_path / "judged")
    assert [r["verdict"] for r in rules] == [r["verdict"] for r in judged]  # the rule verdicts are untouched
    asked = [r for r in judged if "judge" in r]
    assert asked and len(asked) == sum(not r["verdict"]["parsed"] for r in judged)
    for r in judged:
        assert ("judge" in r) == (not r["verdict"]["parsed"] and bool(r["output"].strip()))
    for r in asked:
        j = r["judge"]
        assert j["model"] == str(tiny_model_dir) and isinstance(j["reply"], str)
        assert "a. " in j["prompt"] and r["output"][-30:] in j["prompt"]
        assert j["verdict"]["method"] in (judge.METHOD, "unparsed")
    summary = json.loads((tmp_path / "judged" / "summary.json").read_text(encoding="utf-8"))
    section = summary["judge"]
    assert section["asked"] == len(asked)
    assert section["parsed_by_judge"] == sum(r["judge"]["verdict"]["parsed"] for r in asked)
    with_judge = [(r["judge"]["verdict"] if "judge" in r and r["judge"]["verdict"]["parsed"] else r["verdict"])
                  for r in judged]
    assert section["with_judge"]["metrics"]["accuracy"]["mean"] == pytest.approx(
        sum(v["correct"] for v in with_judge) / len(with_judge))
    assert section["rules_only"]["metrics"]["accuracy"] == summary["overall"]["metrics"]["accuracy"]
    assert summary["overall"]["methods"].get(judge.METHOD) is None  # never mixed into the headline
    config = json.loads((tmp_path / "judged" / "config.json").read_text(encoding="utf-8"))
    assert config["identity"]["judge"]["engine"]["kind"] == "hf"
    assert "model.safetensors" in config["identity"]["judge"]["model_fingerprint"]
    assert "## Judge extraction" in (tmp_path / "judged" / "summary.md").read_text(encoding="utf-8")


def test_eval_with_the_evaluated_model_as_its_own_judge(tiny_model_dir, data_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["eval", "--model", str(tiny_model_dir), "--out", str(out), "--data-root", str(data_root),
                 "--benchmark", "igakuqa:2022:A:limit=3", "--max-new-tokens", "6", "--bootstrap", "100",
                 "--extract-with", str(tiny_model_dir)]) == 0
    assert f"## Judge extraction ({tiny_model_dir})" in capsys.readouterr().out
    records = _records(out)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["judge"]["asked"] == sum("judge" in r for r in records) == sum(
        not r["verdict"]["parsed"] and bool(r["output"].strip()) for r in records)
    assert main(["eval", "--model", str(tiny_model_dir), "--out", str(tmp_path / "ll"), "--data-root", str(data_root),
                 "--benchmark", "igakuqa:2022:A:limit=3", "--mode", "loglik", "--extract-with",
                 str(tiny_model_dir)]) == 2
    assert "--extract-with reads generated answers" in capsys.readouterr().err


def test_the_judge_prompt_takes_the_shape_the_engine_takes():
    from types import SimpleNamespace

    def no_template(messages, add_generation_prompt=True):
        raise ValueError("model has no chat template")

    chat_api = SimpleNamespace(supports=SimpleNamespace(chat=True))
    assert judge.render_prompt(chat_api, "Q?") == [{"role": "user", "content": "Q?"}]
    assert judge.render_prompt(SimpleNamespace(format_chat=no_template), "Q?") == "Q?"
    templated = SimpleNamespace(format_chat=lambda m, add_generation_prompt=True: f"<u>{m[0]['content']}</u><a>")
    assert judge.render_prompt(templated, "Q?") == "<u>Q?</u><a>"


def test_a_blank_response_is_not_asked():
    record = {"output": "  \n"}
    judge.attach(None, "m", [(Q, record)])  # no engine call: nothing to ask
    assert "judge" not in record
