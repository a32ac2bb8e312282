"""Real small runs for the report tests: a tiny base model, its continued pretraining, a LoRA
adapter trained on the result with checkpoint evaluations, each evaluated on IgakuQA 2022 in
Japanese and English (a few items), and one generate-mode run with raw outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

QA = [("心筋梗塞の第一選択の再灌流療法は何か。", "経皮的冠動脈インターベンション"),
      ("ワルファリンの効果をみる検査は何か。", "PT-INR"),
      ("Which vitamin deficiency causes scurvy?", "Vitamin C"),
      ("急性膵炎で上昇する酵素を一つ答えよ。", "リパーゼ"),
      ("What is the antidote for heparin?", "Protamine sulfate"),
      ("鉄欠乏性貧血で低下する検査値を一つ答えよ。", "血清フェリチン")]
EVAL = ["igakuqa:2022", "igakuqa-en:2022"]


@pytest.fixture(scope="session")
def report_runs(tmp_path_factory, tiny_model_dir, data_root) -> dict[str, Path]:
    from jmedllm.evaluate import EvalConfig, run_eval
    from jmedllm.train import load_recipe, run_cpt, run_sft

    work = tmp_path_factory.mktemp("report-runs")
    qa = work / "qa.jsonl"
    qa.write_text("\n".join(json.dumps({"instruction": q, "output": a}, ensure_ascii=False) for q, a in QA) + "\n",
                  encoding="utf-8")
    cpt = run_cpt(load_recipe("tiny-cpt", [f"model.name_or_path={tiny_model_dir}", f"output_dir={work / 'train'}",
                                           "training.max_steps=1", "contamination.enabled=false"]), data_root=data_root)
    sft = run_sft(load_recipe("tiny-sft", [
        f"model.name_or_path={cpt}", f"output_dir={work / 'train'}", "contamination.enabled=false",
        f"instructions.sources=[{{path: {qa}}}]", "instructions.max_length=128", "training.max_steps=2",
        "observe.eval_every=2", f"observe.benchmarks=[{', '.join(EVAL)}]", "observe.limit=4",
        "observe.bootstrap=200"]), data_root=data_root)
    runs = {}
    for label, model in {"base": dict(model=str(tiny_model_dir)), "cpt": dict(model=str(cpt)),
                         "cpt+lora": dict(model=str(cpt), adapter=str(sft))}.items():
        runs[label] = run_eval(EvalConfig(**model, benchmarks=EVAL, out=str(work / "runs" / label),
                                          data_root=str(data_root), mode="loglik", limit=6, bootstrap=200))
    runs["cpt+lora-generate"] = run_eval(EvalConfig(
        model=str(cpt), adapter=str(sft), benchmarks=EVAL, out=str(work / "runs" / "cpt+lora-generate"),
        data_root=str(data_root), mode="generate", limit=2, max_new_tokens=6, bootstrap=200))
    runs["sft-training"] = sft
    return runs
