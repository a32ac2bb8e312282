"""PEFT adapters on HFEngine: scores equal the PeftModel's, switching, and loud failures."""

from __future__ import annotations

import hashlib
import json

import pytest

torch = pytest.importorskip("torch")
peft = pytest.importorskip("peft")

from jmedllm.engines.adapters import AdapterError  # noqa: E402
from jmedllm.engines.hf import HFEngine  # noqa: E402
from jmedllm.schema import LoglikRequest  # noqa: E402

from conftest import lm_eval_split, sequence_logprob  # noqa: E402

REQUESTS = [
    LoglikRequest("正しいのはどれか。答え：", ("a", "b", "ｂ")),
    LoglikRequest("Which is the most likely diagnosis? Answer:", (" pneumonia", " asthma")),
]
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"]


def make_lora(base_dir, out_dir, seed, num_layers=None):
    """A random LoRA (init_lora_weights=False, so that it changes outputs) saved with peft."""
    from transformers import AutoConfig, AutoModelForCausalLM

    if num_layers is None:
        base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    else:  # same shapes, another depth, and no record of where it came from
        config = AutoConfig.from_pretrained(base_dir, num_hidden_layers=num_layers)
        base = AutoModelForCausalLM.from_config(config)
    torch.manual_seed(seed)
    lora = peft.LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, init_lora_weights=False)
    model = peft.get_peft_model(base, lora)
    model.save_pretrained(out_dir)
    if num_layers is not None:
        cfg = json.loads((out_dir / "adapter_config.json").read_text())
        cfg["base_model_name_or_path"] = None
        (out_dir / "adapter_config.json").write_text(json.dumps(cfg))
    return out_dir


@pytest.fixture(scope="module")
def loras(tmp_path_factory, model_dirs):
    root = tmp_path_factory.mktemp("loras")
    return {
        "a": make_lora(model_dirs["llama"], root / "lora-a", seed=1),
        "b": make_lora(model_dirs["llama"], root / "lora-b", seed=2),
        "deeper": make_lora(model_dirs["llama"], root / "lora-3-layers", seed=3, num_layers=3),
    }


def reference_scores(model_dir, adapter_dir):
    """Scores from a PeftModel loaded directly with peft (or the bare model), one sequence each."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if adapter_dir is not None:
        model = peft.PeftModel.from_pretrained(model, adapter_dir)
    model.eval()
    return [
        [sequence_logprob(model, *lm_eval_split(tokenizer, r.context, c))[0] for c in r.continuations]
        for r in REQUESTS
    ]


def logprobs(engine):
    """Flat list of the engine's log-probabilities over REQUESTS."""
    return [s.logprob for row in engine.loglikelihoods(REQUESTS) for s in row]


def flat(rows):
    return [x for row in rows for x in row]


def test_adapter_scores_equal_peft_and_differ_from_base(model_dirs, loras):
    engine = HFEngine(model_dirs["llama"], adapter=loras["a"], dtype="float32", device="cpu")
    assert engine.active_adapter == "lora-a"
    got = logprobs(engine)
    expected = flat(reference_scores(model_dirs["llama"], loras["a"]))
    base = flat(reference_scores(model_dirs["llama"], None))
    assert got == pytest.approx(expected, abs=1e-4)
    assert all(abs(g - b) > 1e-3 for g, b in zip(got, base))  # the adapter is really applied
    # weights were not merged: the base layers are untouched
    assert engine.n_parameters == sum(
        p.numel() for n, p in engine.model.named_parameters() if "lora_" not in n
    )


def test_switching_adapters_on_one_base(model_dirs, loras):
    engine = HFEngine(
        model_dirs["llama"], adapter={"a": loras["a"], "b": loras["b"]}, dtype="float32", device="cpu"
    )
    assert engine.adapter_names == ["a", "b"] and engine.active_adapter == "a"
    ref = {name: reference_scores(model_dirs["llama"], loras[name]) for name in ("a", "b")}
    ref[None] = reference_scores(model_dirs["llama"], None)
    for name in ("a", "b", None, "a"):
        engine.use_adapter(name)
        assert logprobs(engine) == pytest.approx(flat(ref[name]), abs=1e-4), name
    with pytest.raises(KeyError, match="no adapter named 'c'"):
        engine.use_adapter("c")
    # generation honours the active adapter too
    from jmedllm.schema import GenerationParams

    params = GenerationParams(max_new_tokens=6)
    engine.use_adapter("a")
    with_a = engine.generate(["患者は"], params)
    engine.use_adapter(None)
    bare = engine.generate(["患者は"], params)
    assert with_a != bare

    d = engine.describe()
    json.dumps(d)
    weights = (loras["b"] / "adapter_model.safetensors").read_bytes()
    assert d["adapters"][1]["sha256"] == hashlib.sha256(weights).hexdigest()
    assert d["adapters"][1]["name"] == "b" and d["active_adapter"] is None


def test_adapter_errors(tmp_path, model_dirs, loras):
    with pytest.raises(AdapterError, match="does not exist"):
        HFEngine(model_dirs["llama"], adapter=tmp_path / "nowhere", device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AdapterError, match="adapter_config.json is missing"):
        HFEngine(model_dirs["llama"], adapter=tmp_path / "empty", device="cpu")
    # trained on the tiny Llama, loaded on the tiny Qwen2 (same tensor shapes!)
    with pytest.raises(AdapterError, match="model_type: adapter base 'llama' vs model 'qwen2'"):
        HFEngine(model_dirs["qwen2"], adapter=loras["a"], device="cpu")


def test_adapter_for_a_deeper_model_is_refused_and_leaves_the_engine_intact(model_dirs, loras):
    engine = HFEngine(model_dirs["llama"], dtype="float32", device="cpu")
    before = logprobs(engine)
    with pytest.raises(AdapterError, match="weights in the file name modules the model lacks"):
        engine.load_adapter(loras["deeper"])
    assert engine.adapter_names == [] and engine.active_adapter is None
    assert logprobs(engine) == pytest.approx(before, abs=1e-6)
    # and a good adapter still loads afterwards
    engine.load_adapter(loras["b"], name="b")
    with_b = flat(reference_scores(model_dirs["llama"], loras["b"]))
    assert logprobs(engine) == pytest.approx(with_b, abs=1e-4)
    # a failed second adapter is removed again, the loaded one stays active and intact
    with pytest.raises(AdapterError, match="weights in the file name modules the model lacks"):
        engine.load_adapter(loras["deeper"])
    assert engine.adapter_names == ["b"] and engine.active_adapter == "b"
    assert logprobs(engine) == pytest.approx(with_b, abs=1e-4)
