"""A two-stage recipe (JMedLLM-v1's shape): CPT, then LoRA SFT on benchmark questions starting from its output."""

from __future__ import annotations

import json

from jmedllm.train import load_recipe, run_recipe
from jmedllm.train.provenance import RUN_RECORD


def test_two_stages_chain_and_resume_skips_finished_stages(tmp_path, tiny_model_dir, data_root):
    recipe = load_recipe("tiny-two-stage", [f"output_dir={tmp_path}",
                                            "cpt.model.name_or_path=" + str(tiny_model_dir),
                                            "training.max_steps=2", "contamination.benchmarks=[igakuqa]"])
    assert recipe.stage("sft").model.name_or_path == "@cpt"  # the override above addressed the cpt stage only
    cpt_dir, sft_dir = run_recipe(recipe, data_root=data_root)
    assert (cpt_dir, sft_dir) == (tmp_path / "cpt", tmp_path / "sft")
    sft_record = json.loads((sft_dir / RUN_RECORD).read_text())
    assert sft_record["base_model"] == str(cpt_dir)
    assert json.loads((sft_dir / "adapter_config.json").read_text())["base_model_name_or_path"] == str(cpt_dir)
    data = sft_record["data"]
    assert data["family"] == "alpaca" and data["sources"][0]["benchmark"] == "yakugakuqa"
    assert data["sources"][0]["examples"] == 32 and data["examples"] + len(data["dropped_overlong"]) == 32

    stamp = (cpt_dir / RUN_RECORD).stat().st_mtime_ns, (sft_dir / RUN_RECORD).stat().st_mtime_ns
    assert run_recipe(recipe, data_root=data_root, resume=True) == [cpt_dir, sft_dir]
    assert ((cpt_dir / RUN_RECORD).stat().st_mtime_ns, (sft_dir / RUN_RECORD).stat().st_mtime_ns) == stamp
