"""Decode steps whose attention reads each row's own keys, not the batch's padding (CPU generation).

Ragged generation (``hf_generate``) decodes prompts of different lengths in one batch,
left-padded in one preallocated key/value cache. Plain SDPA then reads, at every step and
in every layer, each row's padding and the columns not yet generated, all masked. On CPU a
decode step's attention is bound by memory bandwidth, so that reading is the cost, and it
pushed the decode plan towards several smaller batches, whose matmuls run at a fraction of
the CPU's peak (docs/benchmarks.md, "Decode by row groups").

Here, for the decode forwards of one ``generate`` call:

* the cache (``GrowingStaticLayer``, :func:`growing_layer_class`) is written in place as before, but hands attention
  only its filled columns, and sizes the mask to them;
* the rows (sorted longest first) are split into groups of similar length
  (:func:`plan_row_groups`); a step's attention runs once per group, on the columns from
  the first real column of the group's longest row on (:func:`row_group_attention`, which
  calls transformers' own SDPA attention on those slices, same mask, same scaling).

The columns left out are masked for every row of the group, so each row attends to the same
keys with the same weights; only the kernel's blocking, so float rounding, can differ.
Whether a model fits (its attention dispatched through transformers' attention interface,
no per-column extras the slices would lose) is checked once on the model by
:func:`row_groups_are_exact`, which compares a decode step with and without the groups.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from typing import Any, Iterator, Sequence

import torch

from jmedllm.engines.batching import cheapest_split
from jmedllm.engines.hf_attention_scope import attention_scope
from jmedllm.engines.hf_trim import same_to_rounding

#: the attention implementation name the groups run under (registered with transformers on first use)
NAME = "jmedllm_row_groups"
#: one attention call's fixed cost, in row-positions of keys read (CPU: ~50 us of dispatch and
#: slicing against ~0.4 us per row-position of float32 keys and values of the bench Llama)
CALL_COST = 128

#: the plan of the decode forwards running now: the groups (first row, end row, first column)
#: and, with the CPU decode attention kernel, the kernel and each row's first column
_GROUPS: contextvars.ContextVar[tuple[tuple[tuple[int, int, int], ...], Any, torch.Tensor | None] | None] = (
    contextvars.ContextVar("jmedllm_row_groups", default=None))


def plan_row_groups(lengths: Sequence[int], call_cost: float = CALL_COST) -> list[tuple[int, int]]:
    """Consecutive groups ``(start, end)`` of rows (``lengths`` sorted longest first) minimising
    the keys read per step: a group costs ``call_cost`` + its rows x its longest row."""
    if any(a < b for a, b in zip(lengths, lengths[1:])):
        raise ValueError("plan_row_groups needs lengths sorted longest first")
    n = len(lengths)
    first = cheapest_split(n, lambda i: (call_cost + k * lengths[i] for k in range(1, n - i + 1)))
    groups, i = [], 0
    while i < n:
        groups.append((i, i + first[i]))
        i += first[i]
    return groups


def kv_bytes_per_token(config: Any, dtype: torch.dtype) -> int:
    """Bytes of keys and values one position takes in a model's cache: layers x 2 x key/value
    heads x head size x the dtype's size (the text config of a composite model)."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    layers = getattr(text, "num_hidden_layers", None) or 1
    heads = getattr(text, "num_attention_heads", None) or 1
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None) or (getattr(text, "hidden_size", None) or 64) // heads
    size = torch.empty((), dtype=dtype).element_size() if dtype.is_floating_point else 2
    return int(layers * 2 * kv_heads * head_dim * size)


def row_group_attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                        attention_mask: torch.Tensor | None, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """transformers' SDPA attention, run per row group on a decode step (one query per row);
    unchanged when no groups are set. With groups set, any other call (a prefill, another
    batch) is an error: it would read columns no group reads, which may be unwritten."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    plan = _GROUPS.get()
    if plan is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    groups, kernel, starts = plan
    if query.shape[2] != 1 or groups[-1][1] != query.shape[0] or (attention_mask is not None
                                                                   and attention_mask.dim() != 4):
        # columns outside the groups may be unwritten (GrowingStaticLayer.reserve): never read them
        raise RuntimeError(f"row groups of {groups[-1][1]} rows set for decode steps, but attention got "
                           f"{query.shape[0]} rows of {query.shape[2]} queries")
    scale = kwargs.get("scaling") if kwargs.get("scaling") is not None else getattr(module, "scaling", None)
    if (kernel is not None and scale is not None and not kwargs.get("dropout") and kwargs.get("softcap") is None
            and kwargs.get("s_aux") is None and kwargs.get("sliding_window") is None
            and kernel.supports(query, key, value) and mask_is_starts(attention_mask, starts, key.shape[2])):
        # each row its own group: the kernel reads exactly each row's columns (the mask's unmasked ones)
        _calls.count += 1
        _calls.kernel += 1
        return kernel(query, key, value, starts, scale), None
    outputs = []
    for start, end, column in groups:
        mask = attention_mask[start:end, ..., column:] if attention_mask is not None else None
        out, _ = sdpa_attention_forward(module, query[start:end], key[start:end, :, column:],
                                        value[start:end, :, column:], mask, **kwargs)
        outputs.append(out)
    _calls.count += 1
    return torch.cat(outputs), None


def mask_is_starts(mask: torch.Tensor | None, starts: torch.Tensor, length: int) -> bool:
    """Whether a decode step's attention mask (4D, one query per row; bool, or additive with 0
    where attended) lets row b attend exactly columns ``starts[b]`` to ``length``: what the
    kernel reads. Anything else (a window, a chunk, another mask) goes to SDPA with the mask."""
    if mask is None:
        return bool((starts == 0).all())
    if mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[2] != 1 or mask.shape[-1] != length:
        return False
    allowed = mask[:, 0, 0, :] if mask.dtype == torch.bool else mask[:, 0, 0, :] == 0
    expected = torch.arange(length, device=mask.device)[None, :] >= starts.to(mask.device)[:, None]
    return allowed.shape == expected.shape and bool(torch.equal(allowed, expected))


class _Calls:
    count = 0  # grouped attention calls so far (read by row_groups_are_exact)
    kernel = 0  # of which through the decode attention kernel


_calls = _Calls()


class ScratchPool:
    """Storage kept for decode caches, one flat buffer per (layer, keys or values), grown when
    too small. Memory fresh from the system costs a page fault per 4 KiB on its first write
    (about 0.5 s per 1.5 GB of cache on the project's machine, against 0.1 s to write memory
    already in use), so later decode batches and calls write into the same pages. Holds up
    to one decode batch's cache (``max_cache_bytes``) until ``clear``; one cache at a time
    may use it."""

    def __init__(self) -> None:
        self._buffers: dict[tuple[int, int], torch.Tensor] = {}

    def take(self, key: tuple[int, int], shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """An unwritten tensor of ``shape`` (dtype and device of ``like``) in the buffer for ``key``."""
        n = 1
        for size in shape:
            n *= size
        buffer = self._buffers.get(key)
        if buffer is None or buffer.numel() < n or buffer.dtype != like.dtype or buffer.device != like.device:
            self._buffers.pop(key, None)  # released before its successor is allocated
            buffer = self._buffers[key] = like.new_empty(n)
        return buffer[:n].view(shape)

    @property
    def nbytes(self) -> int:
        return sum(b.numel() * b.element_size() for b in self._buffers.values())

    def clear(self) -> None:
        self._buffers.clear()


def growing_static_cache(config: Any, max_len: int, pool: ScratchPool | None = None) -> Any:
    """A StaticCache of ``max_len`` positions whose plain static layers hand out only their
    filled columns (``GrowingStaticLayer``; storage from ``pool`` when given); sliding-window
    layers stay as they are."""
    from transformers import StaticCache
    from transformers.cache_utils import StaticLayer

    growing = growing_layer_class()
    cache = StaticCache(config=config, max_cache_len=max_len)
    cache.layers = [growing(max_len, pool=pool, index=i) if type(layer) is StaticLayer else layer
                    for i, layer in enumerate(cache.layers)]
    return cache


@functools.cache
def growing_layer_class() -> type:
    """:class:`GrowingStaticLayer` (defined on first use: it subclasses transformers' StaticLayer)."""
    from transformers.cache_utils import StaticLayer

    class GrowingStaticLayer(StaticLayer):
        """A static cache layer (preallocated, written in place) that returns, and sizes the
        attention mask to, its filled columns only: attention never reads the columns still
        to be generated. Its storage is ``keys`` / ``values`` as in StaticLayer, allocated
        unwritten: ``update`` writes the columns it hands out, ``reserve`` leaves that to its
        caller."""

        def __init__(self, max_cache_len: int, pool: ScratchPool | None = None, index: int = 0, **kwargs: Any) -> None:
            super().__init__(max_cache_len, **kwargs)
            self.pool, self.index = pool, index

        def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
            self.device = key_states.device
            self.batch_size, self.num_heads = key_states.shape[:2]
            self.k_head_dim, self.v_head_dim = key_states.shape[-1], value_states.shape[-1]
            shape = (self.batch_size, self.num_heads, self.max_cache_len)
            if self.pool is not None:
                self.keys = self.pool.take((self.index, 0), (*shape, self.k_head_dim), key_states)
                self.values = self.pool.take((self.index, 1), (*shape, self.v_head_dim), value_states)
            else:
                self.keys = key_states.new_empty((*shape, self.k_head_dim))
                self.values = value_states.new_empty((*shape, self.v_head_dim))
            self.cumulative_length = self.cumulative_length.to(self.device)
            self.is_initialized = True

        def reserve(self, batch: int, key_like: torch.Tensor, value_like: torch.Tensor,
                    filled: int) -> tuple[torch.Tensor, torch.Tensor]:
            """Allocate the storage for ``batch`` rows shaped like ``key_like`` / ``value_like``
            (batch 1), its first ``filled`` columns counted as filled; returns views of those
            columns, for the caller to write every position attention will read."""
            if self.is_initialized or filled > self.max_cache_len:
                raise ValueError(f"cannot reserve {filled} of {self.max_cache_len} positions (initialized: "
                                 f"{self.is_initialized})")
            self.lazy_initialization(key_like.expand(batch, *key_like.shape[1:]),
                                     value_like.expand(batch, *value_like.shape[1:]))
            self.cumulative_length.fill_(filled)
            return self.keys[:, :, :filled], self.values[:, :, :filled]

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any,
                   **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            start = int(self.cumulative_length)
            end = start + key_states.shape[-2]
            if end > self.max_cache_len:
                raise ValueError(f"static cache of {self.max_cache_len} positions cannot take {end}")
            self.keys[:, :, start:end] = key_states
            self.values[:, :, start:end] = value_states
            self.cumulative_length.add_(end - start)
            return self.keys[:, :, :end], self.values[:, :, :end]

        def keep_rows(self, rows: Sequence[int], starts: Sequence[int]) -> None:
            """Keep ``rows`` (ascending), moved within the storage to its first rows, each from
            column ``starts[i]`` to the filled end (``hf_retire.keep_cache_rows``)."""
            filled = int(self.cumulative_length)
            for new, (old, start) in enumerate(zip(rows, starts)):
                if new != old:  # new < old: row `new` has left or has been moved already
                    self.keys[new, :, start:filled] = self.keys[old, :, start:filled]
                    self.values[new, :, start:filled] = self.values[old, :, start:filled]
            self.keys, self.values = self.keys[: len(rows)], self.values[: len(rows)]
            self.batch_size = len(rows)

        def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
            return int(self.cumulative_length) + query_length, 0

    return GrowingStaticLayer


def zero_group_padding(buffers: Sequence[tuple[torch.Tensor, torch.Tensor]], groups: Sequence[tuple[int, int, int]],
                       seqs: Sequence[Sequence[int]], width: int) -> None:
    """Zeros in the padding each row's group reads (``buffers``: per layer, keys and values of rows
    ``seqs`` left-padded to ``width``): from the group's first column to the row's own first one.
    Storage is left unwritten elsewhere; masked columns must still hold finite values."""
    for start, end, column in groups:
        for r in range(start, end):
            first = width - len(seqs[r])
            if first > column:
                for keys, values in buffers:
                    keys[r, :, column:first].zero_()
                    values[r, :, column:first].zero_()


@contextlib.contextmanager
def decode_row_groups(model: Any, groups: Sequence[tuple[int, int, int]] | None, kernel: Any = None) -> Iterator[None]:
    """For the forwards inside, ``model``'s attention runs per row group on decode steps
    (``groups``: first row, end row, first column; None: no change). With ``kernel``
    (``cpu_decode_attention``), every group must be one row starting at its own first column
    (:func:`per_row_groups`), and the kernel runs all rows in one call where it applies."""
    if not groups:
        yield
        return
    from transformers.masking_utils import sdpa_mask

    starts = None
    if kernel is not None:
        if any(end != start + 1 for start, end, _ in groups):
            raise ValueError("the decode attention kernel needs one group per row (per_row_groups)")
        starts = torch.tensor([column for _, _, column in groups], dtype=torch.int64)
    with attention_scope(model, NAME, row_group_attention, sdpa_mask, _GROUPS, (tuple(groups), kernel, starts)):
        yield


def per_row_groups(lengths: Sequence[int], width: int) -> list[tuple[int, int, int]]:
    """One group per row of ``lengths`` left-padded to ``width``: each reads from its own first column."""
    return [(r, r + 1, width - n) for r, n in enumerate(lengths)]


def row_groups_are_exact(model: Any, cache_kwarg: str, kernel: Any = None) -> bool:
    """Whether a decode step's logits are the same with row groups as without, to rounding
    (``hf_trim.same_to_rounding``), on three left-padded
    random rows of 6, 5 and 2 tokens, and the grouped attention really ran (with ``kernel``:
    one group per row, through the kernel). Only models with
    SDPA attention and a config without sub-configs qualify; False when a forward fails."""
    config = model.config
    if getattr(config, "_attn_implementation", None) != "sdpa" or getattr(config, "sub_configs", None):
        return False
    embeddings = model.get_input_embeddings().weight
    generator = torch.Generator().manual_seed(0)
    lengths, width = (6, 5, 2), 6
    ids = torch.randint(0, max(2, embeddings.shape[0]), (len(lengths), width + 1), generator=generator)
    mask = torch.tensor([[0] * (width - n) + [1] * (n + 1) for n in lengths])
    ids, mask = ids.to(embeddings.device), mask.to(embeddings.device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    groups = per_row_groups(lengths, width) if kernel is not None else [(0, 2, 0), (2, 3, width - lengths[2])]

    def step(grouped: bool) -> torch.Tensor:
        cache = growing_static_cache(config, width + 1)
        model(input_ids=ids[:, :width], attention_mask=mask[:, :width], position_ids=positions[:, :width],
              **{cache_kwarg: cache, "use_cache": True})
        with decode_row_groups(model, groups if grouped else None, kernel if grouped else None):
            return model(input_ids=ids[:, width:], attention_mask=mask, position_ids=positions[:, width:],
                         **{cache_kwarg: cache, "use_cache": True}).logits[:, -1].float()

    try:
        with torch.inference_mode():
            plain = step(False)
            before, before_kernel = _calls.count, _calls.kernel
            grouped = step(True)
    except Exception:
        return False
    ran = _calls.count > before and (kernel is None or _calls.kernel > before_kernel)
    return ran and same_to_rounding(plain, grouped, embeddings.dtype)
