"""Forwards over packed sequences, attention per segment (engines/hf_packed.py)."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

from jmedllm.engines import hf_packed  # noqa: E402
from jmedllm.engines.hf_packed import (  # noqa: E402
    causal_after_prefix, pack_sequences, packed_forward, packing_is_exact, plan_packs,
)
from jmedllm.schema import GenerationParams  # noqa: E402
from sample_prompts import PROMPTS  # noqa: E402


def test_packs_are_as_few_as_the_budget_allows_and_even():
    assert plan_packs([5, 5, 5, 5], max_tokens=10) == [2, 2]
    # 24 tokens, budget 16: two packs of about 12, not 16 + 8
    assert plan_packs([4] * 6, max_tokens=16) == [3, 3]
    # a sequence over the budget is a pack of its own; the rest fill evenly
    assert plan_packs([30, 3, 3, 2], max_tokens=8) == [1, 3]
    assert plan_packs([30, 3, 3, 3], max_tokens=8) == [1, 2, 1]  # 9 tokens cannot share one pack of 8
    assert plan_packs([3, 3, 30], max_tokens=8) == [2, 1]
    assert plan_packs([7], max_tokens=100) == [1]
    assert plan_packs([]) == []
    assert sum(plan_packs(list(range(1, 60)), max_tokens=200)) == 59
    assert all(sum(p) <= 200 for p in _split(list(range(1, 60)), plan_packs(list(range(1, 60)), max_tokens=200)))
    with pytest.raises(ValueError, match="max_tokens"):
        plan_packs([1], max_tokens=0)


def _split(items, sizes):
    out, i = [], 0
    for n in sizes:
        out.append(items[i : i + n])
        i += n
    return out


def test_causal_after_prefix_by_hand():
    assert causal_after_prefix(3, 2).tolist() == [
        [True, True, True, False, False],
        [True, True, True, True, False],
        [True, True, True, True, True],
    ]
    assert causal_after_prefix(2, 0).tolist() == [[True, False], [True, True]]


def test_pack_sequences_lays_out_ids_positions_and_prefix_columns():
    ids, positions, layout, columns = pack_sequences([[5, 6, 7], [8], [9, 10]], [1, -1, 0], [4, 2])
    assert ids.tolist() == [[5, 6, 7, 8, 9, 10]]
    assert positions.tolist() == [[2, 3, 4, 0, 4, 5]]  # each after its own prefix (2 tokens, none, 4 tokens)
    assert columns == [0, 4] and layout.context == 6 and layout.tokens == 6
    assert [(s.start, s.end, s.prefix_start, s.prefix_end) for s in layout.segments] == [
        (0, 3, 4, 6), (3, 4, 0, 0), (4, 6, 0, 4)]
    with pytest.raises(ValueError, match="sequence 0: 2 tokens but 1 positions"):
        pack_sequences([[1, 2]], [-1], [], positions=[[0]])


def _states(model, tokens):
    """A prefix's per-layer keys and values (batch 1), from its own forward."""
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    model(input_ids=torch.tensor([tokens]), past_key_values=cache, use_cache=True)
    return [(layer.keys, layer.values) for layer in cache.layers]


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_packed_forward_equals_each_sequence_alone(arch, raw_models):
    """Five sequences, two of them after one cached prefix, one after another, two with none,
    packed in one row: every position's logits and every layer's keys and values equal those of
    the sequence's own unpadded forward (prefix + sequence), to 1e-4."""
    from transformers import DynamicCache

    tokenizer, model = raw_models[arch]
    rows = [tokenizer(t, add_special_tokens=False).input_ids for t in PROMPTS]
    prefixes = [rows[0][:6], rows[1][:3]]
    owners = [0, 0, 1, -1, -1]
    seqs = [rows[0][6:], rows[2], rows[1][3:], rows[3], rows[4]]
    with torch.inference_mode():
        states = [_states(model, p) for p in prefixes]
        cache = DynamicCache([(torch.cat([s[n][0] for s in states], 2), torch.cat([s[n][1] for s in states], 2))
                              for n in range(model.config.num_hidden_layers)])
        ids, positions, layout, columns = pack_sequences(seqs, owners, [len(p) for p in prefixes])
        calls = hf_packed._calls.count
        with packed_forward(model, layout):
            packed = model(input_ids=ids, position_ids=positions, past_key_values=cache, use_cache=True).logits[0]
        assert hf_packed._calls.count == calls + model.config.num_hidden_layers
        for seg, owner, seq in zip(layout.segments, owners, seqs):
            whole = (prefixes[owner] if owner >= 0 else []) + seq
            alone_cache = DynamicCache(config=model.config)
            alone = model(input_ids=torch.tensor([whole]), past_key_values=alone_cache, use_cache=True).logits[0]
            torch.testing.assert_close(packed[seg.start : seg.end], alone[-len(seq):], rtol=0, atol=1e-4)
            for mine, theirs in zip(cache.layers, alone_cache.layers):
                own = slice(layout.context + seg.start, layout.context + seg.end)
                torch.testing.assert_close(mine.keys[:, :, own], theirs.keys[:, :, -len(seq):], rtol=0, atol=1e-4)
                torch.testing.assert_close(mine.values[:, :, own], theirs.values[:, :, -len(seq):], rtol=0, atol=1e-4)
    assert model.config._attn_implementation == "sdpa"


def test_segment_masks_are_the_callers(raw_models):
    """A segment given its own mask attends by it: the causal mask after the prefix gives the
    default's logits; a mask hiding the prefix gives the logits of the sequence alone."""
    from transformers import DynamicCache

    tokenizer, model = raw_models["llama"]
    tokens = tokenizer(PROMPTS[0], add_special_tokens=False).input_ids
    prefix, seq = tokens[:5], tokens[5:12]
    n = len(seq)

    def run(mask):
        ids, positions, layout, _ = pack_sequences([seq], [0], [len(prefix)], masks=[mask])
        cache = DynamicCache(_states(model, prefix))
        with packed_forward(model, layout):
            return model(input_ids=ids, position_ids=positions, past_key_values=cache, use_cache=True).logits[0]

    with torch.inference_mode():
        default = run(None)
        torch.testing.assert_close(run(causal_after_prefix(n, 5)), default, rtol=0, atol=1e-5)
        hidden = causal_after_prefix(n, 5)
        hidden[:, :5] = False
        # positions still count the prefix (5..), so compare with the sequence alone at those positions
        alone = model(input_ids=torch.tensor([seq]), position_ids=torch.arange(5, 5 + n)[None]).logits[0]
        torch.testing.assert_close(run(hidden), alone, rtol=0, atol=1e-4)


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_check_accepts_the_tiny_models(arch, raw_models):
    _, model = raw_models[arch]
    assert packing_is_exact(model, "past_key_values")


def test_check_refuses_models_packing_does_not_reach(raw_models, unreachable_attention):
    """Eager attention; attention layers reading another config than the model's (the scope
    would never reach them and every token would attend across sequences); a sliding window."""
    for name, model in unreachable_attention.items():
        assert not packing_is_exact(model, "past_key_values"), name
    windowed = copy.deepcopy(raw_models["llama"][1])
    windowed.config.sliding_window = 4
    assert not packing_is_exact(windowed, "past_key_values")


def test_packed_attention_refuses_a_forward_off_its_layout(raw_models):
    _, model = raw_models["llama"]
    _, _, layout, _ = pack_sequences([[5, 6, 7], [8, 9]], [-1, -1], [])
    with torch.inference_mode(), packed_forward(model, layout):
        with pytest.raises(RuntimeError, match="packed layout of 5 tokens"):
            model(input_ids=torch.tensor([[5, 6, 7, 8]]))
        with pytest.raises(RuntimeError, match="packed layout of 5 tokens"):
            model(input_ids=torch.tensor([[5, 6, 7, 8, 9]] * 2))


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_engine_prefill_packed_equals_padded(arch, model_dirs):
    """The ragged path's prompt states, packed (several packs, a shared cached prefix) against the
    padded forwards: the same keys and values to 1e-4, and the same greedy completions."""
    from jmedllm.engines.hf import HFEngine

    engine = HFEngine(model_dirs[arch], dtype="float32", device="cpu", prefix_cache_min_tokens=4)
    assert engine.packed_forwards and engine.describe()["packed_forwards"] is True
    header = "次の問題に答えよ。選択肢から一つ選べ。\n"
    prompts = [header + p for p in PROMPTS] + PROMPTS[:2]
    seqs = [engine.encode(p)[:-1] for p in prompts]
    engine.pack_tokens = max(map(len, seqs)) + 8  # several packs
    calls = hf_packed._calls.count
    packed = {i: layers for i, layers in engine._prefill_states(seqs)}
    layers_count = engine._hf_model.config.num_hidden_layers
    assert hf_packed._calls.count - calls > layers_count  # more than one packed forward
    assert engine.prefix_cache._entries  # the header was cached and used
    engine.packed_forwards = False
    padded = {i: layers for i, layers in engine._prefill_states(seqs)}
    assert packed.keys() == padded.keys() == set(range(len(seqs)))
    for i in packed:
        for mine, theirs in zip(packed[i], padded[i]):
            for a, b in ((torch.cat([k for k, _ in mine], 2), torch.cat([k for k, _ in theirs], 2)),
                         (torch.cat([v for _, v in mine], 2), torch.cat([v for _, v in theirs], 2))):
                assert a.shape == b.shape == (1, b.shape[1], len(seqs[i]), b.shape[3])
                torch.testing.assert_close(a, b, rtol=0, atol=1e-4)
    params = GenerationParams(max_new_tokens=10)
    plain = engine.generate(prompts, params)
    engine.packed_forwards = True
    assert engine.generate(prompts, params) == plain


def test_engine_with_eager_attention_does_not_pack(model_dirs):
    from jmedllm.engines.hf import HFEngine

    engine = HFEngine(model_dirs["llama"], dtype="float32", device="cpu", attn_implementation="eager")
    assert engine.packed_forwards is False and engine.describe()["packed_forwards"] is False


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_engine_scoring_packed_equals_padded(arch, model_dirs, raw_models, reference):
    """Log-likelihoods of requests after a shared header (cached, its state computed in one packed
    forward with another prefix), multi-token continuations, in several packs: the same as the
    padded rows' to 1e-5 and as each continuation's plain forward to 1e-4."""
    from jmedllm.engines.hf import HFEngine
    from jmedllm.schema import LoglikRequest

    engine = HFEngine(model_dirs[arch], dtype="float32", device="cpu", prefix_cache_min_tokens=4)
    header = "次の問題に答えよ。選択肢から一つ選べ。\n"
    other = "Answer the question with one letter.\n"
    requests = [LoglikRequest(header + p, ("a", " 肺炎です", " influenza B")) for p in PROMPTS]
    requests += [LoglikRequest(other + p, (" A", " B")) for p in PROMPTS[:3]] + [LoglikRequest(PROMPTS[2], ("x",))]
    engine.pack_tokens = 48  # several packs
    calls = hf_packed._calls.count
    packed = engine.loglikelihoods(requests)
    packs = (hf_packed._calls.count - calls) // engine._hf_model.config.num_hidden_layers
    assert packs > 2 and engine.prefix_cache.misses == 2  # both prefixes from one packed forward
    engine.packed_forwards = False
    engine.prefix_cache.clear()
    padded = engine.loglikelihoods(requests)
    tokenizer, model = raw_models[arch]
    for request, mine, theirs in zip(requests, packed, padded):
        assert [s.n_tokens for s in mine] == [s.n_tokens for s in theirs]
        assert [s.is_greedy for s in mine] == [s.is_greedy for s in theirs]
        assert [s.logprob for s in mine] == pytest.approx([s.logprob for s in theirs], abs=1e-5)
        for score, continuation in zip(mine, request.continuations):
            expected, _, _ = reference(tokenizer, model, request.context, continuation)
            assert score.logprob == pytest.approx(expected, abs=1e-4)


def test_index_trim_runs_the_mlp_on_named_columns_only():
    from jmedllm.engines.hf_trim import LastColumnsMLP

    mlp = torch.nn.Linear(3, 3)
    hidden = torch.randn(1, 5, 3)
    out = LastColumnsMLP(mlp, torch.tensor([1, 4]))(hidden)
    torch.testing.assert_close(out[:, [1, 4]], mlp(hidden[:, [1, 4]]))
    assert torch.equal(out[:, [0, 2, 3]], torch.zeros(1, 3, 3))
