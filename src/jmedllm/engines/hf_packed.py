"""Forwards over packed sequences: many prompts in one row, no padding, attention per segment (CPU).

A left-padded batch computes its padding, and a planner that avoids padding ends with many
small forwards: the 60 prompts of the project's 0-shot bench (59-437 tokens after the cached
header) were prefilled in 22 forwards of 1-6 rows, whose matmuls took 10-14 % longer than
the same work in a few packs of 2,048 rows (docs/benchmarks.md, "Packed forwards").
Here the sequences are concatenated into one row of up to ``PACK_TOKENS`` tokens,
so every linear layer runs once on all of them, and only attention is split:

* the distinct cached prefixes of the pack (the instruction header, shared exemplars) are the
  first columns of the forward's key/value cache, each once;
* a segment's queries attend to its own prefix's columns and to its own keys, causally
  (:func:`causal_after_prefix`) or by a mask of the caller's (a scoring row's tree mask),
  through transformers' own SDPA attention on those slices (:func:`packed_attention`,
  registered as the attention implementation ``jmedllm_packed`` for one forward);
* positions restart per segment (after its prefix), so rotary embeddings see each
  sequence's own positions.

Every token attends to exactly the keys it would attend to alone, with the same positions;
only the kernels' blocking, so float rounding, differs. Whether a model fits (attention
dispatched through transformers' attention interface, no relative position bias, no
sliding window) is checked once on the model by :func:`packing_is_exact`, which compares
packed logits with each sequence's own forward.
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from jmedllm.engines.hf_attention_scope import attention_scope
from jmedllm.engines.hf_trim import same_to_rounding

#: the attention implementation name packed forwards run under (registered on first use)
NAME = "jmedllm_packed"
#: tokens per packed forward: on the project's 2-core CPU 2,048 beat 1,024 (smaller matmuls)
#: and 4,096 (the MLP's intermediate tensors leave the cache): bench/bench_cpu_plans.py
PACK_TOKENS = 2048


@dataclass(frozen=True)
class Segment:
    """One sequence of a packed row: its tokens are positions ``start:end`` of the row, its
    cached prefix the cache's columns ``prefix_start:prefix_end`` (equal: no prefix);
    ``mask``: bool (n, prefix + n), True where a query attends (None: every prefix column,
    then causal over its own tokens)."""

    start: int
    end: int
    prefix_start: int = 0
    prefix_end: int = 0
    mask: torch.Tensor | None = None

    @property
    def prefix_length(self) -> int:
        return self.prefix_end - self.prefix_start


@dataclass(frozen=True)
class PackedLayout:
    """The segments of one packed forward; ``context``: cache columns before the row's tokens."""

    segments: tuple[Segment, ...]
    context: int

    @property
    def tokens(self) -> int:
        return self.segments[-1].end if self.segments else 0


_LAYOUT: contextvars.ContextVar[PackedLayout | None] = contextvars.ContextVar("jmedllm_packed", default=None)


def causal_after_prefix(n: int, prefix: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Bool (n, prefix + n): query i attends to every prefix column and to its own keys 0..i."""
    cols = torch.arange(prefix + n, device=device)
    return (cols[None, :] < prefix) | (cols[None, :] - prefix <= torch.arange(n, device=device)[:, None])


def plan_packs(lengths: Sequence[int], max_tokens: int = PACK_TOKENS) -> list[int]:
    """Sizes of consecutive packs of sequences (``lengths`` in the caller's order): as few packs
    as ``max_tokens`` allows, filled evenly (the total over the number of packs), so the last
    is not a small remainder; a sequence longer than ``max_tokens`` is a pack of its own."""
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    sizes: list[int] = []
    i, n = 0, len(lengths)
    while i < n:
        rest = sum(lengths[i:])
        target = rest / -(-rest // max_tokens) if rest else max_tokens
        k, total = 0, 0
        while i + k < n and (k == 0 or (total + lengths[i + k] <= max_tokens
                                        and total + lengths[i + k] / 2 <= target)):
            total += lengths[i + k]
            k += 1
        sizes.append(k)
        i += k
    return sizes


def packed_attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     attention_mask: torch.Tensor | None, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """transformers' SDPA attention, run per segment of a packed row; unchanged when no layout
    is set. With a layout set, a call that does not match it is an error."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    layout = _LAYOUT.get()
    if layout is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    if (query.shape[0] != 1 or query.shape[2] != layout.tokens or key.shape[2] != layout.context + layout.tokens
            or kwargs.get("position_bias") is not None):
        raise RuntimeError(f"a packed layout of {layout.tokens} tokens after {layout.context} cached columns is set, "
                           f"but attention got {query.shape[0]} rows of {query.shape[2]} queries and {key.shape[2]} keys"
                           + (" with a position bias" if kwargs.get("position_bias") is not None else ""))
    kwargs.pop("is_causal", None)
    outputs = []
    for seg in layout.segments:
        own = slice(layout.context + seg.start, layout.context + seg.end)
        k, v = key[:, :, own], value[:, :, own]
        if seg.prefix_length:
            k = torch.cat([key[:, :, seg.prefix_start : seg.prefix_end], k], dim=2)
            v = torch.cat([value[:, :, seg.prefix_start : seg.prefix_end], v], dim=2)
        mask = seg.mask
        if mask is None and seg.prefix_length:
            mask = causal_after_prefix(seg.end - seg.start, seg.prefix_length, query.device)
        if mask is not None:
            mask = mask.to(query.device)[None, None]
        out, _ = sdpa_attention_forward(module, query[:, :, seg.start : seg.end], k, v, mask,
                                        is_causal=mask is None, **kwargs)
        outputs.append(out)
    _calls.count += 1
    return torch.cat(outputs, dim=1), None


class _Calls:
    count = 0  # packed attention calls so far (read by packing_is_exact)


_calls = _Calls()


def _no_mask(*args: Any, **kwargs: Any) -> None:
    """The mask function of the packed implementation: segments carry their own masks."""
    return None


def packed_forward(model: Any, layout: PackedLayout) -> contextlib.AbstractContextManager[None]:
    """For the forwards inside, ``model``'s attention runs per segment of ``layout``."""
    return attention_scope(model, NAME, packed_attention, _no_mask, _LAYOUT, layout)


def pack_sequences(
    seqs: Sequence[Sequence[int]], prefix_ids: Sequence[int], prefix_lengths: Sequence[int],
    masks: Sequence[torch.Tensor | None] | None = None, positions: Sequence[Sequence[int]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, PackedLayout, list[int]]:
    """One packed row of ``seqs``, sequence i after the cached prefix ``prefix_ids[i]`` (an index
    into the distinct prefixes, of ``prefix_lengths`` tokens; -1: none). Returns the input ids
    (1, T), position ids (1, T) (each sequence's from its prefix's length on, or
    ``positions[i]`` offset by it), the layout, and each distinct prefix's first cache column.
    Without ``masks``, a sequence after a prefix gets :func:`causal_after_prefix`'s mask (one
    without a prefix runs causal, no mask)."""
    columns, at = [], 0
    for n in prefix_lengths:
        columns.append(at)
        at += n
    segments, ids, pos, start = [], [], [], 0
    for i, seq in enumerate(seqs):
        p = prefix_ids[i]
        first, n = (columns[p], prefix_lengths[p]) if p >= 0 else (0, 0)
        own = positions[i] if positions is not None else range(len(seq))
        if len(own) != len(seq):
            raise ValueError(f"sequence {i}: {len(seq)} tokens but {len(own)} positions")
        mask = masks[i] if masks is not None else (causal_after_prefix(len(seq), n) if n else None)  # once, for every layer
        segments.append(Segment(start, start + len(seq), first, first + n, mask))
        ids += seq
        pos += [n + q for q in own]
        start += len(seq)
    return (torch.tensor([ids], dtype=torch.long), torch.tensor([pos], dtype=torch.long),
            PackedLayout(tuple(segments), at), columns)


def prefixes_for_pack(states: Sequence[Any], config: Any) -> tuple[list[int], list[int], Any]:
    """The cached prefix states of a pack's sequences (``states[i]``: per-layer keys and values,
    batch 1, or None), each distinct state once: (per sequence the index of its state or -1,
    each distinct state's length, a DynamicCache holding them one after another)."""
    from transformers import DynamicCache

    index: dict[int, int] = {}
    distinct: list[Any] = []
    for layers in states:
        if layers is not None and id(layers) not in index:
            index[id(layers)] = len(distinct)
            distinct.append(layers)
    owner = [index[id(layers)] if layers is not None else -1 for layers in states]
    lengths = [layers[0][0].shape[-2] for layers in distinct]
    if not distinct:
        return owner, lengths, DynamicCache(config=config)
    return owner, lengths, DynamicCache([(torch.cat([layers[n][0] for layers in distinct], dim=2),
                                          torch.cat([layers[n][1] for layers in distinct], dim=2))
                                         for n in range(len(distinct[0]))])


def packing_is_exact(model: Any, cache_kwarg: str) -> bool:
    """Whether packed forwards give each sequence's own logits, to rounding
    (``hf_trim.same_to_rounding``): three random sequences of 5, 3 and 1 tokens, the first two
    after one cached random prefix of 4 tokens, packed in one row, against each sequence (with
    its prefix) alone; and the packed attention really ran. Only SDPA models without
    sub-configs or sliding windows qualify; False when a forward fails."""
    from transformers import DynamicCache

    config = model.config
    if (getattr(config, "_attn_implementation", None) != "sdpa" or getattr(config, "sub_configs", None)
            or getattr(config, "sliding_window", None) or any(t != "full_attention" for t in getattr(config, "layer_types", None) or [])):
        return False
    embeddings = model.get_input_embeddings().weight
    device = embeddings.device
    generator = torch.Generator().manual_seed(0)
    vocab = max(2, embeddings.shape[0])
    prefix = torch.randint(0, vocab, (4,), generator=generator).tolist()
    seqs = [torch.randint(0, vocab, (n,), generator=generator).tolist() for n in (5, 3, 1)]
    prefix_ids = [0, 0, -1]

    def forward(ids: torch.Tensor, positions: torch.Tensor, cache: Any) -> torch.Tensor:
        return model(input_ids=ids.to(device), position_ids=positions.to(device),
                     **{cache_kwarg: cache, "use_cache": True}).logits[0].float()

    try:
        with torch.inference_mode():
            alone = [forward(torch.tensor([prefix + s if p >= 0 else s]),
                             torch.arange(len(s) + (len(prefix) if p >= 0 else 0))[None], DynamicCache(config=config))
                     for s, p in zip(seqs, prefix_ids)]
            state = DynamicCache(config=config)
            forward(torch.tensor([prefix]), torch.arange(len(prefix))[None], state)
            ids, positions, layout, _ = pack_sequences(seqs, prefix_ids, [len(prefix)])
            before = _calls.count
            with packed_forward(model, layout):
                packed = forward(ids, positions, state)
    except Exception:
        return False
    pieces = [packed[seg.start : seg.end] for seg in layout.segments]
    own = [a[-len(s):] for a, s in zip(alone, seqs)]
    return _calls.count > before and same_to_rounding(torch.cat(own), torch.cat(pieces), embeddings.dtype)
