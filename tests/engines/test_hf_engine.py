"""HFEngine construction, description, chat formatting and the engine registry."""

from __future__ import annotations

import json
import shutil

import pytest

torch = pytest.importorskip("torch")

from jmedllm.engines import ENGINES, Engine, load_engine  # noqa: E402
from jmedllm.engines.hf import HFEngine, ModelLoadError  # noqa: E402
from jmedllm.schema import LoglikRequest  # noqa: E402

from conftest import lm_eval_split, sequence_logprob  # noqa: E402


def test_registry_and_protocol(engines):
    assert "hf" in ENGINES
    assert isinstance(engines["llama"], Engine)
    with pytest.raises(ValueError, match="unknown engine 'nope'; available: hf"):
        load_engine("nope")


def test_missing_or_wrong_model_paths(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        HFEngine(tmp_path / "no-such-model", device="cpu")
    (tmp_path / "not-a-model").mkdir()
    with pytest.raises(ModelLoadError, match="has no config.json"):
        HFEngine(tmp_path / "not-a-model", device="cpu")
    with pytest.raises(ValueError, match="unknown dtype"):
        HFEngine(tmp_path / "not-a-model", dtype="float8", device="cpu")


def test_describe_is_json_and_complete(engines, model_dirs):
    d = engines["qwen2"].describe()
    assert json.loads(json.dumps(d)) == d
    assert d["model"] == str(model_dirs["qwen2"])
    assert d["config_class"] == "Qwen2Config"
    assert d["dtype"] == "float32" and d["device"] == "cpu"
    assert d["max_length"] == 2048  # max_position_embeddings of the tiny config
    assert d["n_parameters"] == sum(p.numel() for p in engines["qwen2"].model.parameters())
    assert d["revision"] is None  # a plain local directory, not a hub cache snapshot
    assert d["adapters"] == [] and d["active_adapter"] is None


def test_hub_cache_snapshot_reports_its_commit(tmp_path, model_dirs):
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = tmp_path / "hub" / "models--jmedllm--tiny-llama" / "snapshots" / commit
    shutil.copytree(model_dirs["llama"], snapshot)
    d = HFEngine(snapshot, device="cpu").describe()
    assert d["revision"] == commit


def test_format_chat(engines, tmp_path, model_dirs):
    messages = [{"role": "system", "content": "医師として答えよ。"}, {"role": "user", "content": "正しいのはどれか。"}]
    text = engines["llama"].format_chat(messages)
    # the tiny models carry a ChatML template
    assert text == (
        "<|im_start|>system\n医師として答えよ。<|im_end|>\n"
        "<|im_start|>user\n正しいのはどれか。<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert not engines["llama"].format_chat(messages, add_generation_prompt=False).endswith("assistant\n")
    copy = tmp_path / "no-template"
    shutil.copytree(model_dirs["llama"], copy)
    (copy / "chat_template.jinja").unlink()
    config = json.loads((copy / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (copy / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="has no chat template"):
        HFEngine(copy, device="cpu").format_chat(messages)


def test_sliding_window_requests_fall_back_to_the_models_own_mask(tmp_path, model_dirs):
    """A Qwen2 with an 8-token sliding window: longer requests are scored per sequence."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    copy = tmp_path / "qwen2-window"
    shutil.copytree(model_dirs["qwen2"], copy)
    config = json.loads((copy / "config.json").read_text())
    config.update(use_sliding_window=True, sliding_window=8, max_window_layers=0,
                  layer_types=["sliding_attention", "sliding_attention"])
    (copy / "config.json").write_text(json.dumps(config))
    tokenizer = AutoTokenizer.from_pretrained(copy)
    model = AutoModelForCausalLM.from_pretrained(copy, dtype=torch.float32).eval()
    engine = HFEngine(copy, dtype="float32", device="cpu", max_padding_fraction=None)
    requests = [
        LoglikRequest("短い", ("a", "b")),  # fits in the window: shared prefix
        LoglikRequest("45歳の男性。発熱と咳嗽を主訴に来院した。診断は", ("肺炎", "心不全")),  # longer: per sequence
    ]
    scores = engine.loglikelihoods(requests)
    for r, row in zip(requests, scores):
        for cont, s in zip(r.continuations, row):
            expected, _ = sequence_logprob(model, *lm_eval_split(tokenizer, r.context, cont))
            assert s.logprob == pytest.approx(expected, abs=1e-4)
    # one packed row for the short request + one batch of two rows for the long one
    assert engine.stats.forward_passes == 2
