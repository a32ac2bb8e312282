"""The shipped accelerate configs parse with accelerate (CPU: no launch), and QLoRA stores 4-bit weights
in the compute dtype so that FSDP / ZeRO-3 can shard them."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from jmedllm.train import load_recipe
from jmedllm.train.stage import quantization_config

FOLDER = Path(str(resources.files("jmedllm") / "recipes" / "accelerate"))


@pytest.mark.parametrize("name, kind", [("fsdp-qlora.yaml", "FSDP"), ("deepspeed-zero3-qlora.yaml", "DEEPSPEED"),
                                        ("fsdp.yaml", "FSDP"), ("deepspeed-zero3.yaml", "DEEPSPEED")])
def test_config_parses(name, kind):
    from accelerate.commands.config.config_args import ClusterConfig

    cfg = ClusterConfig.from_yaml_file(str(FOLDER / name))
    assert str(cfg.distributed_type).endswith(kind) and cfg.mixed_precision == "bf16"
    if kind == "FSDP":
        assert cfg.fsdp_config["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    else:
        assert cfg.deepspeed_config["zero_stage"] == 3 and cfg.deepspeed_config["zero3_init_flag"]


def test_qlora_quant_storage_matches_compute_dtype():
    import torch

    stage = load_recipe("jmedlora-70b-qlora", ["model.name_or_path=x"]).stage("sft")
    q = quantization_config(stage)
    assert q.bnb_4bit_quant_storage == q.bnb_4bit_compute_dtype == torch.bfloat16


@pytest.mark.parametrize("fixture", ["tiny_model_dir", "tiny_qwen2_dir"])
def test_transformer_wrap_policy_finds_the_decoder_layers(request, fixture):
    """TRANSFORMER_BASED_WRAP wraps the classes the model names in _no_split_modules: accelerate must find
    them in the model (what `accelerate launch` with fsdp-qlora.yaml does before sharding)."""
    from accelerate.utils.dataclasses import get_module_class_from_name
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(request.getfixturevalue(fixture))
    names = list(model._no_split_modules)
    assert names
    for name in names:
        cls = get_module_class_from_name(model, name)
        assert cls is not None and sum(isinstance(m, cls) for m in model.modules()) == model.config.num_hidden_layers
