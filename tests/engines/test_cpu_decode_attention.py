"""The CPU decode attention kernel (engines/cpu_decode_attention.py): against attention computed
by hand in float64, against SDPA, its refusals, its build and fallback, and the engine's texts."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

from jmedllm.engines import cpu_decode_attention, hf_decode_groups  # noqa: E402
from jmedllm.schema import GenerationParams  # noqa: E402
from sample_prompts import PROMPTS  # noqa: E402


def _can_build() -> bool:
    """Where the kernel must be available: Linux x86-64 with AVX2 / FMA and a C compiler."""
    return (platform.system() == "Linux" and platform.machine() == "x86_64"
            and {"avx2", "fma"} <= cpu_decode_attention._cpu_flags() and cpu_decode_attention._compiler() is not None)


@pytest.fixture(scope="module")
def kernel():
    k = cpu_decode_attention.load()
    if k is None:
        if _can_build():
            pytest.fail(f"the kernel should build here: {cpu_decode_attention.unavailable_reason()}")
        pytest.skip(f"no CPU decode attention kernel here: {cpu_decode_attention.unavailable_reason()}")
    return k


def by_hand(q, k, v, starts, scale):
    """Attention of one query per row over columns starts[b]: in float64, heads shared by groups."""
    b, h, _, d = q.shape
    group = h // k.shape[1]
    out = torch.empty(b, 1, h, d, dtype=torch.float64)
    for row in range(b):
        for head in range(h):
            keys = k[row, head // group, starts[row]:].double()
            values = v[row, head // group, starts[row]:].double()
            scores = keys @ q[row, head, 0].double() * scale
            weights = torch.exp(scores - scores.max())
            out[row, 0, head] = (weights / weights.sum()) @ values
    return out


@pytest.mark.parametrize("b, h, hk, d, length", [
    (5, 12, 12, 64, 41),   # the bench model's heads; a length not a multiple of the kernel's 4 keys
    (4, 8, 2, 128, 33),    # grouped-query attention, a 7B model's head size
    (3, 4, 4, 8, 7),       # the smallest head size
    (2, 6, 3, 24, 9),      # a head size not a multiple of 16
    (3, 2, 1, 256, 5),     # the largest head size
])
def test_kernel_equals_attention_by_hand_and_sdpa(kernel, b, h, hk, d, length):
    gen = torch.Generator().manual_seed(b * 1000 + d)
    q = torch.randn(b, h, 1, d, generator=gen)
    k = torch.randn(b, hk, length, d, generator=gen)
    v = torch.randn(b, hk, length, d, generator=gen)
    starts = torch.tensor([0, length - 1, length // 2, 3, 1][:b])  # one row reads a single column
    out = kernel(q, k, v, starts, 0.3)
    assert out.shape == (b, 1, h, d) and out.dtype == torch.float32
    assert torch.allclose(out.double(), by_hand(q, k, v, starts, 0.3), atol=2e-6, rtol=1e-5)
    mask = (torch.arange(length)[None, :] >= starts[:, None])[:, None, None, :]
    sdpa = torch.nn.functional.scaled_dot_product_attention(
        q, k.repeat_interleave(h // hk, 1), v.repeat_interleave(h // hk, 1), attn_mask=mask, scale=0.3)
    assert torch.allclose(out, sdpa.transpose(1, 2), atol=2e-6, rtol=1e-5)


def test_kernel_keeps_large_scores_finite_and_reads_strided_views(kernel):
    """Scores in the hundreds (a new maximum late in the row rescales the running sums); queries,
    keys and values as views of larger storage (a static cache's filled columns, a transposed
    projection)."""
    gen = torch.Generator().manual_seed(7)
    storage = torch.randn(3, 4, 50, 64, generator=gen)
    k, v = storage[:, :, :37], (storage * 0.5)[:, :, :37]
    q = (torch.randn(3, 1, 4, 64, generator=gen) * 40).transpose(1, 2)  # (B, H, 1, D), not contiguous
    k[:, :, 30] *= 5  # the largest scores come late
    starts = torch.tensor([0, 10, 36])
    out = kernel(q, k, v, starts, 64 ** -0.5)
    assert torch.isfinite(out).all()
    assert torch.allclose(out.double(), by_hand(q, k, v, starts, 64 ** -0.5), atol=1e-5, rtol=1e-5)


def test_kernel_refuses_what_it_does_not_take(kernel):
    q, k = torch.zeros(2, 4, 1, 64), torch.zeros(2, 4, 9, 64)
    assert kernel.supports(q, k, k)
    assert not kernel.supports(q.double(), k.double(), k.double())
    assert not kernel.supports(torch.zeros(2, 4, 2, 64), k, k)  # two queries per row
    assert not kernel.supports(torch.zeros(2, 4, 1, 12), torch.zeros(2, 4, 9, 12), torch.zeros(2, 4, 9, 12))
    assert not kernel.supports(torch.zeros(2, 4, 1, 264), torch.zeros(2, 4, 9, 264), torch.zeros(2, 4, 9, 264))
    assert not kernel.supports(q, torch.zeros(2, 3, 9, 64), torch.zeros(2, 3, 9, 64))  # 4 heads over 3
    assert not kernel.supports(q, k.transpose(2, 3).contiguous().transpose(2, 3), k)  # positions not contiguous
    with pytest.raises(ValueError, match="starts"):
        kernel(q, k, k, torch.tensor([0, 9]), 1.0)  # a row with no column to read
    with pytest.raises(ValueError, match="starts"):
        kernel(q, k, k, torch.tensor([0]), 1.0)
    with pytest.raises(ValueError, match="unsupported"):
        kernel(q.double(), k.double(), k.double(), torch.tensor([0, 0]), 1.0)


def test_row_groups_with_the_kernel_need_one_group_per_row(raw_models, kernel):
    _, model = raw_models["llama"]
    with pytest.raises(ValueError, match="one group per row"):
        with hf_decode_groups.decode_row_groups(model, [(0, 2, 0)], kernel):
            pass
    assert hf_decode_groups.per_row_groups([6, 5, 2], 6) == [(0, 1, 0), (1, 2, 1), (2, 3, 4)]


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_engine_generates_the_same_text_with_the_kernel(arch, model_dirs, kernel):
    """Greedy completions through the kernel equal those of SDPA per row group, of padded
    attention without groups, and of each prompt alone; the engine checked the kernel on the
    model and records it."""
    from jmedllm.engines.hf import HFEngine

    engine = HFEngine(model_dirs[arch], dtype="float32", device="cpu", prefix_cache_min_tokens=0)
    assert engine.decode_attention_kernel is True and engine.describe()["decode_attention_kernel"] is True
    params = GenerationParams(max_new_tokens=12)
    calls = hf_decode_groups._calls.kernel
    with_kernel = engine.generate(PROMPTS, params)
    assert hf_decode_groups._calls.kernel > calls
    engine.decode_attention_kernel = False
    by_groups = engine.generate(PROMPTS, params)
    engine.decode_by_row_groups = False
    padded = engine.generate(PROMPTS, params)
    assert with_kernel == by_groups == padded
    engine.decode_by_row_groups = engine.decode_attention_kernel = True
    assert [engine.generate([p], params)[0] for p in PROMPTS] == with_kernel


def test_engine_in_bfloat16_keeps_sdpa(model_dirs):
    from jmedllm.engines.hf import HFEngine

    engine = HFEngine(model_dirs["llama"], dtype="bfloat16", device="cpu")
    assert engine.decode_attention_kernel is False and engine.decode_kernel is None


SCRIPT = textwrap.dedent("""
    import json, sys
    from jmedllm.engines import cpu_decode_attention as c
    from jmedllm.engines.hf import HFEngine
    from jmedllm.schema import GenerationParams
    kernel = c.load()
    engine = HFEngine(sys.argv[1], dtype="float32", device="cpu")
    text = engine.generate(["患者は"], GenerationParams(max_new_tokens=4))[0].text
    print(json.dumps({"loaded": kernel is not None, "reason": c.unavailable_reason(),
                      "engine": engine.decode_attention_kernel, "text": text,
                      "described": engine.describe()["decode_attention_kernel_unavailable"]}))
""")


def _run(model_dir, env):
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(model_dir)], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    import json

    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_failing_compiler_leaves_sdpa_and_a_built_kernel_is_reused(tmp_path, model_dirs, kernel):
    """A fresh process whose compiler fails: no kernel, the reason names the compiler, the engine
    decodes by SDPA with the same text. Then a working build lands in the cache once and the next
    process loads it without building."""
    failing = tmp_path / "failing-cc"
    failing.write_text("#!/bin/sh\necho 'cc: no such luck' >&2\nexit 1\n")
    failing.chmod(0o755)
    cache = tmp_path / "cache"
    broken = _run(model_dirs["llama"], {"CC": str(failing), "JMEDLLM_CACHE": str(cache)})
    assert broken["loaded"] is False and broken["engine"] is False
    assert "failing-cc" in broken["reason"] and "no such luck" in broken["reason"]
    assert broken["described"] == broken["reason"]  # the run record says why
    assert not list(cache.glob("kernels/*.so"))

    first = _run(model_dirs["llama"], {"JMEDLLM_CACHE": str(cache)})
    assert first["loaded"] is True and first["engine"] is True and first["text"] == broken["text"]
    assert first["described"] is None
    (built,) = cache.glob("kernels/*.so")
    stamp = built.stat().st_mtime_ns
    second = _run(model_dirs["llama"], {"JMEDLLM_CACHE": str(cache)})
    assert second == first and built.stat().st_mtime_ns == stamp
    assert [p.name for p in (cache / "kernels").iterdir()] == [built.name]  # no build leftovers


def test_kernel_runs_only_where_the_mask_is_each_rows_columns(raw_models, kernel):
    """The kernel reads columns starts[b] to the end and applies no mask, so it runs only where
    the step's mask says exactly that; a mask that also hides a column inside a row's range (a
    window, a chunk) goes to SDPA with the mask, and the result follows the mask."""
    from jmedllm.engines.hf_decode_groups import mask_is_starts, row_group_attention

    _, model = raw_models["llama"]
    attention = model.model.layers[0].self_attn
    config = model.config
    h, hk = config.num_attention_heads, config.num_key_value_heads
    d = getattr(config, "head_dim", None) or config.hidden_size // h
    gen = torch.Generator().manual_seed(3)
    q = torch.randn(2, h, 1, d, generator=gen)
    k, v = torch.randn(2, hk, 6, d, generator=gen), torch.randn(2, hk, 6, d, generator=gen)
    groups = hf_decode_groups.per_row_groups([6, 3], 6)
    starts = torch.tensor([0, 3])
    exact = (torch.arange(6)[None, :] >= starts[:, None])[:, None, None, :]
    holed = exact.clone()
    holed[0, 0, 0, 2] = False
    assert mask_is_starts(exact, starts, 6) and not mask_is_starts(holed, starts, 6)
    assert mask_is_starts(torch.zeros(2, 1, 1, 6).masked_fill(~exact, float("-inf")), starts, 6)
    assert mask_is_starts(None, torch.tensor([0, 0]), 6) and not mask_is_starts(None, starts, 6)
    assert not mask_is_starts(exact[..., :5], starts, 6)
    token = hf_decode_groups._GROUPS.set((tuple(groups), kernel, starts))
    try:
        for mask in (exact, holed):
            before = hf_decode_groups._calls.kernel
            out, _ = row_group_attention(attention, q, k, v, mask, scaling=attention.scaling, dropout=0.0)
            assert (hf_decode_groups._calls.kernel > before) == (mask is exact)
            sdpa = torch.nn.functional.scaled_dot_product_attention(
                q, k.repeat_interleave(h // hk, 1), v.repeat_interleave(h // hk, 1), attn_mask=mask,
                scale=attention.scaling)
            assert torch.allclose(out, sdpa.transpose(1, 2), atol=2e-6)
    finally:
        hf_decode_groups._GROUPS.reset(token)
