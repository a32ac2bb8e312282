"""The prefix cache across questions: grouping by shared token prefix, and cached scores equal to uncached ones."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from jmedllm.engines.hf import HFEngine  # noqa: E402
from jmedllm.engines.prefix_cache import group_by_prefix, group_ids_for_generation, prefix_tree_mask  # noqa: E402
from jmedllm.engines.prefix_sharing import EncodedRequest  # noqa: E402
from jmedllm.evaluate import EvalConfig, prepare_items  # noqa: E402
from jmedllm.schema import LoglikRequest  # noqa: E402


def req(i: int, context: tuple[int, ...]) -> EncodedRequest:
    return EncodedRequest(i, context, ((7,), (8, 9)), (1, 2))


def test_groups_follow_the_shared_prefix():
    head = tuple(range(100, 120))  # 20 shared tokens
    a = [req(i, head + tuple(range(200, 230)) + (i,)) for i in range(3)]  # share 50 tokens
    b = [req(3 + i, head + (300 + i, 301, 302)) for i in range(2)]  # share only the 20-token head with a
    lone = req(5, (1, 2, 3, 4))
    groups = group_by_prefix(a + b + [lone], min_prefix=16)
    by_len = {len(g.prefix): sorted(r.index for r in g.requests) for g in groups}
    # sorted: lone, a0, a1, a2, b0, b1. a's three share 50 tokens (saving 2*50 = 100);
    # taking b0 in would cut the prefix to the 20-token head (3*20 = 60 < 100), so b starts
    # its own group, whose two requests share the head only (300 + i differ).
    assert by_len == {50: [0, 1, 2], 20: [3, 4], 0: [5]}  # the lone request: the plain way
    for g in groups:
        for r in g.requests:
            assert r.context[: len(g.prefix)] == g.prefix and len(r.context) > len(g.prefix)


def test_short_or_single_prefixes_are_not_cached():
    groups = group_by_prefix([req(0, (1, 2, 3, 4, 5)), req(1, (1, 2, 3, 4, 6))], min_prefix=16)
    assert [(g.prefix, len(g.requests)) for g in groups] == [((), 2)]
    assert group_by_prefix([req(0, tuple(range(40)))], min_prefix=16)[0].prefix == ()
    both = [req(0, tuple(range(40)) + (1,)), req(1, tuple(range(40)) + (2,))]
    assert [len(g.prefix) for g in group_by_prefix(both, min_prefix=0)] == [0]  # 0 switches it off
    assert [len(g.prefix) for g in group_by_prefix(both, min_prefix=16)] == [40]


def test_generation_merges_groups_when_decode_steps_cost_more_than_prefixes():
    head = tuple(range(100, 120))
    a = [head + tuple(range(200, 230)) + (i,) for i in range(3)]  # share 50 tokens
    b = [head + (300 + i, 301, 302) for i in range(2)]  # share the 20-token head with a
    # budget 0: the log-likelihood grouping (a on 50 tokens, b on the head)
    assert sorted((len(p), m) for p, m in group_ids_for_generation(a + b, 16, 0)) == [(20, [3, 4]), (50, [0, 1, 2])]
    # merging costs a's 3 members 30 tokens each: 90 prompt tokens
    def norm(groups):
        return sorted((p, sorted(m)) for p, m in groups)

    assert norm(group_ids_for_generation(a + b, 16, 89.9)) == norm(group_ids_for_generation(a + b, 16, 0))
    assert norm(group_ids_for_generation(a + b, 16, 90)) == [(head, [0, 1, 2, 3, 4])]
    # never on a common prefix under min_prefix, and prompts too short to cache stay plain
    lone = (1, 2, 3, 4)
    groups = group_ids_for_generation(a + b + [lone], 16, 1e9)
    assert sorted((len(p), sorted(m)) for p, m in groups) == [(0, [5]), (20, [0, 1, 2, 3, 4])]
    assert group_ids_for_generation(a, 0, 1e9) == [((), [0, 1, 2])]


def test_prefix_mask_opens_the_prefix_to_every_query():
    segments = torch.tensor([[-1, 0, 0, 1]])
    mask = prefix_tree_mask(segments, 3, torch.float32)
    assert mask.shape == (1, 1, 4, 7)
    assert (mask[0, 0, :, :3] == 0).all()
    allowed = mask[0, 0, :, 3:] == 0
    assert allowed.tolist() == [
        [True, False, False, False],  # padding attends to itself (and the prefix)
        [False, True, False, False],
        [False, True, True, False],
        [False, True, True, True],
    ]


def test_prefix_mask_per_row_masks_the_left_padding_of_a_shorter_prefix():
    segments = torch.tensor([[0, 1], [0, 1]])
    mask = prefix_tree_mask(segments, [3, 1], torch.float32)
    assert mask.shape == (2, 1, 2, 5)
    assert (mask[0, 0, :, :3] == 0).all()  # row 0: its 3-token prefix
    assert (mask[1, 0, :, :2] < -1e30).all() and (mask[1, 0, :, 2] == 0).all()  # row 1: 2 padded columns
    assert (mask[:, :, :, 3:] == prefix_tree_mask(segments, 0, torch.float32)).all()
    with pytest.raises(ValueError, match="1 prefix lengths for 2 rows"):
        prefix_tree_mask(segments, [3], torch.float32)


def test_stacked_prefix_states_are_left_padded_per_row():
    from jmedllm.engines.prefix_cache import PrefixKVCache, pack_after_prefix

    long = [(torch.full((1, 2, 3, 4), 1.0), torch.full((1, 2, 3, 4), 2.0))]
    short = [(torch.full((1, 2, 1, 4), 3.0), torch.full((1, 2, 1, 4), 4.0))]
    cache = PrefixKVCache.stack([long, short, None])
    keys, values = cache.layers[0].keys, cache.layers[0].values
    assert keys.shape == (3, 2, 3, 4)
    assert (keys[0] == 1).all() and (values[0] == 2).all()
    assert (keys[1, :, :2] == 0).all() and (keys[1, :, 2] == 3).all() and (values[1, :, 2] == 4).all()
    assert (keys[2] == 0).all()  # no prefix: all columns padding (masked)
    shared = PrefixKVCache.stack([long, long])  # one prefix for all rows: no padding
    assert shared.layers[0].keys.shape == (2, 2, 3, 4) and (shared.layers[0].keys == 1).all()
    # positions continue after each row's own prefix
    packed = pack_after_prefix([req(0, (5, 6, 7, 8)), req(1, (5, 9))], [3, 1], pad_id=0)
    # row 0: context token 8 at 3, then the second continuation's first token at 4
    assert packed.position_ids[0].tolist() == [3, 4]
    assert packed.position_ids[1].tolist() == [1, 2]  # row 1: token 9 at 1, continuation at 2


def test_rows_of_different_prefixes_share_a_forward(tiny_model_dir, data_root):
    """On CPU the cost plan puts rows of different prefix groups (and rows without a cached
    prefix) into one forward; scores equal the uncached path, and each prefix is computed once."""
    engine = HFEngine(tiny_model_dir, dtype="float32", device="cpu")
    plain = HFEngine(tiny_model_dir, dtype="float32", device="cpu", prefix_cache_min_tokens=0)
    assert engine.scoring_cost is not None and engine.max_padding_fraction is None
    engine.prefix_cache.max_entries = 1  # a call's prefixes must survive an LRU eviction
    cfg = EvalConfig(model=str(tiny_model_dir), benchmarks=["igakuqa:2022:text_only=true:n_choices=5:limit=30"],
                     mode="loglik", prompt="alpaca", out="-")
    items = prepare_items(cfg, data_root, None).items
    requests = [LoglikRequest(it.prompt, tuple(c for g in it.continuations for c in g)) for it in items]
    requests.append(LoglikRequest("短い", ("はい", "いいえ")))  # no prefix shared with anything
    mixed: list[set] = []
    real = engine._score_packed

    def spy(batch, states=()):
        mixed.append({id(s) for s in states})
        return real(batch, states)

    engine._score_packed = spy
    got = engine.loglikelihoods(requests)
    want = plain.loglikelihoods(requests)
    assert max(len(m) for m in mixed) >= 2  # some forward held rows of two prefix groups (or none)
    assert engine.prefix_cache.misses == len({g.prefix for g in group_by_prefix(
        [_enc(engine, i, r) for i, r in enumerate(requests)], engine.prefix_cache_min_tokens) if g.prefix})
    for row_got, row_want in zip(got, want):
        for g, w in zip(row_got, row_want):
            assert g.logprob == pytest.approx(w.logprob, abs=1e-4)


def _enc(engine, i, r):
    from jmedllm.engines.prefix_sharing import encode_request

    return encode_request(i, r.context, r.continuations, engine.encode, engine.max_length, engine._start_ids)


@pytest.fixture(scope="module")
def engine_pair(tiny_model_dir: Path):
    cached = HFEngine(tiny_model_dir, dtype="float32", device="cpu", max_padding_fraction=None, batch_size=4)
    plain = HFEngine(tiny_model_dir, dtype="float32", device="cpu", max_padding_fraction=None, batch_size=4,
                     prefix_cache_min_tokens=0)
    return cached, plain


@pytest.mark.parametrize("mode", ["loglik", "letter"])
@pytest.mark.parametrize("shots", [0, 3])
def test_cached_prefix_equals_uncached(mode, shots, engine_pair, tiny_model_dir, data_root):
    """Real IgakuQA prompts (0-shot: a shared header; 3-shot: shared exemplars too)."""
    cached, plain = engine_pair
    cfg = EvalConfig(model=str(tiny_model_dir), benchmarks=["igakuqa:2022:text_only=true:n_choices=5:limit=9"],
                     mode=mode, prompt="alpaca", out="-", shots=shots, shared_shots=True)
    items = prepare_items(cfg, data_root, None).items
    requests = [LoglikRequest(it.prompt, tuple(c for g in it.continuations for c in g)) for it in items]
    cached.prefix_cache.clear()
    hits, misses = cached.prefix_cache.hits, cached.prefix_cache.misses
    got = cached.loglikelihoods(requests)
    assert cached.prefix_cache.misses > misses  # a prefix was computed ...
    again = cached.loglikelihoods(requests)
    assert cached.prefix_cache.hits > hits  # ... and reused by the next call
    want = plain.loglikelihoods(requests)
    n = 0
    for row_got, row_again, row_want in zip(got, again, want):
        for g, a, w in zip(row_got, row_again, row_want):
            assert g.logprob == pytest.approx(w.logprob, abs=1e-4)
            assert a.logprob == pytest.approx(w.logprob, abs=1e-4)
            assert (g.n_tokens, g.n_chars, g.truncated_tokens) == (w.n_tokens, w.n_chars, w.truncated_tokens)
            n += 1
    assert n == sum(len(r.continuations) for r in requests)
    if shots:  # the shared prefix covers the exemplars, well beyond the header
        prompts = [r.context for r in requests]
        assert len(_common_prefix(prompts)) > 200


def _common_prefix(texts: list[str]) -> str:
    import os

    return os.path.commonprefix(texts)


@pytest.mark.parametrize("shots", [0, 3])
def test_cached_prefix_generation_equals_uncached(shots, engine_pair, tiny_model_dir, data_root):
    from jmedllm.schema import GenerationParams

    cached, plain = engine_pair
    cfg = EvalConfig(model=str(tiny_model_dir), benchmarks=["igakuqa:2022:text_only=true:n_choices=5:limit=6"],
                     mode="generate", prompt="alpaca", out="-", shots=shots, shared_shots=True)
    prompts = [it.prompt for it in prepare_items(cfg, data_root, None).items]
    params = GenerationParams(max_new_tokens=8, stop=("\n\n###",))
    cached.prefix_cache.clear()
    misses = cached.prefix_cache.misses
    got = cached.generate(prompts, params)
    assert cached.prefix_cache.misses == misses + 1  # one shared prefix for the six prompts
    want = plain.generate(prompts, params)
    assert [(c.text, c.n_prompt_tokens, c.n_completion_tokens, c.finish_reason) for c in got] == [
        (c.text, c.n_prompt_tokens, c.n_completion_tokens, c.finish_reason) for c in want
    ]


@pytest.mark.parametrize("shots", [0, 3])
def test_static_generation_cache_equals_the_dynamic_one(shots, engine_pair, tiny_model_dir, data_root,
                                                      batch_sizes):
    from jmedllm.schema import GenerationParams

    static, _ = engine_pair
    assert static.static_generation_cache  # the CPU default
    dynamic = HFEngine(tiny_model_dir, dtype="float32", device="cpu", max_padding_fraction=None, batch_size=4,
                       static_generation_cache=False)
    cfg = EvalConfig(model=str(tiny_model_dir), benchmarks=["igakuqa:2022:text_only=true:n_choices=5:limit=6"],
                     mode="generate", prompt="alpaca", out="-", shots=shots, shared_shots=True)
    prompts = [it.prompt for it in prepare_items(cfg, data_root, None).items]
    # the CPU path prefills every prompt but its last token apart from decoding: prompts of one
    # token (nothing to prefill), without a shared prefix, and of every length share decode batches
    prompts += ["患", "治療として最も適切なのはどれか。", prompts[0][:40]]
    params = GenerationParams(max_new_tokens=8, stop=("\n\n###",))
    sizes = batch_sizes(static)
    got = static.generate(prompts, params)
    assert sizes and sum(sizes) == len(prompts)
    assert len(static.encode("患")) == 1
    assert got == dynamic.generate(prompts, params)
