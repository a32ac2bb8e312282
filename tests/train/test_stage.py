"""Stage glue: precision and dtype rules, output-folder protection, model references."""

from __future__ import annotations

import pytest

from jmedllm.cli import UserError
from jmedllm.train.recipe import load_recipe
from jmedllm.train.stage import CONTAMINATION_REPORT, prepare_output_dir, resolve_dtype, resolve_model, resolve_precision


@pytest.mark.parametrize("method, precision, dtype, expected", [
    ("full", "bf16", "auto", "bfloat16"),
    ("lora", "bf16", "auto", "bfloat16"),
    ("full", "fp16", "auto", "float32"),   # fp16 AMP keeps trainable weights in fp32
    ("lora", "fp16", "auto", "float16"),   # a frozen LoRA base may be fp16
    ("full", "fp32", "auto", "float32"),
    ("lora", "fp32", "bfloat16", "bfloat16"),  # an explicit dtype wins
])
def test_dtype_rules(method, precision, dtype, expected):
    stage = load_recipe("tiny-sft", [f"method={method}", f"model.dtype={dtype}"]).stage()
    assert resolve_dtype(stage, precision) == expected


def test_auto_precision_is_fp32_without_a_gpu():
    import torch

    stage = load_recipe("tiny-sft", ["training.precision=auto"]).stage()
    expected = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    assert resolve_precision(stage) == expected
    assert resolve_precision(load_recipe("tiny-sft", ["training.precision=fp16"]).stage()) == "fp16"


def test_output_folder_protection(tmp_path):
    out = tmp_path / "sft"
    prepare_output_dir(out, resume=False, overwrite=False)  # checked, not created: created by the first write
    assert not out.exists()
    out.mkdir()
    (out / CONTAMINATION_REPORT).write_text("{}")
    prepare_output_dir(out, resume=False, overwrite=False)  # only a stopped run's report: reusable
    (out / "adapter_model.safetensors").write_text("x")
    with pytest.raises(UserError, match="already holds a run"):
        prepare_output_dir(out, resume=False, overwrite=False)
    prepare_output_dir(out, resume=True, overwrite=False)  # resuming keeps it
    assert (out / "adapter_model.safetensors").exists()
    prepare_output_dir(out, resume=False, overwrite=True)  # overwriting removes it
    assert not out.exists()


def test_stage_reference_needs_the_earlier_stage_finished(tmp_path):
    recipe = load_recipe("tiny-two-stage", [f"output_dir={tmp_path}", "cpt.model.name_or_path=x"])
    with pytest.raises(UserError, match="starts from stage cpt, which has not finished"):
        resolve_model(recipe, recipe.stage("sft"))
    assert resolve_model(recipe, recipe.stage("cpt")) == "x"
    with pytest.raises(UserError, match="model.name_or_path is empty"):
        resolve_model(load_recipe("tiny-sft"), load_recipe("tiny-sft").stage())
