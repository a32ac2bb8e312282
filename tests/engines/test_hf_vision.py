"""The HF engine on vision-language models built offline at random: a tiny LLaVA (CLIP vision
tower, projector, the tiny Llama) and a tiny Gemma 3 (SigLIP tower, a Gemma 3 text model with a
16-token sliding window), loaded through AutoProcessor / AutoModelForImageTextToText as hub
models are.

Image items are scored and generated with the images fed to the model, and agree with a plain
forward / generate of the raw transformers model on the processor's inputs; text items of the
same engine agree with the plain forward too. Through the runner: letter and generate runs over
real IgakuQA questions with figures attached, the summary's text-only vs with-image scores.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("PIL")

import jmedllm.benchmarks as benchmarks  # noqa: E402
from jmedllm.engines.base import EngineError  # noqa: E402
from jmedllm.engines.hf import HFEngine  # noqa: E402
from jmedllm.engines.messages import with_images  # noqa: E402
from jmedllm.evaluate import EvalConfig, run_eval  # noqa: E402
from jmedllm.schema import GenerationParams, LoglikRequest  # noqa: E402
from jmedllm.tiny import VISION_MARKERS  # noqa: E402

CONTEXT = "45歳の男性。胸部エックス線写真を別に示す。最も考えられる診断はどれか。\na. 肺炎\nb. 気胸\nc. 心不全\n答え："


@pytest.fixture(scope="module", params=["llava", "gemma3"])
def arch(request):
    return request.param


@pytest.fixture(scope="module")
def model_dir(arch, request):
    return request.getfixturevalue({"llava": "tiny_vlm_dir", "gemma3": "tiny_gemma3_dir"}[arch])


@pytest.fixture(scope="module")
def vlm(model_dir):
    return HFEngine(model_dir, device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def llava(tiny_vlm_dir):
    return HFEngine(tiny_vlm_dir, device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def raw(model_dir):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    return (AutoProcessor.from_pretrained(model_dir),
            AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).eval())


def plain_inputs(processor, text, paths):
    from PIL import Image

    imgs = [Image.open(p).convert("RGB") for p in paths]
    return processor(text=[text], images=imgs or None, return_tensors="pt", add_special_tokens=False)


def plain_score(raw, text, paths, n_cont):
    """Sum of log p over the last n_cont tokens of one full forward (prompt + continuation)."""
    processor, model = raw
    inputs = plain_inputs(processor, text, paths)
    with torch.no_grad():
        logprobs = torch.log_softmax(model(**inputs).logits[0].float(), dim=-1)
    ids = inputs["input_ids"][0]
    n = len(ids)
    return sum(logprobs[p - 1, ids[p]].item() for p in range(n - n_cont, n))


def test_loaded_as_a_vision_language_model(vlm, arch, tiny_model_dir):
    assert vlm.supports.images and not vlm.supports.chat
    name = {"llava": "Llava", "gemma3": "Gemma3"}[arch]
    assert vlm.describe()["processor"] == f"{name}Processor"
    assert vlm.describe()["architectures"] == [f"{name}ForConditionalGeneration"]
    assert vlm._sliding_window == {"llava": None, "gemma3": 16}[arch]  # read from the text config
    assert not HFEngine(tiny_model_dir, device="cpu", dtype="float32").supports.images


def test_image_loglik_equals_plain_forward_and_depends_on_the_image(vlm, arch, raw, images):
    """Also text items of the same engine (batched, prefix-shared; for Gemma 3 longer than its
    sliding window) equal the plain forward."""
    conts = ("a", "b", "c", "気胸", " 心不全")
    requests = [LoglikRequest(with_images(CONTEXT, [images[0]]), conts),
                LoglikRequest(with_images(CONTEXT, [images[1]]), conts),
                LoglikRequest(with_images(CONTEXT, [images[2], images[3]]), conts),
                LoglikRequest(CONTEXT, conts)]
    got = vlm.loglikelihoods(requests)
    for r, scores in zip(requests, got):
        parts = [] if isinstance(r.context, str) else r.context[0]["content"]
        paths = [p["path"] for p in parts if p["type"] == "image"]
        text = "".join(VISION_MARKERS[arch] for _ in paths) + ("\n" if paths else "") + CONTEXT
        for cont, s in zip(conts, scores):
            assert s.logprob == pytest.approx(plain_score(raw, text + cont, paths, s.n_tokens), abs=1e-4)
    assert got[0][0].n_tokens == 1 and any(s.n_tokens > 1 for s in got[0])  # both scoring paths ran
    # the image reaches the model: another figure, other scores; no figure, others again
    assert all(abs(a.logprob - b.logprob) > 1e-4 for a, b in zip(got[0], got[1]))
    assert all(abs(a.logprob - b.logprob) > 1e-4 for a, b in zip(got[0], got[3]))


def test_generate_with_image_equals_plain_generate(vlm, arch, raw, images):
    processor, model = raw
    prompt = with_images(CONTEXT, [images[2]])
    got = vlm.generate([CONTEXT, prompt], GenerationParams(max_new_tokens=6))
    inputs = plain_inputs(processor, VISION_MARKERS[arch] + "\n" + CONTEXT, [images[2]])
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    new = out[0, inputs["input_ids"].shape[1]:].tolist()
    assert got[1].text == processor.tokenizer.decode(new, skip_special_tokens=False)
    assert got[1].n_prompt_tokens == inputs["input_ids"].shape[1]
    assert got[0].n_prompt_tokens < got[1].n_prompt_tokens  # the image's tokens count as prompt
    text_inputs = plain_inputs(processor, CONTEXT, [])
    with torch.no_grad():
        out = model.generate(**text_inputs, max_new_tokens=6, do_sample=False)
    assert got[0].text == processor.tokenizer.decode(out[0, text_inputs["input_ids"].shape[1]:].tolist(),
                                                     skip_special_tokens=False)


def test_chat_template_places_images_in_the_user_turn(vlm, arch, images):
    text = vlm.format_chat(with_images([{"role": "user", "content": "所見は？"}], [images[0]]))
    assert text == f"<|im_start|>user\n所見は？{VISION_MARKERS[arch]}<|im_end|>\n<|im_start|>assistant\n"


def test_unreadable_image_and_text_only_model_are_clear_errors(llava, tiny_model_dir, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(EngineError, match="broken.png: cannot read image"):
        llava.generate([with_images(CONTEXT, [bad])], GenerationParams(max_new_tokens=2))
    text_only = HFEngine(tiny_model_dir, device="cpu", dtype="float32")
    with pytest.raises(EngineError, match="text-only"):
        text_only.loglikelihoods([LoglikRequest(with_images(CONTEXT, [bad]), ("a",))])


@pytest.fixture
def figures(monkeypatch, images):
    """IgakuQA 2022 A with a figure attached to every third item (a different file each time)."""
    real = benchmarks.load_benchmark

    def load(spec, root=None, **kw):
        bench = real(spec, root, **kw)
        qs = tuple(dataclasses.replace(q, images=(str(images[(i // 3) % len(images)]),)) if i % 3 == 0 else q
                   for i, q in enumerate(bench.questions))
        return dataclasses.replace(bench, questions=qs)

    monkeypatch.setattr(benchmarks, "load_benchmark", load)


@pytest.mark.parametrize("mode,prompt", [("letter", "alpaca"), ("generate", "chat"), ("letter", "chat")])
def test_runner_feeds_images_and_splits_the_summary(llava, tmp_path, data_root, figures, mode, prompt):
    cfg = EvalConfig(model="tiny-vlm", benchmarks=["igakuqa:2022:A"], out=str(tmp_path / "run"), mode=mode,
                     prompt=prompt, data_root=str(data_root), limit=6, chunk_size=4, bootstrap=50, max_new_tokens=4)
    out = run_eval(cfg, engine=llava)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["skipped"]["image"]["count"] == 0
    assert summary["images"]["with_image"]["n"] == 2 and summary["images"]["text_only"]["n"] == 4
    assert "text-only vs with-image items" in (out / "summary.md").read_text()
    items = [json.loads(x) for x in (out / "items.jsonl").read_text().splitlines()]
    asked = [r for r in items if not isinstance(r["prompt"], str)]
    assert [r["id"] for r in asked] == ["116A1", "116A4"]
    text = asked[0]["prompt"][0]["content"][0]["text"]
    if prompt == "chat":  # rendered by the processor's template: the figure sits in the user turn
        user_turn = text.split("<|im_start|>user\n")[1].split("<|im_end|>")[0]
        assert text.count("<image>") == 1 and user_turn.endswith("<image>")
        if mode == "letter":  # then the answer header, after which the labels are scored
            assert text.endswith("<|im_start|>assistant\n答え：")
    else:  # a text family: the prompt as without the figure; the engine puts it in front
        assert "<image>" not in text and not text.startswith("<|im_start|>")
    assert asked[0]["prompt"][0]["content"][1]["type"] == "image"
    if mode == "letter":
        assert all(len(r["scores"]) == 5 for r in asked)


def test_text_only_model_skips_and_counts_image_items(tiny_model_dir, tmp_path, data_root, figures):
    engine = HFEngine(tiny_model_dir, device="cpu", dtype="float32")
    cfg = EvalConfig(model="tiny", benchmarks=["igakuqa:2022:A"], out=str(tmp_path / "run"), mode="letter",
                     data_root=str(data_root), limit=9, bootstrap=50)
    summary = json.loads((run_eval(cfg, engine=engine) / "summary.json").read_text())
    assert summary["run"]["skipped"]["image"]["count"] == 3 and summary["overall"]["n"] == 6
    assert "images" not in summary
