"""`jmedllm score` end to end: real published outputs (IgakuQA119 excerpts, see data/README.md) and
hand-made files, scored against the shared data into run directories that `compare` reads."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jmedllm.cli import main

DATA = Path(__file__).with_name("data")
GRADING = DATA / "pfn-medllm-qwen-72b_119_grading_excerpt.csv"
ANSWERS = DATA / "pfn-medllm-qwen-72b_119A_answers_excerpt.json"
CSV_ARGS = ["--id-field", "question_number", "--response-field", "model_answer",
            "--reference-verdict-field", "is_correct", "--reference-answer-field", "model_answer"]


def _score(path, out, data_root, *extra):
    return main(["score", str(path), "--out", str(out), "--data-root", str(data_root), "--bootstrap", "200", *extra])


def _items(out):
    return {r["id"]: r for r in map(json.loads, (out / "items.jsonl").read_text(encoding="utf-8").splitlines())}


def test_published_grading_rows_rescored_against_the_119th_exam(data_root, tmp_path, capsys, monkeypatch):
    out = tmp_path / "pfn"
    monkeypatch.chdir(tmp_path)
    (tmp_path / GRADING.stem).mkdir()  # a folder named like the run's label
    assert _score(GRADING, out, data_root, "--benchmark", "igakuqa119", *CSV_ARGS) == 0
    shown = capsys.readouterr().out
    items = _items(out)
    assert sorted(items) == sorted(["119A1", "119A2", "119A6", "119A12", "119A25", "119A60", "119A70", "119A75",
                                    "119B26", "119B43"])
    # Read by hand against the keys in the shared data (119A1 a, A2 a, A6 a, A12 ce, A25 e, A60 a, A70 ae,
    # A75 600, B26 a, B43 b): right only on A2 and A12; "af" names no choice f (a-e) and the echoed
    # placeholder "[選んだ回答(単数/複数/数値)]" names none: both unparsed.
    readings = {i: (r["verdict"]["predicted_letters"] or r["verdict"]["numeric_predicted"], r["verdict"]["parsed"],
                    r["verdict"]["correct"]) for i, r in items.items()}
    assert readings == {
        "119A1": ("c", True, False), "119A2": ("a", True, True), "119A6": (None, False, False),
        "119A12": ("ce", True, True), "119A25": (None, False, False), "119A60": ("bde", True, False),
        "119A70": ("c", True, False), "119A75": ("349", True, False), "119B26": ("d", True, False),
        "119B43": ("de", True, False),
    }
    summary = json.loads((out / "summary.json").read_text())
    assert summary["overall"]["metrics"]["accuracy"]["mean"] == pytest.approx(2 / 10)
    assert summary["overall"]["unparsed"] == 2
    score = summary["score"]
    assert score["rows"] == 10 and score["matched"] == 10 and score["unknown_ids"]["count"] == 0
    assert score["missing"]["count"] == 390 and "igakuqa119::119A3" in score["missing"]["items"]
    # the publisher's verdicts agree item by item; its parsed answers too ("af" is no valid answer for both)
    assert score["agreement"]["verdict"] | {} == {"field": "is_correct", "compared": 10, "agree": 10,
                                                  "no_reference": 0, "rate": 1.0}
    assert score["agreement"]["answer"]["agree"] == 10 and score["disagreements"] == 0
    assert (out / "disagreements.jsonl").read_text() == ""
    config = json.loads((out / "config.json").read_text())
    engine = config["identity"]["engine"]
    assert engine["kind"] == "score" and len(engine["input"]["sha256"]) == 64
    assert engine["input"]["fields"]["id"] == "question_number"
    assert config["context"]["source"]["path"] == str(GRADING.resolve())
    assert "model_fingerprint" not in config["identity"]  # the label is no model folder, even where one exists
    assert "agreement with the reference verdict (is_correct): 10 / 10 = 100.0 %" in shown
    assert "390 missing item(s), without a response in the input (not scored): igakuqa119::119A3" in shown
    md = (out / "summary.md").read_text()
    assert "## Input (re-scored outputs)" in md and "- 390 missing item(s)" in md


def test_nested_json_free_text_against_the_models_own_answer_field(data_root, tmp_path, capsys):
    """The model's free-text explanation read by jmedllm, the answer it wrote in its JSON field as the
    reference: every item where the two differ is listed with both readings."""
    out = tmp_path / "json"
    assert _score(ANSWERS, out, data_root, "--benchmark", "igakuqa119:A", "--records", "results",
                  "--id-field", "question_number", "--response-field", "answers.0.explanation",
                  "--reference-answer-field", "answers.0.answer") == 0
    shown = capsys.readouterr().out
    items = _items(out)
    assert sorted(items) == ["119A12", "119A2", "119A4", "119A5", "119A8"]
    assert items["119A5"]["output"].endswith("答え: b") and items["119A5"]["reference"] == {"answer": "b"}
    expected = sorted(i for i, r in items.items()
                      if (r["verdict"]["predicted_letters"] or None) != r["reference"]["answer"])
    listed = [json.loads(x) for x in (out / "disagreements.jsonl").read_text().splitlines()]
    assert sorted(d["id"] for d in listed) == expected
    summary = json.loads((out / "summary.json").read_text())
    answer = summary["score"]["agreement"]["answer"]
    assert answer["compared"] == 5 and answer["agree"] == 5 - len(expected)
    for d in listed:
        assert d["reference"]["answer"] == items[d["id"]]["reference"]["answer"]
        assert f"{d['key']}  jmedllm: " in shown
    assert f"disagreements: {len(expected)}" in shown


def test_compare_reads_two_score_runs(data_root, tmp_path, capsys):
    _score(GRADING, tmp_path / "model", data_root, "--benchmark", "igakuqa119", *CSV_ARGS)
    # the key column as the "response": an oracle that is right on every item
    _score(GRADING, tmp_path / "key", data_root, "--benchmark", "igakuqa119", "--id-field", "question_number",
           "--response-field", "correct_answer")
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "model"), str(tmp_path / "key"), "--bootstrap", "200",
                 "--json", str(tmp_path / "cmp.json")]) == 0
    result = json.loads((tmp_path / "cmp.json").read_text())
    paired = result["paired"][0]
    assert paired["n_common"] == 10
    assert paired["overall"]["accuracy"]["diff"] == pytest.approx(1.0 - 0.2)
    assert paired["overall"]["accuracy"]["mcnemar_b"] + paired["overall"]["accuracy"]["mcnemar_c"] == 8


def test_jsonl_with_other_ids_unknown_ids_and_a_csv_reference(data_root, tmp_path, capsys):
    src = tmp_path / "other.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in [
        {"qid": "116-A-1", "text": "答えは c です。", "judge": "○"},
        {"qid": "116-a-002", "text": "Answer: (B)", "judge": "×"},
        {"qid": "116-A-3", "text": "わかりません", "judge": "×"},
        {"qid": "999-Z-1", "text": "a", "judge": "○"},
    ]), encoding="utf-8")
    args = ["--benchmark", "igakuqa:2022:A:limit=5", "--id-field", "qid", "--response-field", "text",
            "--reference-verdict-field", "judge"]
    assert _score(src, tmp_path / "exact", data_root, *args) == 2  # no id matches exactly
    err = capsys.readouterr().err
    assert "no id matches" in err and "--id-normalize loose" in err and "116-A-1" in err
    assert _score(src, tmp_path / "loose", data_root, *args, "--id-normalize", "loose") == 0
    shown = capsys.readouterr().out
    summary = json.loads((tmp_path / "loose" / "summary.json").read_text())
    score = summary["score"]
    assert score["unknown_ids"]["count"] == 1 and score["unknown_ids"]["items"][0]["id"] == "999-Z-1"
    assert score["unknown_ids"]["items"][0]["where"].endswith("other.jsonl:4")
    assert score["missing"]["items"] == ["igakuqa:2022:A:limit=5::116A4", "igakuqa:2022:A:limit=5::116A5"]
    assert f"1 unknown id(s), naming no item of --benchmark (not scored): 999-Z-1 ({src}:4)" in shown
    # gold 116A1 c, 116A2 c: jmedllm right, wrong, unparsed; the reference says right, wrong, wrong
    assert score["agreement"]["verdict"]["agree"] == 3 and score["disagreements"] == 0
    items = _items(tmp_path / "loose")
    assert items["116A1"]["source"] == {"where": f"{src}:1", "id": "116-A-1"}


def test_json_array_input_resumes_and_refuses_another_input(data_root, tmp_path, capsys):
    src = tmp_path / "answers.json"
    src.write_text(json.dumps([{"id": "116A1", "response": "c"}, {"id": "116A2", "response": None}]))
    out = tmp_path / "run"
    assert _score(src, out, data_root, "--benchmark", "igakuqa:2022:A:limit=2") == 0
    first = (out / "items.jsonl").read_bytes()
    assert _score(src, out, data_root, "--benchmark", "igakuqa:2022:A:limit=2") == 0
    assert (out / "items.jsonl").read_bytes() == first  # nothing recorded twice
    summary = json.loads((out / "summary.json").read_text())
    assert summary["score"]["empty_responses"]["items"] == ["igakuqa:2022:A:limit=2::116A2"]
    assert summary["overall"]["unparsed"] == 1
    src.write_text(json.dumps([{"id": "116A1", "response": "d"}]))
    capsys.readouterr()
    assert _score(src, out, data_root, "--benchmark", "igakuqa:2022:A:limit=2") == 2
    assert "holds a different run" in capsys.readouterr().err


def test_bad_input_is_one_clear_line(data_root, tmp_path, capsys):
    src = tmp_path / "bad.csv"
    src.write_text("id,response,ok\n116A1,c,yes\n116A2,b,perhaps\n", encoding="utf-8")
    assert _score(src, tmp_path / "x", data_root, "--benchmark", "igakuqa:2022:A", "--reference-verdict-field",
                  "ok") == 2
    err = capsys.readouterr().err
    assert f"{src}:3: field 'ok' holds 'perhaps', not a verdict" in err
    assert not (tmp_path / "x").exists()  # nothing written before the input is known good
    assert _score(src, tmp_path / "y", data_root, "--benchmark", "igakuqa:2022:A", "--response-field", "resp") == 2
    assert f"{src}:2: field 'resp' (the response) is missing" in capsys.readouterr().err
    fields = tmp_path / "fields.yaml"
    fields.write_text("id: id\nanswer: response\n")
    assert main(["score", str(src), "--out", str(tmp_path / "z"), "--benchmark", "igakuqa:2022:A",
                 "--fields", str(fields)]) == 2
    assert "unknown key(s) answer" in capsys.readouterr().err


def test_a_fields_file_names_the_fields(data_root, tmp_path):
    fields = tmp_path / "fields.yaml"
    fields.write_text("records: results\nid: question_number\nresponse: answers.0.answer\n")
    out = tmp_path / "run"
    assert main(["score", str(ANSWERS), "--out", str(out), "--data-root", str(data_root), "--bootstrap", "100",
                 "--benchmark", "igakuqa119:A", "--fields", str(fields)]) == 0
    items = _items(out)
    assert {i: r["verdict"]["predicted_letters"] for i, r in items.items()} == {
        "119A2": "a", "119A4": "b", "119A5": "b", "119A8": "e", "119A12": "ce"}


def test_no_secret_reaches_the_run_directory(data_root, tmp_path):
    secret_env, secret_field = "sk-test-ENVSECRET-1234567890", "sk-test-FIELDSECRET-0987654321"
    src = tmp_path / "api.jsonl"
    src.write_text(json.dumps({"id": "116A1", "response": "c", "api_key": secret_field,
                               "request": {"headers": {"Authorization": f"Bearer {secret_field}"}}}) + "\n")
    env = os.environ | {"OPENAI_API_KEY": secret_env, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "jmedllm", "score", str(src), "--out", str(out), "--data-root",
                           str(data_root), "--benchmark", "igakuqa:2022:A:limit=1", "--bootstrap", "50"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for f in out.iterdir():
        text = f.read_text(encoding="utf-8")
        assert secret_env not in text and secret_field not in text, f.name
    assert secret_field not in proc.stdout


def test_python_dash_m_jmedllm_runs_the_cli():
    env = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-m", "jmedllm", "score", "--help"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "--reference-verdict-field" in proc.stdout


def test_a_jmedllm_items_file_rescores_to_the_same_verdicts(data_root, tmp_path):
    """Old runs re-scored (e.g. with a newer extractor): the items.jsonl of a run is a valid input,
    its keys as ids and its raw outputs as responses."""
    first = tmp_path / "first"
    assert _score(GRADING, first, data_root, "--benchmark", "igakuqa119", *CSV_ARGS) == 0
    again = tmp_path / "again"
    assert _score(first / "items.jsonl", again, data_root, "--benchmark", "igakuqa119", "--id-field", "key",
                  "--response-field", "output") == 0
    a, b = _items(first), _items(again)
    assert {i: r["verdict"] for i, r in a.items()} == {i: r["verdict"] for i, r in b.items()}
    assert b["119A6"]["source"]["id"] == "igakuqa119::119A6"


def test_one_file_for_two_benchmarks_that_share_ids(data_root, tmp_path):
    src = tmp_path / "both.csv"
    src.write_text("id,lang,response\n116A1,igakuqa,答え：c\n116A1,igakuqa-en,Answer: (a)\n116A2,igakuqa-en,C\n",
                   encoding="utf-8")
    out = tmp_path / "run"
    assert _score(src, out, data_root, "--benchmark", "igakuqa:2022:A:limit=2,igakuqa-en:2022:A:limit=2",
                  "--benchmark-field", "lang") == 0
    records = [json.loads(x) for x in (out / "items.jsonl").read_text(encoding="utf-8").splitlines()]
    got = {r["key"]: (r["output"], r["verdict"]["predicted_letters"], r["verdict"]["correct"]) for r in records}
    # gold 116A1 c, 116A2 c in both languages
    assert got == {"igakuqa:2022:A:limit=2::116A1": ("答え：c", "c", True),
                   "igakuqa-en:2022:A:limit=2::116A1": ("Answer: (a)", "a", False),
                   "igakuqa-en:2022:A:limit=2::116A2": ("C", "c", True)}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["score"]["missing"]["items"] == ["igakuqa:2022:A:limit=2::116A2"]
    assert set(summary["by"]["benchmark_language"]) == {"igakuqa/ja", "igakuqa-en/en"}
