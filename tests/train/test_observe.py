"""Training observability on a tiny real model: TensorBoard events, throughput and memory in the
logs, a validation loss, and checkpoints evaluated by the runner into run directories carrying
their step, which `jmedllm report` draws against the step."""

from __future__ import annotations

import json

import pytest

from jmedllm.cli import UserError
from jmedllm.train import load_recipe, run_sft
from jmedllm.train.provenance import RUN_RECORD


def test_sft_logs_validates_and_evaluates_checkpoints(tmp_path, tiny_model_dir, qa_jsonl, data_root):
    pytest.importorskip("tensorboard")
    out = tmp_path / "train"
    recipe = load_recipe("tiny-sft", [
        f"model.name_or_path={tiny_model_dir}", f"output_dir={out}", "contamination.enabled=false",
        f"instructions.sources=[{{path: {qa_jsonl}}}]", "instructions.max_length=128",
        "training.max_steps=4", "training.logging_steps=1", "training.batch_size=4",
        "observe.validation=3", "observe.eval_every=2", "observe.benchmarks=[igakuqa:2022, igakuqa-en:2022]",
        "observe.limit=3", "observe.mode=loglik", "observe.bootstrap=200"])
    stage_dir = run_sft(recipe, data_root=data_root)

    # TensorBoard event files under <stage>/runs/
    assert list((stage_dir / "runs").rglob("events.out.tfevents.*"))
    history = json.loads((stage_dir / RUN_RECORD).read_text())["training"]["log_history"]
    logged = [h for h in history if "loss" in h]
    assert len(logged) == 4
    assert all(h["memory_gb"] > 0 for h in logged)
    assert all(h["tokens_per_second"] > 0 for h in logged[1:])
    evals = [h for h in history if "eval_loss" in h]  # the 3 held-out rows: before, at step 2, after the last
    assert [h["step"] for h in evals] == [0, 2, 4]

    # steps 0, 2 and 4, each a run directory of the runner carrying its step
    runs = sorted(p.name for p in (stage_dir / "evals").iterdir() if (p / "summary.json").is_file())
    assert runs == ["step-000000", "step-000002", "step-000004"]
    config = json.loads((stage_dir / "evals" / "step-000002" / "config.json").read_text())
    assert config["context"]["training"] == {"step": 2, "output_dir": str(stage_dir), "stage": "sft"}
    assert config["identity"]["config"]["adapter"].endswith("step-000002")
    items = (stage_dir / "evals" / "step-000004" / "items.jsonl").read_text().splitlines()
    assert len(items) == 6  # 3 Japanese + 3 English

    from jmedllm.report.build import build_report
    written = build_report([stage_dir], tmp_path / "report.html", data_root=data_root)
    assert written.n_runs == 3 and written.n_trainings == 1
    md = written.markdown.read_text()
    assert "## Score against training step" in md and "## Training" in md
    html = written.html.read_text()
    assert 'data-plot="steps"' in html and 'data-plot="train-loss"' in html and 'data-plot="train-eval_loss"' in html


def test_observe_settings_are_checked_before_training(tmp_path, tiny_model_dir, qa_jsonl, data_root):
    base = [f"model.name_or_path={tiny_model_dir}", f"output_dir={tmp_path / 'o'}", "contamination.enabled=false",
            f"instructions.sources=[{{path: {qa_jsonl}}}]", "instructions.max_length=128", "training.max_steps=1"]
    with pytest.raises(UserError, match="eval_every"):
        run_sft(load_recipe("tiny-sft", base + ["observe.benchmarks=[igakuqa:2022]"]), data_root=data_root)
    with pytest.raises(UserError, match="cannot be read"):
        run_sft(load_recipe("tiny-sft", base + [f"output_dir={tmp_path / 'p'}", "observe.eval_every=1",
                                                "observe.benchmarks=[nosuch]"]), data_root=data_root)
    with pytest.raises(UserError, match="report_to"):
        run_sft(load_recipe("tiny-sft", base + [f"output_dir={tmp_path / 'q'}", "observe.report_to=[mlflowx]"]),
                data_root=data_root)
