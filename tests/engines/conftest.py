"""Fixtures for engine tests: engines on the tiny real models and an independent reference scorer.

The reference scores a continuation the plainest way: one unpadded sequence
(context + continuation) through the raw transformers model, summing log_softmax at the
continuation's positions. Engines must agree with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


def lm_eval_split(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Context / continuation ids the lm-evaluation-harness way (the tiny tokenizers add no BOS)."""
    n = len(context) - len(context.rstrip())
    if n:
        context, continuation = context[:-n], context[-n:] + continuation
    ctx = tokenizer(context, add_special_tokens=False).input_ids
    whole = tokenizer(context + continuation, add_special_tokens=False).input_ids
    return ctx, whole[len(ctx):]


def sequence_logprob(model, ctx: list[int], cont: list[int]) -> tuple[float, bool]:
    """Sum of log p(cont | ctx) and whether every token is the argmax, from one plain forward pass."""
    ids = torch.tensor([ctx + cont])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    positions = range(len(ctx) - 1, len(ctx) + len(cont) - 1)  # position p predicts token p + 1
    total = sum(logprobs[p, t].item() for p, t in zip(positions, cont))
    greedy = all(logits[p].argmax().item() == t for p, t in zip(positions, cont))
    return total, greedy


@pytest.fixture(scope="session")
def unreachable_attention(raw_models) -> dict[str, object]:
    """Copies of the tiny Llama whose attention a scope switching ``config._attn_implementation``
    does not reach, or reaches wrongly: eager attention, and layers reading a config of their own."""
    import copy

    _, model = raw_models["llama"]
    eager = copy.deepcopy(model)
    eager.config._attn_implementation = "eager"
    detached = copy.deepcopy(model)
    for layer in detached.model.layers:
        layer.self_attn.config = copy.deepcopy(detached.config)
    return {"eager": eager, "detached": detached}


@pytest.fixture(scope="session")
def raw_models(tiny_model_dir: Path, tiny_qwen2_dir: Path):
    """(tokenizer, model) loaded directly with transformers, independent of the engine."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = {}
    for name, d in (("llama", tiny_model_dir), ("qwen2", tiny_qwen2_dir)):
        model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
        out[name] = (AutoTokenizer.from_pretrained(d), model)
    return out


@pytest.fixture(scope="session")
def model_dirs(tiny_model_dir: Path, tiny_qwen2_dir: Path) -> dict[str, Path]:
    return {"llama": tiny_model_dir, "qwen2": tiny_qwen2_dir}


@pytest.fixture(scope="session")
def engines(model_dirs):
    """One float32 CPU HFEngine per tiny architecture, shared by read-only tests.

    Padding limits are off, so that requests of different lengths share padded batches
    and the tests exercise padding.
    """
    from jmedllm.engines import load_engine

    return {
        name: load_engine("hf", model=str(d), dtype="float32", device="cpu", max_padding_fraction=None)
        for name, d in model_dirs.items()
    }


@pytest.fixture(scope="session")
def reference() -> Callable:
    """reference(tokenizer, model, context, continuation) -> (logprob, is_greedy, n_tokens)."""

    def score(tokenizer, model, context: str, continuation: str):
        ctx, cont = lm_eval_split(tokenizer, context, continuation)
        lp, greedy = sequence_logprob(model, ctx, cont)
        return lp, greedy, len(cont)

    return score


@pytest.fixture(scope="session")
def tiny_sp_dir(tmp_path_factory, data_root) -> Path:
    """A tiny Llama with a SentencePiece tokenizer (tokenizer.model): what llama.cpp's converter reads."""
    pytest.importorskip("sentencepiece")
    pytest.importorskip("google.protobuf")
    from jmedllm.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-sp"), data_root, "test-sp")


@pytest.fixture(scope="session")
def tiny_sp_gguf(tmp_path_factory, tiny_sp_dir) -> Path:
    """That model exported to GGUF f32 through `jmedllm export gguf` (llama.cpp's own converter)."""
    pytest.importorskip("llama_cpp")
    from jmedllm.export import export_gguf

    return export_gguf(tiny_sp_dir, tmp_path_factory.mktemp("gguf") / "tiny-sp-f32.gguf", outtype="f32")


@pytest.fixture(scope="session")
def tiny_vlm_dir(tmp_path_factory, data_root) -> Path:
    """A tiny random LLaVA (CLIP vision tower + the tiny Llama) with its processor, built offline."""
    pytest.importorskip("PIL")
    from jmedllm.tiny import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm"), data_root)


@pytest.fixture(scope="session")
def tiny_gemma3_dir(tmp_path_factory, data_root) -> Path:
    """A tiny random Gemma 3 (SigLIP tower + a Gemma 3 text model with a 16-token sliding window)."""
    pytest.importorskip("PIL")
    from jmedllm.tiny import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-gemma3"), data_root, arch="gemma3")


@pytest.fixture(scope="session")
def images(tmp_path_factory) -> list[Path]:
    """Four small images of different sizes and content (PNG and JPEG), as exam figures come."""
    from PIL import Image, ImageDraw

    folder = tmp_path_factory.mktemp("images")
    out = []
    for i, (size, colour, suffix) in enumerate([((40, 30), (200, 10, 10), "png"), ((30, 30), (10, 10, 200), "png"),
                                                 ((64, 48), (20, 160, 20), "jpg"), ((28, 56), (240, 240, 240), "png")]):
        img = Image.new("RGB", size, colour)
        ImageDraw.Draw(img).ellipse((2, 2, size[0] // 2, size[1] // 2), fill=(255 - colour[0], 0, i * 60))
        path = folder / f"figure{i}.{suffix}"
        img.save(path)
        out.append(path)
    return out


@pytest.fixture
def batch_sizes():
    """spy(engine, name="_generate_ragged") -> list: from then on, the size of every batch the
    engine's method ``name`` is called with (the real method still runs); undone after the test."""
    spied: list[tuple[object, str]] = []

    def spy(engine, name: str = "_generate_ragged") -> list[int]:
        sizes: list[int] = []
        real = getattr(engine, name)

        def counting(batch, params, *rest):
            sizes.append(len(batch))
            return real(batch, params, *rest)

        setattr(engine, name, counting)
        spied.append((engine, name))
        return sizes

    yield spy
    for engine, name in spied:
        vars(engine).pop(name, None)
