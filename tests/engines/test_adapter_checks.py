"""Adapter directory checks that need no model: hub ids, commits, base mismatch rules."""

from __future__ import annotations

import json

import pytest

from jmedllm.engines.adapters import AdapterError, AdapterInfo, check_adapter_base, commit_of, hub_id_of, read_adapter_dir

COMMIT = "89abcdef0123456789abcdef0123456789abcdef"


def info(base):
    return AdapterInfo(name="x", path="/adapters/x", sha256="0" * 64, base_model_name_or_path=base, peft_type="LORA")


def test_hub_id_of():
    assert hub_id_of("Qwen/Qwen2.5-7B") == "Qwen/Qwen2.5-7B"
    assert hub_id_of(f"/home/u/.cache/huggingface/hub/models--Qwen--Qwen2.5-7B/snapshots/{COMMIT}") == "Qwen/Qwen2.5-7B"
    assert hub_id_of("./my-model") is None
    assert hub_id_of(None) is None


def test_commit_of_a_cache_snapshot(tmp_path):
    snap = tmp_path / "models--org--name" / "snapshots" / COMMIT
    snap.mkdir(parents=True)
    assert commit_of(str(snap)) == COMMIT
    assert commit_of(str(tmp_path)) is None


def test_base_checks_by_hub_id():
    check_adapter_base(info("Qwen/Qwen2.5-7B"), "Qwen/Qwen2.5-7B", {"model_type": "qwen2"})
    check_adapter_base(info(None), "Qwen/Qwen2.5-7B", {})
    # a path on another machine cannot be compared: accepted (PEFT's key check still applies)
    check_adapter_base(info("/nfs/other-machine/qwen"), "Qwen/Qwen2.5-7B", {})
    with pytest.raises(AdapterError, match="trained on meta-llama/Llama-3.1-8B, not on Qwen/Qwen2.5-7B"):
        check_adapter_base(info("meta-llama/Llama-3.1-8B"), "Qwen/Qwen2.5-7B", {})


def test_base_checks_by_local_config(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2}))
    check_adapter_base(info(str(base)), "some/model", {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2})
    with pytest.raises(AdapterError, match="num_hidden_layers: adapter base 2 vs model 4"):
        check_adapter_base(info(str(base)), "some/model", {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 4})


def test_read_adapter_dir_errors(tmp_path):
    d = tmp_path / "a"
    d.mkdir()
    (d / "adapter_config.json").write_text("{not json")
    with pytest.raises(AdapterError, match="adapter_config.json: invalid JSON at line 1"):
        read_adapter_dir(d, "a")
    (d / "adapter_config.json").write_text("{}")
    with pytest.raises(AdapterError, match="holds no adapter weights"):
        read_adapter_dir(d, "a")
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(AdapterError, match="is not a directory"):
        read_adapter_dir(f, "a")
