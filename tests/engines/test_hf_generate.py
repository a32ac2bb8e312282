"""HFEngine.generate on tiny real models: batching, stop strings, EOS, truncation, sampling."""

from __future__ import annotations

import json
import shutil

import pytest

torch = pytest.importorskip("torch")

from jmedllm.engines.hf import HFEngine  # noqa: E402
from jmedllm.schema import GenerationParams  # noqa: E402

PROMPTS = [
    "患者は",
    "45歳の男性。発熱と咳嗽を主訴に来院した。最も考えられる診断はどれか。答え：",
    "The patient is a 45-year-old man with fever.",
    "治療として",
    "Which of the following is the most appropriate next step in management?",
]


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_batched_generation_equals_one_at_a_time(arch, model_dirs, engines):
    params = GenerationParams(max_new_tokens=12)
    batched = engines[arch].generate(PROMPTS, params)
    single = HFEngine(model_dirs[arch], dtype="float32", device="cpu", batch_size=1)
    one_by_one = [single.generate([p], params)[0] for p in PROMPTS]
    assert batched == one_by_one
    # CPU: one forward prefills a prompt but its last token, then one per generated token
    assert single.stats.forward_passes == len(PROMPTS) + sum(c.n_completion_tokens for c in one_by_one)
    for prompt, c in zip(PROMPTS, batched):
        assert c.n_prompt_tokens == len(engines[arch].encode(prompt))
        assert c.truncated_tokens == 0
        if c.finish_reason == "length":
            assert c.n_completion_tokens == 12


def test_greedy_matches_transformers_generate(raw_models, engines):
    tokenizer, model = raw_models["llama"]
    ids = tokenizer(PROMPTS[1], add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=10, do_sample=False, eos_token_id=[], pad_token_id=0)
    expected = tokenizer.decode(out[0, ids.shape[1]:])
    [got] = engines["llama"].generate([PROMPTS[1]], GenerationParams(max_new_tokens=10))
    if got.finish_reason == "length":  # no EOS met: the texts must agree fully
        assert got.text == expected
    else:
        assert expected.startswith(got.text)


def test_stop_string_cuts_the_text(engines):
    engine = engines["qwen2"]
    [free] = engine.generate([PROMPTS[0]], GenerationParams(max_new_tokens=16))
    assert free.finish_reason == "length" and len(free.text) > 6
    stop = free.text[4:6]  # a string the model will produce, after some text
    assert stop not in free.text[:4]
    [cut] = engine.generate([PROMPTS[0]], GenerationParams(max_new_tokens=16, stop=(stop, "never-seen")))
    assert cut.text == free.text[: free.text.find(stop)]
    assert cut.finish_reason == "stop"
    assert cut.n_completion_tokens < free.n_completion_tokens  # stopped early, not cut after the fact


def test_eos_from_the_generation_config_stops(tmp_path, model_dirs, engines, raw_models):
    """A copy of the tiny model whose generation_config names its second greedy token as EOS."""
    tokenizer, model = raw_models["llama"]
    ids = tokenizer(PROMPTS[0], add_special_tokens=False).input_ids
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=2, do_sample=False, eos_token_id=[], pad_token_id=0)
    first, second = out[0, len(ids):].tolist()
    if first == second:
        pytest.skip("the first two greedy tokens coincide; this construction needs them distinct")
    copy = tmp_path / "eos-model"
    shutil.copytree(model_dirs["llama"], copy)
    config = json.loads((copy / "generation_config.json").read_text())
    config["eos_token_id"] = [second]
    (copy / "generation_config.json").write_text(json.dumps(config))
    engine = HFEngine(copy, dtype="float32", device="cpu")
    [c] = engine.generate([PROMPTS[0]], GenerationParams(max_new_tokens=8))
    assert c.finish_reason == "stop"
    assert c.n_completion_tokens == 2  # the first token and the EOS
    assert c.text == tokenizer.decode([first])


def test_long_prompt_truncated_from_the_left(model_dirs, raw_models):
    tokenizer, model = raw_models["llama"]
    engine = HFEngine(model_dirs["llama"], dtype="float32", device="cpu", max_length=16)
    prompt = PROMPTS[1] * 2
    ids = engine.encode(prompt)
    # room for the prompt: max_length - max_new_tokens = 16 - 4 = 12 tokens, the last 12 kept
    [c] = engine.generate([prompt], GenerationParams(max_new_tokens=4))
    assert c.truncated_tokens == len(ids) - 12
    assert c.n_prompt_tokens == 12
    with torch.no_grad():
        out = model.generate(torch.tensor([ids[-12:]]), max_new_tokens=4, do_sample=False, eos_token_id=[], pad_token_id=0)
    assert tokenizer.decode(out[0, 12:]).startswith(c.text)
    with pytest.raises(ValueError, match="leaves no room"):
        engine.generate([prompt], GenerationParams(max_new_tokens=16))


def test_sampling_is_seeded(engines):
    engine = engines["llama"]
    params = GenerationParams(max_new_tokens=10, temperature=1.0, seed=7)
    a = engine.generate(PROMPTS[:2], params)
    b = engine.generate(PROMPTS[:2], params)
    assert a == b
    greedy = engine.generate(PROMPTS[:2], GenerationParams(max_new_tokens=10))
    other = engine.generate(PROMPTS[:2], GenerationParams(max_new_tokens=10, temperature=1.0, seed=8))
    # temperature 1 over a 4000-token vocabulary of a random model: ten sampled tokens differ
    # from the greedy ones, and from another seed's (fixed seeds: deterministic, not flaky)
    assert a != greedy
    assert other != a


@pytest.mark.parametrize("static", [False, True], ids=["padded-prefill", "ragged-prefill"])
def test_cpu_generation_batches_follow_the_cost_plan(static, model_dirs, batch_sizes):
    """Padded path: batches weigh prompt padding against decode steps. Ragged path (CPU with a
    static cache): prompts are prefilled apart, and decode batches weigh each row's cache
    length (padded to the batch's longest prompt) against decode steps; with decode attention
    by row groups a row reads its own length, so padding costs nothing and one batch wins."""
    from jmedllm.engines.batching import DecodeCost

    engine = HFEngine(model_dirs["llama"], dtype="float32", device="cpu", prefix_cache_min_tokens=0,
                      static_generation_cache=static)
    cost = engine.describe()["generation_cost"]
    assert {k: cost[k] for k in ("forward", "step", "step_row", "step_row_context")} == {
        "forward": 15.0, "step": 27.0, "step_row": 1.5, "step_row_context": 0.007}
    sizes = batch_sizes(engine, "_generate_ragged" if static else "_generate_batch")
    assert engine.decode_by_row_groups is static  # the tiny Llama qualifies (when the static cache is on)
    engine.decode_by_row_groups = False
    params = GenerationParams(max_new_tokens=4)
    lengths = sorted({len(engine.encode(p)) for p in PROMPTS}, reverse=True)
    # decode steps free: padding (prefill or cache) is all that costs, so each distinct prompt length is a batch
    engine.generation_cost = DecodeCost(forward=0, step=0, step_row=1, step_row_context=float(static))
    free = engine.generate(PROMPTS, params)
    assert len(sizes) == len(lengths) and sum(sizes) == len(PROMPTS)
    # decode steps dear: one batch for all, and the same completions
    sizes.clear()
    engine.generation_cost = DecodeCost(forward=0, step=1e6, step_row=1, step_row_context=0)
    assert engine.generate(PROMPTS, params) == free
    assert sizes == [len(PROMPTS)]
    if static:  # by row groups: free decode steps, yet one batch (no padding to weigh), same completions
        sizes.clear()
        engine.decode_by_row_groups = True
        engine.generation_cost = DecodeCost(forward=0, step=0, step_row=1, step_row_context=1)
        assert engine.generate(PROMPTS, params) == free
        assert sizes == [len(PROMPTS)]
