"""Skip the last decoder layer's MLP where its output is never read.

A causal LM's last layer feeds only the final norm and the LM head, position by position.
When a forward needs logits at its last ``keep`` columns only (``logits_to_keep``), the
hidden states of every other column leave the last layer unread: those positions are in
the forward for their keys and values, which the last layer's attention computes before
its MLP. So the MLP of the last layer can run on the last ``keep`` columns alone. On the
tiny bench Llama that is 4.7 M of 56.6 M multiply-adds per unread position (8 %); in a
0-shot log-likelihood forward about two thirds of the positions are unread, and in a
generation prefill all but one.

The model is not changed: for one forward, :func:`mlp_on_last_columns` puts a wrapper in
the last layer's ``mlp`` slot and takes it out again; the wrapped module (with any PEFT
adapter on it) computes as before. Whether an architecture fits (a last layer with an
``mlp`` that maps (batch, positions, hidden) to the same shape, nothing reading the
unread columns) is checked once on the model itself by :func:`trim_is_exact`, which
compares the kept logits of a short random input with and without the wrapper.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch


def last_decoder_layer(model: Any) -> Any | None:
    """The last decoder layer of a transformers causal LM whose layer has an ``mlp`` module, else None."""
    try:
        decoder = model.get_decoder()
    except Exception:  # exotic models without a decoder lookup: no trimming
        return None
    layers = getattr(decoder, "layers", None)
    if not isinstance(layers, torch.nn.ModuleList) or len(layers) == 0:
        return None
    last = layers[-1]
    return last if isinstance(getattr(last, "mlp", None), torch.nn.Module) else None


class LastColumnsMLP(torch.nn.Module):
    """``mlp`` on the last ``keep`` columns of (batch, positions, hidden), or on the columns a
    1D index tensor ``keep`` names (a packed row's read positions); zeros elsewhere.

    A zero MLP output leaves those columns at their residual stream: finite values that
    nothing reads.
    """

    def __init__(self, mlp: torch.nn.Module, keep: int | torch.Tensor) -> None:
        super().__init__()
        self.mlp = mlp
        self.keep = keep

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if isinstance(self.keep, torch.Tensor):
            if hidden_states.dim() != 3:
                return self.mlp(hidden_states)
            out = torch.zeros_like(hidden_states)
            out[:, self.keep] = self.mlp(hidden_states[:, self.keep])
            return out
        if hidden_states.dim() != 3 or hidden_states.shape[1] <= self.keep:
            return self.mlp(hidden_states)
        out = torch.zeros_like(hidden_states)
        out[:, -self.keep :] = self.mlp(hidden_states[:, -self.keep :])
        return out


@contextlib.contextmanager
def mlp_on_last_columns(layer: Any | None, keep: int | torch.Tensor) -> Iterator[None]:
    """For the forwards inside, ``layer``'s MLP runs on the last ``keep`` columns only, or on the
    columns of a 1D index tensor ``keep`` (None: no change)."""
    if layer is None or (not isinstance(keep, torch.Tensor) and keep < 1):
        yield
        return
    inner = layer.mlp
    layer.mlp = LastColumnsMLP(inner, keep)
    try:
        yield
    finally:
        layer.mlp = inner


def same_to_rounding(reference: torch.Tensor, other: torch.Tensor, dtype: torch.dtype) -> bool:
    """The engine's load-time checks' rule: ``other`` has ``reference``'s shape, is finite and
    equals it to rounding, relative to its scale (1e-4 in float32, 3e-2 in half precision, where
    a kernel may round a slice differently; a path that does not fit is off by the scale itself)."""
    if reference.shape != other.shape or not torch.isfinite(other).all():
        return False
    tolerance = 1e-4 if dtype == torch.float32 else 3e-2
    scale = max(1.0, float(reference.abs().max()))
    return float((reference - other).abs().max()) <= tolerance * scale


def trim_is_exact(model: Any, layer: Any) -> bool:
    """Whether the kept logits of a short random input are the same with the last layer's MLP
    trimmed as without, to rounding (:func:`same_to_rounding`). False when the forward fails."""
    embeddings = model.get_input_embeddings().weight
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, max(2, embeddings.shape[0]), (2, 7), generator=generator).to(embeddings.device)
    keep = 2
    try:
        with torch.inference_mode():
            full = model(input_ids=ids, use_cache=False).logits[:, -keep:].float()
            with mlp_on_last_columns(layer, keep):
                trimmed = model(input_ids=ids, use_cache=False).logits[:, -keep:].float()
    except Exception:
        return False
    return same_to_rounding(full, trimmed, embeddings.dtype)


class UnreadMLPTrim:
    """One engine's switch for the trim: checked on its model when loaded, then applied to
    every forward that reads only its last columns."""

    def __init__(self, model: Any) -> None:
        layer = last_decoder_layer(model)
        self.exact = layer is not None and trim_is_exact(model, layer)

    def scope(self, model: Any, keep: int | torch.Tensor) -> contextlib.AbstractContextManager[None]:
        """For the forwards inside, ``model``'s last MLP on the last ``keep`` columns, or the columns
        of an index tensor ``keep`` (when exact for it)."""
        return mlp_on_last_columns(last_decoder_layer(model) if self.exact else None, keep)
