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


def _checkpoint(out, step, *, state=True, weights="adapter_model.safetensors", optimizer=True):
    import json

    path = out / f"checkpoint-{step}"
    path.mkdir(parents=True)
    if weights:
        (path / weights).write_bytes(b"w" * 8)
    if optimizer:
        (path / "optimizer.pt").write_bytes(b"o" * 8)
    if state is True:
        (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    elif state:
        (path / "trainer_state.json").write_text(state)
    return path


def test_resume_picks_the_newest_complete_checkpoint_and_says_what_it_skipped(tmp_path):
    from jmedllm.train.stage import resume_checkpoint

    assert resume_checkpoint(tmp_path / "none") == (None, [])
    good = _checkpoint(tmp_path, 4)
    _checkpoint(tmp_path, 12, state=False)  # killed before the state was written
    _checkpoint(tmp_path, 10, state='{"global_st')  # killed while writing it
    _checkpoint(tmp_path, 9, weights=None)
    _checkpoint(tmp_path, 8, optimizer=False)
    _checkpoint(tmp_path, 7, state='{"global_step": 3}')
    sharded = _checkpoint(tmp_path, 6, weights="model.safetensors.index.json")
    (sharded / "model.safetensors.index.json").write_text('{"weight_map": {"a": "model-00001-of-00002.safetensors"}}')
    (tmp_path / "checkpoint-20").write_text("a file, not a folder")
    checkpoint, skipped = resume_checkpoint(tmp_path)
    assert checkpoint == str(good)
    assert [(s["checkpoint"].rsplit("-", 1)[1], s["reason"]) for s in skipped] == [
        ("12", "no trainer_state.json (killed while the checkpoint was being saved?)"),
        ("10", "trainer_state.json is unreadable (JSONDecodeError: Unterminated string starting at: line 1 "
               "column 2 (char 1))"),
        ("9", "no model weights (adapter_model.safetensors / adapter_model.bin / model.safetensors / "
              "pytorch_model.bin)"),
        ("8", "no optimizer state (optimizer.pt)"),
        ("7", "trainer_state.json is of step 3, not 7"),
        ("6", "weight shard(s) missing: model-00001-of-00002.safetensors"),
    ]
