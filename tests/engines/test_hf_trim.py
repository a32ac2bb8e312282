"""The last layer's MLP runs only where logits are read (engines/hf_trim.py)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from jmedllm.engines.hf_trim import (  # noqa: E402
    LastColumnsMLP, UnreadMLPTrim, last_decoder_layer, mlp_on_last_columns, trim_is_exact,
)


class _PositionMixingMLP(torch.nn.Module):
    """An 'MLP' whose output at a position depends on earlier positions (a running mean):
    the trim does not fit it, and the check must say so."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inner(x)
        steps = torch.arange(1, x.shape[1] + 1, dtype=x.dtype, device=x.device)[None, :, None]
        return y.cumsum(dim=1) / steps


class _TupleMLP(torch.nn.Module):
    """An MLP returning (output, router logits), as some mixture-of-experts blocks do."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor):
        return self.inner(x), None


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_kept_logits_are_unchanged_and_the_mlp_sees_only_kept_columns(arch, raw_models):
    tokenizer, model = raw_models[arch]
    layer = last_decoder_layer(model)
    assert layer is model.model.layers[-1]
    ids = torch.randint(5, 1000, (3, 11), generator=torch.Generator().manual_seed(1))
    seen: list[tuple[int, ...]] = []
    hook = layer.mlp.register_forward_hook(lambda module, args, out: seen.append(tuple(args[0].shape)))
    try:
        with torch.inference_mode():
            full = model(input_ids=ids).logits
            with mlp_on_last_columns(layer, 4):
                trimmed = model(input_ids=ids).logits
    finally:
        hook.remove()
    assert seen == [(3, 11, model.config.hidden_size), (3, 4, model.config.hidden_size)]
    torch.testing.assert_close(trimmed[:, -4:], full[:, -4:], rtol=0, atol=1e-5)
    # the unread columns did change: the MLP really was skipped there
    assert (trimmed[:, :-4] - full[:, :-4]).abs().max() > 1e-3
    assert not isinstance(layer.mlp, LastColumnsMLP)  # the wrapper is gone after the forward


def test_the_wrapper_is_removed_when_the_forward_fails(raw_models):
    _, model = raw_models["llama"]
    layer = last_decoder_layer(model)
    inner = layer.mlp
    with pytest.raises(RuntimeError), mlp_on_last_columns(layer, 2):
        raise RuntimeError("forward failed")
    assert layer.mlp is inner


def test_short_inputs_and_keep_zero_run_the_whole_mlp(raw_models):
    _, model = raw_models["llama"]
    layer = last_decoder_layer(model)
    x = torch.randn(2, 3, model.config.hidden_size)
    with torch.inference_mode():
        torch.testing.assert_close(LastColumnsMLP(layer.mlp, 5)(x), layer.mlp(x))
        with mlp_on_last_columns(layer, 0):
            assert layer.mlp is not None and not isinstance(layer.mlp, LastColumnsMLP)


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_the_check_accepts_the_tiny_models(arch, raw_models):
    _, model = raw_models[arch]
    assert trim_is_exact(model, last_decoder_layer(model))
    assert UnreadMLPTrim(model).exact


@pytest.mark.parametrize("wrapper", [_PositionMixingMLP, _TupleMLP])
def test_the_check_refuses_a_last_layer_the_trim_does_not_fit(wrapper, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    layer = last_decoder_layer(model)
    layer.mlp = wrapper(layer.mlp)  # a tuple: the layer's own forward fails, trimmed or not
    assert not trim_is_exact(model, layer)
    trim = UnreadMLPTrim(model)
    assert not trim.exact
    with trim.scope(model, 2):
        assert isinstance(layer.mlp, wrapper)  # left alone


def test_engines_record_the_trim_and_score_as_the_plain_forward(engines, raw_models, reference):
    engine = engines["qwen2"]
    assert engine.describe()["last_mlp_on_read_positions_only"] is True
    tokenizer, model = raw_models["qwen2"]
    context = "次の問題に答えよ。\n問題: 発熱と咳嗽が続く患者への対応として正しいのはどれか。\n答え:"
    choices = [" 胸部エックス線撮影", " 経過観察", " 抗菌薬の静注"]
    from jmedllm.schema import LoglikRequest

    [scores] = engine.loglikelihoods([LoglikRequest(context, tuple(choices))])
    for score, choice in zip(scores, choices):
        lp, greedy, n = reference(tokenizer, model, context, choice)
        assert score.logprob == pytest.approx(lp, abs=1e-4)
        assert score.n_tokens == n
