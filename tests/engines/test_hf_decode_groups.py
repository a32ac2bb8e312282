"""Decode attention per group of rows of similar length (engines/hf_decode_groups.py)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from jmedllm.engines import hf_decode_groups  # noqa: E402
from jmedllm.engines.hf_decode_groups import (  # noqa: E402
    decode_row_groups, growing_static_cache, plan_row_groups, row_groups_are_exact,
)
from jmedllm.schema import GenerationParams  # noqa: E402
from sample_prompts import PROMPTS  # noqa: E402


def test_row_groups_minimise_keys_read_plus_calls():
    # one group: 5 + 5 x 10 = 55; [10, 10, 10] + [1, 1]: (5 + 30) + (5 + 2) = 42; three groups cost more
    assert plan_row_groups([10, 10, 10, 1, 1], call_cost=5) == [(0, 3), (3, 5)]
    # a dear call: one group (100 + 50 = 150 against 200 + 32)
    assert plan_row_groups([10, 10, 10, 1, 1], call_cost=100) == [(0, 5)]
    # free calls: a group per distinct length (ties go to the larger group)
    assert plan_row_groups([4, 4, 3, 1], call_cost=0) == [(0, 2), (2, 3), (3, 4)]
    assert plan_row_groups([]) == []
    with pytest.raises(ValueError, match="longest first"):
        plan_row_groups([1, 2])


def test_growing_layer_hands_out_filled_columns_only(raw_models):
    _, model = raw_models["llama"]
    cache = growing_static_cache(model.config, 6)
    layer = cache.layers[0]
    k = torch.randn(2, 4, 3, 8)
    keys, values = layer.update(k, k + 1)
    assert keys.shape[-2] == 3 and torch.equal(keys, k) and torch.equal(values, k + 1)
    assert layer.get_mask_sizes(1) == (4, 0)  # the next step's mask: 3 filled + 1 new column
    keys, _ = layer.update(k[:, :, :1] * 2, k[:, :, :1])
    assert keys.shape[-2] == 4 and torch.equal(keys[:, :, 3], k[:, :, 0] * 2)
    assert keys.data_ptr() == layer.keys.data_ptr()  # a view of the preallocated storage, no copy
    with pytest.raises(ValueError, match="cannot take 7"):
        layer.update(k, k)
    # reserve: storage for 3 rows, 4 columns counted as filled (the caller writes them), none written
    fresh = growing_static_cache(model.config, 6).layers[0]
    keys, values = fresh.reserve(3, k[:1], k[:1], 4)
    assert keys.shape == (3, 4, 4, 8) and fresh.keys.shape == (3, 4, 6, 8) and int(fresh.cumulative_length) == 4
    keys.zero_()
    values.zero_()
    keys, _ = fresh.update(k[:1].expand(3, -1, -1, -1)[:, :, :1], k[:1].expand(3, -1, -1, -1)[:, :, :1])
    assert keys.shape[-2] == 5 and torch.equal(keys[:, :, 4], k[:1, :, 0].expand(3, -1, -1))
    with pytest.raises(ValueError, match="cannot reserve"):
        fresh.reserve(3, k[:1], k[:1], 4)


def _left_padded(tokenizer, texts):
    rows = [tokenizer(t, add_special_tokens=False).input_ids for t in texts]
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))
    rows = [rows[i] for i in order]
    width = len(rows[0])
    ids = torch.tensor([[0] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return rows, ids, mask


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_grouped_decode_step_equals_each_row_alone(arch, raw_models):
    """Prompts of 3 or 4 lengths, left-padded in one growing static cache; one decode step with row
    groups against a plain forward of each row's own unpadded tokens (no batch, no cache)."""
    tokenizer, model = raw_models[arch]
    rows, ids, mask = _left_padded(tokenizer, PROMPTS[:4])
    width = ids.shape[1]
    nxt = torch.tensor([[7], [8], [9], [10]])
    groups = [(a, b, width - len(rows[a])) for a, b in plan_row_groups([len(r) for r in rows], call_cost=0)]
    lengths = {len(r) for r in rows}
    assert len(lengths) >= 3 and len(groups) == len(lengths)  # a group per length: no padding is read
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = growing_static_cache(model.config, width + 1)
    calls = hf_decode_groups._calls.count
    with torch.inference_mode():
        model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True)
        with decode_row_groups(model, groups):
            step = model(input_ids=nxt, attention_mask=torch.cat([mask, torch.ones(4, 1, dtype=mask.dtype)], 1),
                         position_ids=positions[:, -1:] + 1, past_key_values=cache, use_cache=True).logits[:, -1]
        assert hf_decode_groups._calls.count == calls + model.config.num_hidden_layers
        for r, row in enumerate(rows):
            alone = model(input_ids=torch.tensor([row + [int(nxt[r, 0])]])).logits[0, -1]
            torch.testing.assert_close(step[r], alone, rtol=0, atol=1e-4)
    assert model.config._attn_implementation == "sdpa"  # restored after the scope


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_check_accepts_the_tiny_models(arch, raw_models):
    _, model = raw_models[arch]
    assert row_groups_are_exact(model, "past_key_values")


def test_check_refuses_models_the_groups_do_not_reach(unreachable_attention):
    """Eager attention, and attention layers that read another config than the model's (so the
    scope never reaches them: the groups would silently do nothing)."""
    for name, model in unreachable_attention.items():
        assert not row_groups_are_exact(model, "past_key_values"), name


def test_groups_refuse_a_forward_they_were_not_planned_for(raw_models):
    """Inside the scope, columns outside the groups may be unwritten: a prefill (several
    queries per row) or another batch size is an error, never a read of those columns."""
    _, model = raw_models["llama"]
    ids = torch.randint(5, 1000, (2, 5), generator=torch.Generator().manual_seed(2))
    with torch.inference_mode(), decode_row_groups(model, [(0, 2, 0)]):
        with pytest.raises(RuntimeError, match="row groups of 2 rows"):
            model(input_ids=ids)
        with pytest.raises(RuntimeError, match="row groups of 2 rows"):
            model(input_ids=ids[:1, :1])


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_engine_generates_the_same_text_by_row_groups(arch, model_dirs):
    """Ragged CPU generation with and without row groups: the same greedy completions, in one
    decode batch with several groups against the planned batches of padded attention."""
    from jmedllm.engines.hf import HFEngine

    engine = HFEngine(model_dirs[arch], dtype="float32", device="cpu", prefix_cache_min_tokens=0)
    assert engine.decode_by_row_groups and engine.describe()["decode_attention_by_row_groups"] is True
    engine.decode_attention_kernel = False  # SDPA per group (the kernel: tests/engines/test_cpu_decode_attention.py)
    params = GenerationParams(max_new_tokens=12)
    calls = hf_decode_groups._calls.count
    grouped = engine.generate(PROMPTS, params)
    assert hf_decode_groups._calls.count > calls
    engine.decode_by_row_groups = False
    plain = engine.generate(PROMPTS, params)
    assert grouped == plain
    assert [c.n_completion_tokens for c in grouped] == [c.n_completion_tokens for c in plain]


def test_engine_off_the_static_path_has_no_row_groups(model_dirs):
    from jmedllm.engines.hf import HFEngine

    engine = HFEngine(model_dirs["llama"], dtype="float32", device="cpu", static_generation_cache=False)
    assert engine.decode_by_row_groups is False


def test_kv_bytes_per_token_and_the_cache_guard(model_dirs, raw_models, batch_sizes):
    """Bytes per cached position from the config (hand-computed for the tiny Llama), and the
    decode batches of the ragged path kept under max_cache_bytes (rows x padded width)."""
    from jmedllm.engines.hf import HFEngine
    from jmedllm.engines.hf_decode_groups import kv_bytes_per_token

    _, model = raw_models["llama"]
    c = model.config
    per_token = c.num_hidden_layers * 2 * c.num_key_value_heads * (c.hidden_size // c.num_attention_heads) * 4
    assert kv_bytes_per_token(c, torch.float32) == per_token
    assert kv_bytes_per_token(c, torch.bfloat16) == per_token // 2

    engine = HFEngine(model_dirs["llama"], dtype="float32", device="cpu", prefix_cache_min_tokens=0)
    params = GenerationParams(max_new_tokens=4)
    longest = max(len(engine.encode(p)) for p in PROMPTS)
    sizes = batch_sizes(engine)
    whole = engine.generate(PROMPTS, params)
    assert sizes == [len(PROMPTS)]  # the default 4 GiB holds them all
    sizes.clear()
    engine.max_cache_tokens = 2 * (longest + 4)  # what max_cache_bytes of two longest rows gives
    assert engine.generate(PROMPTS, params) == whole
    assert len(sizes) > 1 and sizes[0] <= 2 and sum(sizes) == len(PROMPTS)
    described = HFEngine(model_dirs["llama"], dtype="float32", device="cpu", max_cache_bytes=per_token * 100)
    assert described.max_cache_tokens == 100 and described.describe()["max_cache_bytes"] == per_token * 100


def test_scratch_pool_reuses_its_buffers_and_the_engine_its_pages(model_dirs):
    """The pool hands out the same memory again (smaller requests too), grows for a larger one;
    an engine's second generate call decodes in the first call's storage, with the same text."""
    from jmedllm.engines.hf import HFEngine
    from jmedllm.engines.hf_decode_groups import ScratchPool

    pool = ScratchPool()
    like = torch.zeros(1)
    a = pool.take((0, 0), (2, 3), like)
    assert pool.take((0, 0), (3, 2), like).data_ptr() == a.data_ptr()
    assert pool.take((0, 0), (1, 2), like).data_ptr() == a.data_ptr()
    big = pool.take((0, 0), (4, 4), like)
    assert big.shape == (4, 4) and pool.nbytes == 16 * 4
    assert pool.take((0, 1), (2,), like.double()).dtype == torch.float64
    pool.clear()
    assert pool.nbytes == 0

    engine = HFEngine(model_dirs["llama"], dtype="float32", device="cpu", prefix_cache_min_tokens=0)
    params = GenerationParams(max_new_tokens=6)
    first = engine.generate(PROMPTS, params)
    held = engine.decode_pool.nbytes
    pointers = {k: b.data_ptr() for k, b in engine.decode_pool._buffers.items()}
    assert held > 0
    assert engine.generate(PROMPTS, params) == first
    assert engine.decode_pool.nbytes == held
    assert {k: b.data_ptr() for k, b in engine.decode_pool._buffers.items()} == pointers


def test_decode_storage_freed_per_call_or_on_request(model_dirs):
    """keep_decode_storage=False frees the pool when each generate call returns (same texts);
    release_memory frees the pool and the prefix cache, returns their bytes, and the next call
    gives the same texts again."""
    from jmedllm.engines.hf import HFEngine

    params = GenerationParams(max_new_tokens=6)
    prompts = [f"共通の指示です。以下の問いに答えよ。{p}" for p in PROMPTS]  # a shared header: prefix cached
    keeping = HFEngine(model_dirs["llama"], dtype="float32", device="cpu", prefix_cache_min_tokens=4)
    freeing = HFEngine(model_dirs["llama"], dtype="float32", device="cpu", prefix_cache_min_tokens=4,
                       keep_decode_storage=False)
    first = keeping.generate(prompts, params)
    assert freeing.generate(prompts, params) == first
    assert freeing.decode_pool.nbytes == 0 and keeping.decode_pool.nbytes > 0
    assert freeing.describe()["keep_decode_storage"] is False

    held = keeping.decode_pool.nbytes, keeping.prefix_cache.nbytes
    assert held[1] > 0, "the prompts' shared header should be in the prefix cache"
    assert keeping.release_memory() == sum(held)
    assert keeping.decode_pool.nbytes == 0 and keeping.prefix_cache.nbytes == 0
    assert keeping.release_memory() == 0
    assert keeping.generate(prompts, params) == first


def test_prefix_cache_counts_each_storage_once():
    from jmedllm.engines.prefix_cache import PrefixKVCache

    cache = PrefixKVCache()
    k, v = torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 4, dtype=torch.float64)
    cache.put("a", (1, 2, 3), [(k, v)])
    assert cache.nbytes == 24 * 4 + 24 * 8
    cache.put("b", (1, 2), [(k[:, :, :2], v[:, :, :2])])  # views of the same storage: not counted again
    assert cache.nbytes == 24 * 4 + 24 * 8
    cache.clear()
    assert cache.nbytes == 0
