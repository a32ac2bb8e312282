"""The contamination guard in real runs: a planted evaluation question stops training and is named."""

from __future__ import annotations

import json

import pytest

from jmedllm.benchmarks import load_benchmark
from jmedllm.train import load_recipe, run_cpt, run_sft
from jmedllm.train.contamination import ContaminationError
from jmedllm.train.provenance import RUN_RECORD
from jmedllm.train.stage import CONTAMINATION_REPORT


@pytest.fixture(scope="module")
def igakuqa_2018(data_root):
    return {q.id: q for q in load_benchmark("igakuqa:2018", data_root).questions}


def test_planted_question_in_a_corpus_stops_cpt_and_is_named(tmp_path, tiny_model_dir, data_root, igakuqa_2018):
    q = igakuqa_2018["112A28"]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("循環器内科の症例をまとめる。\n\n" + q.text + "\n" + "\n".join(q.choices) + "\n\n胸痛の鑑別。\n",
                      encoding="utf-8")
    recipe = load_recipe("tiny-cpt", [f"model.name_or_path={tiny_model_dir}", f"output_dir={tmp_path / 'out'}",
                                      f"corpus.paths=[{corpus}]", "contamination.benchmarks=[igakuqa]"])
    with pytest.raises(ContaminationError) as exc:
        run_cpt(recipe, data_root=data_root)
    message = str(exc.value)
    assert "igakuqa 112A28" in message and f"{corpus}:3" in message and "--allow-overlap" in message
    out = recipe.stage_dir("cpt")
    report = json.loads((out / CONTAMINATION_REPORT).read_text())
    assert [(o["item_id"], o["record"], o["kind"]) for o in report["overlaps"]] == [("112A28", f"{corpus}:3", "exact")]
    assert not (out / "model.safetensors").exists() and not (out / RUN_RECORD).exists()  # nothing trained

    # Knowingly: --allow-overlap trains and keeps the report next to the model.
    out = run_cpt(recipe, data_root=data_root, allow_overlap=True, overwrite=True)
    record = json.loads((out / RUN_RECORD).read_text())
    assert record["contamination"] == {"clean": False, "overlaps": 1, "report": CONTAMINATION_REPORT}
    assert (out / CONTAMINATION_REPORT).is_file() and (out / "model.safetensors").is_file()


def test_lightly_edited_question_in_instructions_stops_sft(tmp_path, tiny_model_dir, data_root, igakuqa_2018, qa_jsonl):
    q = igakuqa_2018["112A34"]
    edited = q.text.replace("2歳", "３歳").replace("母親", "父親", 1) + " " + " / ".join(q.choices)
    data = tmp_path / "mixed.jsonl"
    data.write_text(qa_jsonl.read_text(encoding="utf-8") +
                    json.dumps({"instruction": edited, "output": q.choices[0]}, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    recipe = load_recipe("tiny-sft", [f"model.name_or_path={tiny_model_dir}", f"output_dir={tmp_path / 'out'}",
                                      f"instructions.sources=[{{path: {data}}}]",
                                      "contamination.benchmarks=[igakuqa, jjsimqa]"])
    with pytest.raises(ContaminationError) as exc:
        run_sft(recipe, data_root=data_root)
    (overlap,) = exc.value.report.overlaps
    assert (overlap.benchmark, overlap.item_id, overlap.record, overlap.kind) == ("igakuqa", "112A34", f"{data}:13", "near")


def test_default_guard_reads_every_benchmark_and_passes_clean_data(tmp_path, tiny_model_dir, data_root):
    recipe = load_recipe("tiny-cpt", [f"model.name_or_path={tiny_model_dir}", f"output_dir={tmp_path}",
                                      "training.max_steps=1"])
    out = run_cpt(recipe, data_root=data_root)  # MedTxt vs all benchmarks: clean
    report = json.loads((out / CONTAMINATION_REPORT).read_text())
    assert report["clean"] and report["records"] == 138
    assert {"igakuqa", "igakuqa-en", "medqa", "yakugakuqa", "pubmedqa:split=all"} <= set(report["benchmarks"])
    assert report["items"] > 18000 and report["missing_benchmarks"] == []


def test_guard_needs_a_data_root(tmp_path, tiny_model_dir, monkeypatch):
    from jmedllm.cli import UserError

    monkeypatch.delenv("JMEDLLM_DATA_ROOT", raising=False)
    corpus = tmp_path / "c.txt"
    corpus.write_text("本文。", encoding="utf-8")
    recipe = load_recipe("tiny-cpt", [f"model.name_or_path={tiny_model_dir}", f"output_dir={tmp_path}",
                                      f"corpus.paths=[{corpus}]"])
    with pytest.raises(UserError, match="contamination check needs the evaluation benchmarks"):
        run_cpt(recipe)
