"""The attention scopes of packed forwards and decode row groups (engines/hf_attention_scope.py)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from jmedllm.engines import hf_decode_groups, hf_packed  # noqa: E402
from jmedllm.engines.hf_decode_groups import decode_row_groups  # noqa: E402
from jmedllm.engines.hf_packed import pack_sequences, packed_forward  # noqa: E402


def _packed(model):
    _, _, layout, _ = pack_sequences([[5]], [-1], [])
    return packed_forward(model, layout)


@pytest.mark.parametrize("scope, name, plan", [
    (_packed, hf_packed.NAME, hf_packed._LAYOUT),
    (lambda model: decode_row_groups(model, [(0, 1, 0)]), hf_decode_groups.NAME, hf_decode_groups._GROUPS),
], ids=["packed", "row_groups"])
def test_scope_restores_the_attention_implementation_after_an_error(raw_models, scope, name, plan):
    _, model = raw_models["llama"]
    with pytest.raises(RuntimeError, match="boom"):
        with scope(model):
            assert model.config._attn_implementation == name
            assert plan.get() is not None
            raise RuntimeError("boom")
    assert model.config._attn_implementation == "sdpa"
    assert plan.get() is None
