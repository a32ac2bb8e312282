"""HFEngine.loglikelihoods on tiny real Llama and Qwen2 models, against plain forward passes."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from jmedllm.engines import load_engine  # noqa: E402
from jmedllm.engines.hf import HFEngine  # noqa: E402
from jmedllm.schema import LoglikRequest  # noqa: E402

from conftest import lm_eval_split, sequence_logprob  # noqa: E402

ARCHS = ["llama", "qwen2"]

# Requests of different lengths: multi-token choices, single-token letters, whitespace at
# the end of a context, English and Japanese.
REQUESTS = [
    LoglikRequest(
        "45歳の男性。発熱と咳嗽を主訴に来院した。最も考えられる診断はどれか。\n答え：",
        ("肺炎", "気管支喘息", "急性上気道炎", "肺結核", "心不全"),
    ),
    LoglikRequest("正しいのはどれか。答え：", ("a", "b", "c", "d", "e", "ａ", "ｂ")),
    LoglikRequest(
        "A 30-year-old woman presents with fatigue and pallor. Which is the most likely diagnosis? Answer: ",
        ("Iron deficiency anemia", "B12 deficiency", "Thalassemia"),
    ),
    LoglikRequest("Q: 2+2? A:", (" 4", " four")),
]


@pytest.mark.parametrize("arch", ARCHS)
def test_shared_prefix_equals_plain_forward(arch, engines, raw_models, reference):
    engine = engines[arch]
    tokenizer, model = raw_models[arch]
    assert engine.loglik_strategy == "shared_prefix"
    engine.stats.reset()
    scores = engine.loglikelihoods(REQUESTS)
    assert engine.stats.forward_passes == 1  # four requests, one batch
    assert [len(s) for s in scores] == [len(r.continuations) for r in REQUESTS]
    n_multi = 0
    for request, row in zip(REQUESTS, scores):
        for cont, got in zip(request.continuations, row):
            lp, greedy, n_tokens = reference(tokenizer, model, request.context, cont)
            assert got.logprob == pytest.approx(lp, abs=1e-4), (request.context[-10:], cont)
            assert got.n_tokens == n_tokens
            assert got.n_chars == len(cont)
            assert got.is_greedy == greedy
            assert got.truncated_tokens == 0
            n_multi += n_tokens > 1
    assert n_multi >= 5  # the comparison covers multi-token continuations, not only letters


@pytest.mark.parametrize("arch", ARCHS)
def test_per_sequence_strategy_agrees(arch, model_dirs, engines):
    classic = HFEngine(model_dirs[arch], dtype="float32", device="cpu", loglik_strategy="per_sequence", batch_size=3,
                     max_padding_fraction=None)
    shared = engines[arch].loglikelihoods(REQUESTS)
    plain = classic.loglikelihoods(REQUESTS)
    for a_row, b_row in zip(shared, plain):
        for a, b in zip(a_row, b_row):
            assert a.logprob == pytest.approx(b.logprob, abs=1e-4)
            assert (a.n_tokens, a.n_chars, a.is_greedy) == (b.n_tokens, b.n_chars, b.is_greedy)
    # 5 + 7 + 3 + 2 = 17 continuations in rows of 3 -> ceil(17 / 3) = 6 forward passes
    assert classic.stats.forward_passes == 6


def test_letter_mode_costs_one_context_per_question(engines):
    engine = engines["llama"]
    letters = ("a", "b", "c", "d", "e", "ａ", "ｃ", "ｅ")  # single tokens for the tiny tokenizer
    requests = [LoglikRequest(f"問題{i}。正しいのはどれか。" + "説明" * i + "答え：", letters) for i in range(3)]
    contexts = [engine.encode(r.context) for r in requests]
    engine.stats.reset()
    scores = engine.loglikelihoods(requests)
    assert all(s.n_tokens == 1 for row in scores for s in row), "letters must be single tokens here"
    # one forward pass for the three questions, and only the context tokens as input
    assert engine.stats.forward_passes == 1
    assert engine.stats.tokens == sum(len(c) for c in contexts)
    # and one logit position per question (its last context token), not one per letter
    assert engine.stats.logit_positions == 3 * 1


def _greedy_case(tokenizer, model):
    """A context and the 2-token greedy continuation of it that survives decode/encode."""
    for context in ("患者は", "The patient", "診断は", "治療として", "Answer:", "症状は"):
        ctx = tokenizer(context, add_special_tokens=False).input_ids
        ids = list(ctx)
        for _ in range(2):
            with torch.no_grad():
                ids.append(int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax()))
        text = tokenizer.decode(ids[len(ctx):])
        if lm_eval_split(tokenizer, context, text) == (ctx, ids[len(ctx):]) and not text[:1].isspace():
            return context, text, ids[len(ctx):]
    pytest.fail("no context with a round-tripping greedy continuation")


@pytest.mark.parametrize("arch", ARCHS)
def test_is_greedy_on_a_constructed_case(arch, engines, raw_models):
    tokenizer, model = raw_models[arch]
    context, greedy_text, greedy_ids = _greedy_case(tokenizer, model)
    # the first greedy token followed by a token that is not the argmax
    ctx = tokenizer(context, add_special_tokens=False).input_ids
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ctx + greedy_ids[:1]])).logits[0, -1]
    worst = int(logits.argmin())
    half_text = tokenizer.decode([greedy_ids[0], worst])
    [[full, half]] = engines[arch].loglikelihoods([LoglikRequest(context, (greedy_text, half_text))])
    assert full.is_greedy and full.n_tokens == 2
    if lm_eval_split(tokenizer, context, half_text)[1] == [greedy_ids[0], worst]:
        assert not half.is_greedy
    assert full.logprob > half.logprob


def test_context_truncated_from_the_left_and_reported(model_dirs, raw_models):
    tokenizer, model = raw_models["llama"]
    engine = HFEngine(model_dirs["llama"], dtype="float32", device="cpu", max_length=16)
    context = "発熱と咳嗽を主訴に来院した患者の胸部エックス線写真で浸潤影を認めた。血液検査では白血球数の増加を認める。最も考えられる診断は"
    ctx, cont = lm_eval_split(tokenizer, context, "肺炎")
    assert len(ctx) > 16
    # the input is context + all continuation tokens but the last: it must fit in 16, so
    # the context keeps 16 - (len(cont) - 1) tokens and loses the rest from the left
    kept = 16 - (len(cont) - 1)
    [[score]] = engine.loglikelihoods([LoglikRequest(context, ("肺炎",))])
    assert score.truncated_tokens == len(ctx) - kept
    expected, _ = sequence_logprob(model, ctx[-kept:], cont)
    assert score.logprob == pytest.approx(expected, abs=1e-4)


def test_unfittable_request_fails_before_any_work(model_dirs):
    engine = HFEngine(model_dirs["llama"], dtype="float32", device="cpu", max_length=4)
    requests = [LoglikRequest("短い", ("a",)), LoglikRequest("文脈", ("とても長い選択肢の文章です",))]
    with pytest.raises(ValueError, match="request 1: a continuation of .* does not fit in max_length=4"):
        engine.loglikelihoods(requests)
    assert engine.stats.forward_passes == 0


def test_oom_halves_the_batch_and_keeps_scores(model_dirs, engines):
    """Out-of-memory is injected by a hook on the real model whenever a batch has > 2 rows."""
    engine = load_engine("hf", model=str(model_dirs["llama"]), dtype="float32", device="cpu", batch_size="auto",
                         max_padding_fraction=None)

    def too_big(module, args, kwargs):
        if kwargs["input_ids"].shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")

    engine.packed_forwards = False  # padded rows (GPU): a batch is rows
    handle = engine.model.register_forward_pre_hook(too_big, with_kwargs=True)
    try:
        scores = engine.loglikelihoods(REQUESTS)
    finally:
        handle.remove()
    assert engine.describe()["batch_size_now"]["loglik"] == 2  # 64 -> 32 -> ... -> 2
    expected = engines["llama"].loglikelihoods(REQUESTS)
    for got_row, exp_row in zip(scores, expected):
        assert [s.logprob for s in got_row] == pytest.approx([s.logprob for s in exp_row], abs=1e-5)


def test_oom_in_a_pack_halves_its_rows_and_keeps_scores(model_dirs, engines):
    """Packed rows (CPU): out-of-memory injected for any forward longer than one request's whole
    packed row; the batcher halves the rows per pack until each fits, and the scores stand."""
    engine = load_engine("hf", model=str(model_dirs["llama"]), dtype="float32", device="cpu", batch_size="auto",
                         prefix_cache_min_tokens=0)
    assert engine.packed_forwards
    longest = max(len(engine.encode(r.context)) + sum(len(engine.encode(c)) for c in r.continuations)
                  for r in REQUESTS)
    seen = []

    def too_big(module, args, kwargs):
        seen.append(kwargs["input_ids"].shape[1])
        if kwargs["input_ids"].shape[1] > longest:
            raise torch.OutOfMemoryError("out of memory (injected)")

    handle = engine.model.register_forward_pre_hook(too_big, with_kwargs=True)
    try:
        scores = engine.loglikelihoods(REQUESTS)
    finally:
        handle.remove()
    assert max(seen) > longest and engine.describe()["batch_size_now"]["loglik"] < 64
    expected = engines["llama"].loglikelihoods(REQUESTS)
    for got_row, exp_row in zip(scores, expected):
        assert [s.logprob for s in got_row] == pytest.approx([s.logprob for s in exp_row], abs=1e-5)


def test_bfloat16_scores_are_finite_and_close(model_dirs, engines):
    """The additive mask uses the dtype's minimum; in bfloat16 (the GPU default) no NaN may appear."""
    engine = HFEngine(model_dirs["qwen2"], dtype="bfloat16", device="cpu", max_padding_fraction=None)
    assert engine.describe()["dtype"] == "bfloat16"
    low = engine.loglikelihoods(REQUESTS)
    high = engines["qwen2"].loglikelihoods(REQUESTS)
    for low_row, high_row in zip(low, high):
        for a, b in zip(low_row, high_row):
            assert a.logprob == a.logprob  # not NaN
            assert a.logprob == pytest.approx(b.logprob, abs=0.15 * b.n_tokens)
