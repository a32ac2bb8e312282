"""Check that packed sequences do not attend to each other, on the very model being trained.

Packed and padding-free batches (TRL ``packing`` / ``padding_free``) put several examples in one
row and mark each example's start by resetting ``position_ids`` to 0, with no attention mask.
FlashAttention reads the boundaries from ``cu_seq_lens``; with ``sdpa`` and ``eager`` attention,
transformers 5 builds a block-diagonal causal mask from the position ids, *but only when no KV
cache is in use* (``use_cache=False``; with the default ``use_cache=True`` every token attends to
the whole row). TRL's SFTTrainer passes ``use_cache=False``, and we also switch it off in the
model config. Architectures with custom code, or future versions, may not honour this; so before
a packed run we compare, on the real model, the logits of a sequence packed behind another with
its logits alone, and refuse to train if they differ.
"""

from __future__ import annotations

from typing import Any


class PackedAttentionError(RuntimeError):
    pass


def attn_implementation(model: Any) -> str | None:
    """The attention implementation a (possibly PEFT-wrapped) model runs with."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return getattr(config, "_attn_implementation", None)


def check_packed_attention(model: Any, *, length: int = 8, seed: int = 0) -> dict[str, float]:
    """Raise PackedAttentionError if packed sequences leak into each other in ``model``.

    Returns the largest logit difference of the packed sequence versus alone (``isolated``) and,
    for scale, that of the same row *without* the position reset (``leaked``).
    """
    import torch

    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    vocab = int(config.vocab_size)
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, vocab, (length,), generator=g)
    b = torch.randint(0, vocab, (length,), generator=g)
    row = torch.cat([a, b])[None].to(device)
    pos = torch.cat([torch.arange(length), torch.arange(length)])[None].to(device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            packed = model(input_ids=row, position_ids=pos, use_cache=False).logits[0, length:].float()
            alone = model(input_ids=b[None].to(device), use_cache=False).logits[0].float()
            leaked = model(input_ids=row, use_cache=False).logits[0, length:].float()
    finally:
        model.train(was_training)
    isolated_err = float((packed - alone).abs().max())
    leak_err = float((leaked - alone).abs().max())
    # bf16 models differ a little between two layouts of the same computation; a leak is of the
    # order of the logits themselves.
    tolerance = max(1e-3, 0.05 * leak_err)
    if isolated_err > tolerance:
        impl = attn_implementation(model)
        raise PackedAttentionError(
            f"packed sequences attend to each other with attn_implementation={impl!r}: the logits of a sequence "
            f"packed behind another differ from its logits alone by {isolated_err:.3g} (without the position reset: "
            f"{leak_err:.3g}). Use instructions.batching=padded (or corpus.isolate_documents=false), or an attention "
            "implementation that honours position_ids (sdpa, eager, flash_attention_2)."
        )
    return {"isolated": isolated_err, "leaked": leak_err}
