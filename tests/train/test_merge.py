"""Merging a LoRA adapter gives the same logits as base + adapter."""

from __future__ import annotations

import json

import pytest
import torch

from jmedllm.cli import UserError
from jmedllm.train import load_recipe, merge_adapter, run_cpt
from jmedllm.train.merge import MERGE_RECORD


def test_merged_logits_equal_base_plus_adapter(tmp_path, tiny_model_dir, data_root):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    recipe = load_recipe("tiny-cpt", [f"model.name_or_path={tiny_model_dir}", f"output_dir={tmp_path}",
                                      "contamination.enabled=false", "method=lora", "training.max_steps=3",
                                      "lora.target_modules=all-linear", "lora.dropout=0"])
    adapter = run_cpt(recipe, data_root=data_root)
    merged_dir = merge_adapter(adapter, tmp_path / "merged")
    assert (merged_dir / "model.safetensors").is_file() and (merged_dir / "tokenizer.json").is_file()
    assert not (merged_dir / "adapter_config.json").exists()

    tok = AutoTokenizer.from_pretrained(merged_dir)
    ids = torch.tensor([tok("心筋梗塞の治療について述べる。胸痛、ST上昇。")["input_ids"]])
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    with torch.no_grad():
        base_logits = base(ids).logits
        with_adapter = PeftModel.from_pretrained(base, adapter).eval()
        adapter_logits = with_adapter(ids).logits
        merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).eval()
        merged_logits = merged(ids).logits
    torch.testing.assert_close(merged_logits, adapter_logits, atol=1e-5, rtol=0)
    assert float((adapter_logits - base_logits).abs().max()) > 1e-3  # the adapter changed the model
    record = json.loads((merged_dir / MERGE_RECORD).read_text())
    assert record["base_model"] == str(tiny_model_dir) and record["adapter_training"]["method"] == "lora"

    with pytest.raises(UserError, match="not empty"):
        merge_adapter(adapter, merged_dir)
    with pytest.raises(UserError, match="holds no adapter"):
        merge_adapter(tmp_path / "merged", tmp_path / "again")
