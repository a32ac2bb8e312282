"""Finished rows leave a CPU decode batch (engines/hf_retire.py, HFEngine._decode_retiring)."""

from __future__ import annotations

import json
import shutil

import pytest

torch = pytest.importorskip("torch")

from jmedllm.engines import cpu_decode_attention, hf_retire  # noqa: E402
from jmedllm.engines.batching import DecodeCost  # noqa: E402
from jmedllm.engines.hf_decode_groups import growing_static_cache  # noqa: E402
from jmedllm.engines.hf_retire import (  # noqa: E402
    finished_rows_criterion, keep_cache_rows, retirable, worth_retiring,
)
from jmedllm.schema import GenerationParams  # noqa: E402

PROMPTS = [
    "45歳の男性。発熱と咳嗽を主訴に来院した。3日前から38℃台の発熱が続く。最も考えられる診断はどれか。答え：",
    "The patient is a 45-year-old man with fever and cough for three days.",
    "Which of the following is the most appropriate next step in management?",
    "治療として",
    "患者は",
    "次のうち正しいのはどれか。",
]
NEW_TOKENS = 14


def test_worth_retiring_by_hand():
    cost = DecodeCost()  # forward 15, step_row 1.5, step_row_context 0.007
    # 10 of 60 rows, 20 steps left, 100 positions per row: saves 20 x 10 x (1.5 + 0.7) = 440;
    # costs 15 + 0.007 x 50 x 100 = 50; 440 > 2 x 50
    assert worth_retiring(10, 60, 20, 100.0, cost)
    # one row, 5 steps left: saves 5 x 2.2 = 11 against 15 + 0.007 x 59 x 100 = 56.3
    assert not worth_retiring(1, 60, 5, 100.0, cost)
    # 4 of 8 rows, 3 steps left, no context: saves 3 x 4 x 1.5 = 18 against 2 x 15 = 30: no; 11 steps: 66 > 30
    assert not worth_retiring(4, 8, 3, 0.0, cost)
    assert worth_retiring(4, 8, 11, 0.0, cost)
    # nothing finished, everything finished (generate stops by itself), or no step left: never
    assert not worth_retiring(0, 8, 50, 10.0, cost)
    assert not worth_retiring(8, 8, 50, 10.0, cost)
    assert not worth_retiring(4, 8, 0, 10.0, cost)


def _filled_cache(raw_models, growing: bool, rows: int = 4, width: int = 6):
    """A static cache of the tiny Llama with ``rows`` rows of random keys / values in ``width`` columns."""
    from transformers import StaticCache

    _, model = raw_models["llama"]
    config = model.config
    if growing:
        cache = growing_static_cache(config, width + 4)
    else:
        cache = StaticCache(config=config, max_cache_len=width + 4)
    heads, dim = config.num_key_value_heads, config.hidden_size // config.num_attention_heads
    generator = torch.Generator().manual_seed(0)
    for i, layer in enumerate(cache.layers):
        k = torch.randn(rows, heads, width, dim, generator=generator)
        layer.update(k, k + 1.0)
    return cache


@pytest.mark.parametrize("growing", [True, False])
def test_keep_cache_rows_moves_the_kept_rows_to_the_front(raw_models, growing):
    cache = _filled_cache(raw_models, growing)
    assert retirable(cache)
    before = [(layer.keys[:, :, :6].clone(), layer.values[:, :, :6].clone()) for layer in cache.layers]
    keep, starts = [1, 3], [2, 0]
    keep_cache_rows(cache, keep, starts)
    for layer, (k, v) in zip(cache.layers, before):
        assert layer.keys.shape[0] == 2 and layer.values.shape[0] == 2
        for new, (old, start) in enumerate(zip(keep, starts)):
            assert torch.equal(layer.keys[new, :, start:6], k[old, :, start:]), (new, old)
            assert torch.equal(layer.values[new, :, start:6], v[old, :, start:])
    if growing:  # moved within the same storage, filled length unchanged
        assert int(cache.layers[0].cumulative_length) == 6
    with pytest.raises(ValueError, match="ascending"):
        keep_cache_rows(cache, [1, 0], [0, 0])


def test_caches_with_more_state_are_not_retirable():
    from transformers import DynamicCache

    assert not retirable(DynamicCache())
    assert not retirable(object())


def test_finished_rows_criterion_tracks_eos_and_stop_strings(raw_models):
    from transformers import StopStringCriteria

    tokenizer, _ = raw_models["llama"]
    stop_ids = tokenizer("。", add_special_tokens=False).input_ids
    assert len(stop_ids) == 1
    stops = StopStringCriteria(tokenizer=tokenizer, stop_strings=["。"])
    calls = []
    criterion = finished_rows_criterion([7], stops, lambda finished, steps: calls.append((finished, steps)) or False)
    ids = torch.tensor([[5, 6, 9], [5, 6, 9], [5, 6, 9]])
    assert criterion(torch.cat([ids, torch.tensor([[7], [stop_ids[0]], [9]])], 1), None).tolist() == [True, True, False]
    # finished rows stay finished whatever comes after them (padding, here token 9)
    assert criterion(torch.tensor([[5, 7, 9], [5, 6, 9], [5, 6, 9]]), None).tolist() == [True, True, False]
    assert calls == [(2, 1), (2, 2)] and not criterion.ended_early
    # a rule that says "retire now" ends every row, and the criterion remembers why
    ending = finished_rows_criterion([7], None, lambda finished, steps: finished >= 1)
    assert ending(torch.tensor([[1, 7], [1, 2]]), None).tolist() == [True, True]
    assert ending.ended_early and ending.done.tolist() == [True, False]
    # nothing finished: the rule is not asked to end anything
    quiet = finished_rows_criterion([7], None, lambda finished, steps: True)
    assert quiet(torch.tensor([[1, 2], [1, 3]]), None).tolist() == [False, False] and not quiet.ended_early


@pytest.fixture(scope="module")
def early_eos(tmp_path_factory, model_dirs, raw_models):
    """Per architecture, a copy of the tiny model whose EOS is a token some greedy rows produce
    within their first four tokens and at least one row does not produce at all, so rows of
    one batch finish at different steps; (model dir, the free greedy tokens per prompt)."""
    out = {}
    for arch, directory in model_dirs.items():
        tokenizer, model = raw_models[arch]
        free = []
        for prompt in PROMPTS:
            ids = tokenizer(prompt, add_special_tokens=False).input_ids
            with torch.no_grad():
                gen = model.generate(torch.tensor([ids]), max_new_tokens=NEW_TOKENS, do_sample=False,
                                     eos_token_id=[], pad_token_id=0)
            free.append(gen[0, len(ids):].tolist())
        candidates = [row[s] for s in range(1, 4) for row in free]
        eos = next((t for t in candidates if any(t not in row for row in free)), None)
        if eos is None:
            pytest.skip(f"{arch}: every early greedy token occurs in every row")
        copy = tmp_path_factory.mktemp(f"retire-{arch}") / "model"
        shutil.copytree(directory, copy)
        config = json.loads((copy / "generation_config.json").read_text())
        config["eos_token_id"] = [eos]
        (copy / "generation_config.json").write_text(json.dumps(config))
        out[arch] = (copy, free, eos)
    return out


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize("row_groups", ["kernel", "sdpa", None])
def test_rows_that_finish_leave_the_batch_with_the_same_completions(arch, row_groups, early_eos, monkeypatch):
    """Retiring finished rows (every time one finishes: MARGIN 0) gives the completions of the
    whole batch decoded to its end, with row groups (storage moved in place; attention by the
    CPU decode kernel, or SDPA per group) and without (a plain StaticCache, rows selected); the
    completions are those of each prompt alone."""
    from jmedllm.engines.hf import HFEngine

    directory, free, eos = early_eos[arch]
    engine = HFEngine(directory, dtype="float32", device="cpu", prefix_cache_min_tokens=0)
    assert engine.describe()["retire_finished_rows"] is True
    engine.decode_by_row_groups = row_groups is not None and engine.decode_by_row_groups
    if row_groups == "kernel" and not engine.decode_attention_kernel:
        pytest.skip(f"no CPU decode attention kernel here: {cpu_decode_attention.unavailable_reason()}")
    engine.decode_attention_kernel = row_groups == "kernel"
    params = GenerationParams(max_new_tokens=NEW_TOKENS)
    monkeypatch.setattr(hf_retire, "MARGIN", 0.0)
    retired = engine.generate(PROMPTS, params)
    assert engine.stats.retired_rows > 0
    engine.retire_finished_rows = False
    whole = engine.generate(PROMPTS, params)
    assert retired == whole
    alone = [engine.generate([p], params)[0] for p in PROMPTS]
    assert retired == alone
    for c, row in zip(retired, free):  # hand-checked against the free greedy tokens
        n = row.index(eos) + 1 if eos in row else NEW_TOKENS
        assert c.n_completion_tokens == n
        assert c.finish_reason == ("stop" if eos in row else "length")


def test_retiring_follows_the_cost_rule(early_eos):
    """At the default margin, a short decode does not pay for retiring; a long one does."""
    from jmedllm.engines.hf import HFEngine

    directory, free, eos = early_eos["llama"]
    engine = HFEngine(directory, dtype="float32", device="cpu", prefix_cache_min_tokens=0)
    engine.generate(PROMPTS, GenerationParams(max_new_tokens=3))
    assert engine.stats.retired_rows == 0
    engine.stats.reset()
    long = engine.generate(PROMPTS, GenerationParams(max_new_tokens=64))
    finished_early = sum(c.finish_reason == "stop" and c.n_completion_tokens < 30 for c in long)
    assert finished_early >= 1 and engine.stats.retired_rows >= 1
    engine.retire_finished_rows = False
    assert engine.generate(PROMPTS, GenerationParams(max_new_tokens=64)) == long


def test_sampling_keeps_its_batch(early_eos, monkeypatch):
    """Sampled rows draw from the batch's random stream: no row leaves, so seeds reproduce."""
    from jmedllm.engines.hf import HFEngine

    directory, _, _ = early_eos["llama"]
    engine = HFEngine(directory, dtype="float32", device="cpu", prefix_cache_min_tokens=0)
    monkeypatch.setattr(hf_retire, "MARGIN", 0.0)
    params = GenerationParams(max_new_tokens=NEW_TOKENS, temperature=1.0, seed=3)
    first = engine.generate(PROMPTS, params)
    assert engine.stats.retired_rows == 0
    engine.retire_finished_rows = False
    assert engine.generate(PROMPTS, params) == first


@pytest.mark.parametrize("static", [True, False])
def test_a_row_stopped_by_a_stop_string_counts_its_tokens_to_the_stop(static, model_dirs, monkeypatch):
    """In a batch, a row that completes a stop string before the others counts the tokens up to
    the one completing it, as the same prompt alone does (it used to count the batch's steps)."""
    from jmedllm.engines.hf import HFEngine

    engine = HFEngine(model_dirs["qwen2"], dtype="float32", device="cpu", prefix_cache_min_tokens=0,
                      static_generation_cache=static)
    free = engine.generate(PROMPTS, GenerationParams(max_new_tokens=NEW_TOKENS))
    stop = next((c.text[3:5] for c in free if len(c.text) > 6 and c.text[3:5] not in c.text[:3]
                 and any(c.text[3:5] not in other.text for other in free)), None)
    if stop is None:
        pytest.skip("no two-character stop string that some rows produce and one does not")
    params = GenerationParams(max_new_tokens=NEW_TOKENS, stop=(stop,))
    batch = engine.generate(PROMPTS, params)
    alone = [engine.generate([p], params)[0] for p in PROMPTS]
    assert batch == alone
    assert any(c.finish_reason == "stop" and c.n_completion_tokens < NEW_TOKENS for c in batch)
    assert any(c.finish_reason == "length" for c in batch)
