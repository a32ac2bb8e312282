"""A prefix cache across questions: the key/value state of a shared prompt prefix, computed once.

Every question of a benchmark starts with the same instruction header, and with shared
few-shot exemplars (``--shared-shots``) with the same exemplars too; in 3-shot prompts that
is most of the tokens. The engine groups the requests of a call by their common *token*
prefix (``group_by_prefix``), computes the prefix's key/value state once (one forward of
one row, kept in a small LRU cache across calls), and scores each batch of the group as
packed rows of the remaining suffixes (prefix_sharing.py) attending to that state, expanded
over the batch::

    keys:     [ shared prefix (cached, P) | left padding | suffix ... | cont1[:-1] | ... ]
    positions  0 .. P-1                                    P ..         (restart per continuation)

The mask is the tree mask of the suffix rows with P columns in front that every query may
attend to. Working on token ids (not strings) makes the reuse exact: a token sequence
computed in one piece or as cached prefix + suffix gives the same logits up to float
rounding (tests/engines/test_prefix_cache.py checks 1e-4 against the uncached path).

Pure grouping and packing here; the model calls stay in hf.py.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import torch

from jmedllm.engines.prefix_sharing import EncodedRequest, PackedBatch, pack_batch, tree_attention_mask

#: a prefix is cached only when at least this many tokens are shared (below it the copies of
#: the cached state cost about what they save)
DEFAULT_MIN_PREFIX_TOKENS = 16
#: prefixes kept across calls (per engine); one per benchmark x prompt family x adapter is typical
DEFAULT_CACHE_ENTRIES = 4


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


@dataclass(frozen=True)
class PrefixGroup:
    """Requests that share ``prefix`` (token ids; empty: no cached prefix for them)."""

    prefix: tuple[int, ...]
    requests: tuple[EncodedRequest, ...]


def group_by_prefix(requests: Sequence[EncodedRequest], min_prefix: int = DEFAULT_MIN_PREFIX_TOKENS) -> list[PrefixGroup]:
    """Split log-likelihood requests into groups sharing a context prefix worth caching
    (``group_ids_by_prefix`` on their contexts)."""
    return [
        PrefixGroup(prefix, tuple(requests[i] for i in members))
        for prefix, members in group_ids_by_prefix([r.context for r in requests], min_prefix)
    ]


def group_ids_by_prefix(
    sequences: Sequence[Sequence[int]], min_prefix: int = DEFAULT_MIN_PREFIX_TOKENS
) -> list[tuple[tuple[int, ...], list[int]]]:
    """Split token sequences into groups that share a common prefix worth caching: (prefix, indices).

    Sequences are sorted by their token ids, so those with a common prefix are
    neighbours, and walked once: a sequence joins the current group when they share at least
    ``min_prefix`` tokens and the tokens the group saves do not fall by joining (with n
    members and prefix L a group saves (n-1)·L tokens; joining gives n·L' with the shorter
    common prefix L'). A group's prefix stops at least one token before its shortest
    sequence, as the last token must be an input of the suffix row (it predicts the next
    token). Groups of one sequence or with a prefix under ``min_prefix`` tokens are returned
    together with an empty prefix (computed the plain way); ``min_prefix`` 0 switches
    grouping off. The order within and between groups is not the caller's.
    """
    if not sequences:
        return []
    if min_prefix < 1:
        return [((), list(range(len(sequences))))]
    order = sorted(range(len(sequences)), key=lambda i: tuple(sequences[i]))
    groups: list[tuple[int, list[int]]] = []
    for i in order:
        seq = sequences[i]
        if groups:
            length, members = groups[-1]
            joined = min(length, common_prefix_length(sequences[members[0]], seq), len(seq) - 1)
            if joined >= min_prefix and len(members) * joined >= (len(members) - 1) * length:
                groups[-1] = (joined, members + [i])
                continue
        groups.append((len(seq) - 1, [i]))
    out: list[tuple[tuple[int, ...], list[int]]] = []
    plain: list[int] = []
    for length, members in groups:
        if len(members) < 2 or length < min_prefix:
            plain += members
        else:
            out.append((tuple(sequences[members[0]][:length]), members))
    if plain:
        out.append(((), plain))
    return out


def group_ids_for_generation(
    sequences: Sequence[Sequence[int]], min_prefix: int = DEFAULT_MIN_PREFIX_TOKENS, merge_budget: float = 0.0
) -> list[tuple[tuple[int, ...], list[int]]]:
    """Groups for generation: ``group_ids_by_prefix``, then neighbouring groups merged on
    their common prefix while that costs at most ``merge_budget`` prompt tokens.

    Every group is batched on its own, and every batch repeats all its decode steps, whose
    cost is mostly fixed per step. Merging two groups costs the tokens of their prefixes
    beyond the common one, prefilled again by each member; it saves at least one batch's
    decode steps, which the caller prices as ``merge_budget`` (``hf_generate``: the decode
    steps and forward of one batch under the engine's DecodeCost; 0 keeps the log-likelihood
    grouping). So a subgroup sharing ten more header tokens joins its neighbour, while
    prompts with different few-shot exemplars (hundreds of tokens) keep their own cached
    prefix. Groups are merged only on a common prefix of at least ``min_prefix`` tokens.
    """
    groups = group_ids_by_prefix(sequences, min_prefix)
    cached = sorted((g for g in groups if g[0]), key=lambda g: g[0])
    plain = [g for g in groups if not g[0]]
    merged: list[tuple[tuple[int, ...], list[int]]] = []
    for prefix, members in cached:
        if merged:
            last_prefix, last_members = merged[-1]
            common = common_prefix_length(last_prefix, prefix)
            lost = len(last_members) * (len(last_prefix) - common) + len(members) * (len(prefix) - common)
            if common >= min_prefix and lost <= merge_budget:
                merged[-1] = (prefix[:common], last_members + members)
                continue
        merged.append((prefix, list(members)))
    return merged + plain


def strip_prefix(request: EncodedRequest, n: int) -> EncodedRequest:
    """The request with its first ``n`` context tokens removed (they are in the cache)."""
    return replace(request, context=request.context[n:])


def pack_after_prefix(requests: Sequence[EncodedRequest], prefix_length: int | Sequence[int], pad_id: int) -> PackedBatch:
    """``pack_batch`` of the suffixes, positions shifted past a cached prefix of
    ``prefix_length`` tokens (one length for all rows, or one per row)."""
    lengths = _per_row(prefix_length, len(requests))
    packed = pack_batch([strip_prefix(r, n) for r, n in zip(requests, lengths)], pad_id)
    packed.position_ids = packed.position_ids + torch.tensor(lengths, dtype=torch.long)[:, None]
    return packed


def prefix_tree_mask(segments: torch.Tensor, prefix_length: int | Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    """Additive mask (B, 1, T, P + T), P the longest prefix: every query attends to its row's
    whole cached prefix, which ends at column P (a shorter one is left-padded, and those
    columns are masked), and within the suffix as ``tree_attention_mask`` allows."""
    lengths = _per_row(prefix_length, segments.shape[0])
    tree = tree_attention_mask(segments, dtype)
    b, _, t, _ = tree.shape
    longest = max(lengths, default=0)
    front = torch.zeros((b, 1, t, longest), dtype=dtype, device=segments.device)
    for row, n in enumerate(lengths):
        if n < longest:
            front[row, :, :, : longest - n] = torch.finfo(dtype).min
    return torch.cat([front, tree], dim=-1)


def _per_row(prefix_length: int | Sequence[int], rows: int) -> list[int]:
    if isinstance(prefix_length, int):
        return [prefix_length] * rows
    lengths = list(prefix_length)
    if len(lengths) != rows:
        raise ValueError(f"{len(lengths)} prefix lengths for {rows} rows")
    return lengths


class PrefixKVCache:
    """Key/value states of prompt prefixes, per (adapter, token ids), least recently used out.

    ``compute(prefix_ids)`` runs the model on one row and returns the filled cache object;
    the entries hold per-layer (keys, values) tensors of batch 1, which ``expand`` turns
    into a fresh DynamicCache for a batch (the model appends the suffix to it in place, so
    the stored tensors are never modified).
    """

    def __init__(self, max_entries: int = DEFAULT_CACHE_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[Any, tuple[int, ...]], list[tuple[torch.Tensor, torch.Tensor]]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(
        self, key: Any, prefix: tuple[int, ...], compute: Callable[[tuple[int, ...]], Any]
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        full_key = (key, prefix)
        if full_key in self._entries:
            self._entries.move_to_end(full_key)
            self.hits += 1
            return self._entries[full_key]
        cache = compute(prefix)
        layers = [(layer.keys, layer.values) for layer in cache.layers]
        self.put(key, prefix, layers)
        return layers

    def holds(self, key: Any, prefix: tuple[int, ...]) -> bool:
        return (key, prefix) in self._entries

    def put(self, key: Any, prefix: tuple[int, ...], layers: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Store a prefix's per-layer keys and values, computed on a miss (by ``get``, or for several
        prefixes in one packed forward), evicting the least recently used past ``max_entries``."""
        self._entries[(key, prefix)] = layers
        self._entries.move_to_end((key, prefix))
        self.misses += 1
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    @property
    def nbytes(self) -> int:
        """Bytes of the keys and values held (each tensor's storage counted once)."""
        seen: dict[int, int] = {}
        for layers in self._entries.values():
            for k, v in layers:
                for t in (k, v):
                    storage = t.untyped_storage()
                    seen[storage.data_ptr()] = storage.nbytes()
        return sum(seen.values())

    @staticmethod
    def expand(layers: Sequence[tuple[torch.Tensor, torch.Tensor]], batch: int) -> Any:
        """A new DynamicCache holding the prefix state repeated over ``batch`` rows."""
        from transformers import DynamicCache

        return DynamicCache(
            [(k.expand(batch, *k.shape[1:]), v.expand(batch, *v.shape[1:])) for k, v in layers]
        )

    @staticmethod
    def stack(states: Sequence[Sequence[tuple[torch.Tensor, torch.Tensor]] | None]) -> Any:
        """A new DynamicCache whose row b holds ``states[b]`` (one prefix's per-layer keys and
        values, batch 1; None: no prefix), left-padded with zeros to the longest prefix (the
        columns ``prefix_tree_mask`` masks); rows sharing one prefix need no padding (``expand``)."""
        from transformers import DynamicCache

        present = [s for s in states if s is not None]
        if not present:
            raise ValueError("stack needs at least one prefix state")
        if all(s is present[0] for s in states):
            return PrefixKVCache.expand(present[0], len(states))
        return DynamicCache(left_padded_states(states))

    @staticmethod
    def static(layers: Sequence[tuple[torch.Tensor, torch.Tensor]], batch: int, max_len: int, config: Any) -> Any:
        """A StaticCache of ``max_len`` positions for ``batch`` rows, holding the prefix state
        (``layers``, possibly none) in its first positions; decoding writes into it in place."""
        from transformers import StaticCache

        cache = StaticCache(config=config, max_cache_len=max_len)
        for layer, (k, v) in zip(cache.layers, layers):
            layer.update(k.expand(batch, *k.shape[1:]), v.expand(batch, *v.shape[1:]))
        return cache


def left_padded_states(
    states: Sequence[Sequence[tuple[torch.Tensor, torch.Tensor]] | None],
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer, (B, H, L, D) keys and values with row b's state (per-layer keys and values of
    batch 1; None: nothing) at the end and zeros before it, L the longest state: the left
    padding that attention masks (``prefix_tree_mask``, or a generation attention mask)."""
    present = [s for s in states if s]
    if not present:
        raise ValueError("left_padded_states needs at least one state")
    layers = []
    for li, (k0, v0) in enumerate(present[0]):
        longest = max(s[li][0].shape[-2] for s in present)
        keys = k0.new_zeros((len(states), k0.shape[1], longest, k0.shape[-1]))
        values = v0.new_zeros((len(states), v0.shape[1], longest, v0.shape[-1]))
        for row, s in enumerate(states):
            if s:
                k, v = s[li]
                keys[row, :, longest - k.shape[-2] :] = k[0]
                values[row, :, longest - v.shape[-2] :] = v[0]
        layers.append((keys, values))
    return layers


class HeldPrefixStates:
    """The prefix states one engine call needs, each fetched once and held while rows use it.

    Batches mix rows of different prefixes, so a state may be needed by many batches, and the
    engine's LRU cache (a few entries, kept across calls) could evict it in between. ``fetch``
    gets one prefix's state (through that cache). ``done`` releases a row's use; a state is
    dropped once every row counted at construction has used it (rows not counted keep their
    state until the holder goes).
    """

    def __init__(self, fetch: Callable[[tuple[int, ...]], Any], prefixes: Sequence[tuple[int, ...]] = ()) -> None:
        self.fetch = fetch
        self.remaining: dict[tuple[int, ...], int] = {}
        for prefix in prefixes:
            if prefix:
                self.remaining[prefix] = self.remaining.get(prefix, 0) + 1
        self.held: dict[tuple[int, ...], Any] = {}

    def get(self, prefix: tuple[int, ...]) -> Any:
        if not prefix:
            return None
        if prefix not in self.held:
            self.held[prefix] = self.fetch(prefix)
        return self.held[prefix]

    def done(self, prefix: tuple[int, ...]) -> None:
        if prefix and prefix in self.remaining:
            self.remaining[prefix] -= 1
            if self.remaining[prefix] == 0:
                del self.remaining[prefix]
                self.held.pop(prefix, None)
