"""Run work in batches whose size halves when the accelerator runs out of memory.

Used by every local engine method: items are processed batch by batch and their results
stored as soon as a batch finishes, so an out-of-memory error only costs the batch that
raised it, which is retried at half the size. Results already computed in a call are
never lost, and the size that worked is remembered for the next call.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)

#: first batch size tried when the user asks for batch_size="auto"
AUTO_BATCH_START = 64


def is_oom_error(exc: BaseException) -> bool:
    """True for CUDA / MPS / CPU allocator out-of-memory errors (torch raises several kinds)."""
    try:
        import torch

        if isinstance(exc, torch.OutOfMemoryError):
            return True
    except ImportError:  # pragma: no cover - torch is present wherever engines run
        pass
    if isinstance(exc, (RuntimeError, MemoryError)):
        message = str(exc).lower()
        return isinstance(exc, MemoryError) or "out of memory" in message or "can't allocate memory" in message
    return False


def free_accelerator_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class AdaptiveBatcher:
    """Holds the current batch size of one engine method and runs batches with OOM back-off.

    ``size`` is an int (fixed: an OOM is re-raised, since the user chose the size) or
    "auto" (start at ``start`` and halve on OOM down to 1; the size that worked is kept).
    """

    def __init__(self, size: int | str, start: int = AUTO_BATCH_START) -> None:
        if size == "auto":
            self.auto = True
            self.size = int(start)
        elif isinstance(size, int) and not isinstance(size, bool) and size >= 1:
            self.auto = False
            self.size = size
        else:
            raise ValueError(f"batch_size must be a positive int or 'auto', got {size!r}")

    def run(
        self,
        items: Sequence[T],
        process: Callable[[Sequence[T]], Sequence[R]],
        store: Callable[[Sequence[T], Sequence[R]], None],
        max_items: Callable[[Sequence[T], int], int] | None = None,
    ) -> None:
        """Process ``items`` in order, ``size`` at a time, handing each result batch to ``store``.

        ``max_items(remaining, size)`` may shrink a batch further (e.g. to a token budget).
        On an out-of-memory error in auto mode, the failed batch is retried at half the size;
        batches already stored stay stored.
        """
        start = 0
        while start < len(items):
            n = min(self.size, len(items) - start)
            if max_items is not None:
                n = max(1, min(n, max_items(items[start:], n)))
            batch = items[start : start + n]
            try:
                results = process(batch)
            except Exception as exc:  # noqa: BLE001 - filtered just below
                if not is_oom_error(exc):
                    raise
                free_accelerator_memory()
                if not self.auto:
                    raise type(exc)(
                        f"out of memory at batch_size={self.size}; use a smaller batch_size or 'auto' ({exc})"
                    ) from exc
                if n == 1:
                    raise type(exc)(
                        f"out of memory even at batch size 1; reduce max_length or use a smaller dtype ({exc})"
                    ) from exc
                self.size = max(1, n // 2)
                log.warning("out of memory with a batch of %d; retrying with %d", n, self.size)
                continue
            store(batch, results)
            start += n


def rows_within_limits(lengths: Sequence[int], max_tokens: int, max_padding_fraction: float | None) -> int:
    """How many of the next rows (``lengths`` sorted longest first) to put in one padded batch.

    At least one; more while rows x padded width stays within ``max_tokens`` and, when
    ``max_padding_fraction`` is set, padding stays within that share of the batch. On CPU a
    forward pass costs in proportion to its padded tokens and batching buys nothing (measured
    on bench60m: one row at a time was as fast as any batch), so padding there is pure loss;
    on GPUs batches are limited by memory only.
    """
    width = lengths[0]
    k, real = 1, width
    while k < len(lengths):
        padded = (k + 1) * width
        if padded > max_tokens:
            break
        if max_padding_fraction is not None and padded - (real + lengths[k]) > max_padding_fraction * padded:
            break
        real += lengths[k]
        k += 1
    return k


@dataclass(frozen=True)
class DecodeCost:
    """A CPU cost model of batched generation, in units of one prompt token's prefill.

    Measured with ``bench/bench_forward_cost.py`` on the project's 2-core machine with the
    69 M-parameter bench Llama (process CPU time, one thread; ``docs/benchmarks.md``,
    "Generation batches"): a forward pass costs about 15 tokens' worth whatever its size
    (``forward``); a decode step of B rows costs about 27 + 1.5 B (``step`` + ``step_row``),
    plus about 0.007 per row per token already in its key/value cache
    (``step_row_context``: attention and, with the dynamic cache it was measured on, the cache's
    copy at every step; the static cache used on CPU makes it smaller, which changes no plan). Larger models raise the unit
    (a token's prefill) and the fixed costs alike, so the ratios carry over roughly. So small
    batches waste decode steps and padded prompts waste prefill; ``plan_generation_batches``
    weighs the two.
    """

    forward: float = 15.0
    step: float = 27.0
    step_row: float = 1.5
    step_row_context: float = 0.007
    #: one query-key pair of attention in a prefill forward with a custom (tree) mask, which
    #: runs every pair of the padded width: 4 x layers x hidden FLOPs against a token's 2 x
    #: non-embedding parameters, doubled for SDPA's lower efficiency than a matmul (bench
    #: Llama: 4.4e-4; ``attention_pair_cost`` computes it for a model)
    attention_pair: float = 4.4e-4


def attention_pair_cost(n_layers: int, hidden: int, n_parameters: int) -> float:
    """``DecodeCost.attention_pair`` of a model: 2 x (4 L H) / (2 N) in token units."""
    return 4.0 * n_layers * hidden / max(1, n_parameters)


def plan_generation_batches(
    lengths: Sequence[int],
    new_tokens: int,
    *,
    context: int = 0,
    max_rows: int,
    max_tokens: int,
    cost: DecodeCost = DecodeCost(),
    prefill: bool = True,
    own_widths: bool = False,
) -> list[int]:
    """The cheapest split of prompts (``lengths`` sorted longest first, in tokens to prefill)
    into consecutive left-padded generation batches, under ``cost``.

    ``prefill=False``: the prompts are prefilled apart from their decode batches (the CPU
    path of hf_generate), so a batch costs its decode steps only, over a static cache of
    the padded prompt + new tokens for every row. ``own_widths=True``: decode attention reads
    each row's own prompt, not the batch's padded width (``hf_decode_groups``); the static
    cache still holds the padded width (the ``max_tokens`` limit).

    Returns, for every start position i, the size of the batch that starts there in the
    cheapest plan of ``lengths[i:]`` (so a caller whose batch was cut short, e.g. by an
    out-of-memory retry, still finds the best continuation). A batch of k rows starting at i
    is padded to ``lengths[i]``; it costs one prefill forward of k x that width, then
    ``new_tokens`` decode steps whose rows attend to ``context`` (a cached shared prefix) +
    the padded prompt + the tokens generated so far. Batches hold at most ``max_rows`` rows
    and k x (width + new_tokens) <= ``max_tokens`` tokens (at least one row). Dynamic
    programming over the sorted lengths (:func:`cheapest_split`), O(n x max_rows).
    """
    n = len(lengths)

    def batches(i: int) -> Iterator[float]:
        width, own = lengths[i], 0
        for k in range(1, min(max_rows, n - i) + 1):
            if k > 1 and k * (width + new_tokens) > max_tokens:
                return
            own += lengths[i + k - 1]
            if own_widths:  # each row attends to its own prompt only (decode by row groups)
                context_sum = k * (context + new_tokens / 2) + own
            else:  # every row reads the batch's padded width
                context_sum = k * (context + width + new_tokens / 2)
            per_step = cost.step + k * cost.step_row + cost.step_row_context * context_sum
            yield (cost.forward + k * width if prefill else 0.0) + new_tokens * per_step

    return cheapest_split(n, batches)


def plan_scoring_batches(
    widths: Sequence[int],
    prefixes: Sequence[int],
    *,
    max_rows: int,
    max_tokens: int,
    cost: DecodeCost = DecodeCost(),
) -> list[int]:
    """The cheapest split of packed log-likelihood rows into consecutive padded forwards.

    ``widths`` are the rows' input tokens to compute, sorted longest first; ``prefixes`` the
    lengths of the cached prefix each row attends to (0: none). A batch of k rows starting
    at i is padded to ``widths[i]`` and to the longest prefix among them; it costs one
    forward (``cost.forward``) + k x width padded tokens + the attention of every query to
    every key of the padded row, k x width x (prefix + width) pairs (``cost.attention_pair``).
    On CPU a forward's fixed cost makes many small forwards slow, and padding is computed
    like real tokens; the plan weighs the two (docs/benchmarks.md). Batches hold at most
    ``max_rows`` rows and k x width <= ``max_tokens`` (at least one row). Returns, for every
    start position, the size of the batch starting there in the cheapest plan of the rest
    (as ``plan_generation_batches``). Dynamic programming (:func:`cheapest_split`), O(n x max_rows).
    """
    n = len(widths)
    if len(prefixes) != n:
        raise ValueError(f"{n} widths but {len(prefixes)} prefix lengths")

    def batches(i: int) -> Iterator[float]:
        width = widths[i]
        longest_prefix = 0
        for k in range(1, min(max_rows, n - i) + 1):
            if k > 1 and k * width > max_tokens:
                return
            longest_prefix = max(longest_prefix, prefixes[i + k - 1])
            yield cost.forward + k * width * (1.0 + cost.attention_pair * (longest_prefix + width))

    return cheapest_split(n, batches)


def cheapest_split(n: int, batches: Callable[[int], Iterable[float]]) -> list[int]:
    """The cheapest split of n ordered items into consecutive batches.

    ``batches(i)`` yields the cost of a batch starting at item i with 1, 2, ... items, as
    many sizes as are allowed (it may stop early; it must yield at least one). Returns, for
    every start position i, the size of the batch that starts there in the cheapest split
    of items i..n-1 (so a caller whose batch was cut short still finds the best
    continuation). Ties go to the larger batch. Dynamic programming from the end.
    """
    best = [0.0] * (n + 1)
    first = [1] * (n + 1)
    for i in range(n - 1, -1, -1):
        best[i] = float("inf")
        for k, c in enumerate(batches(i), start=1):
            if k > n - i:
                break
            total = c + best[i + k]
            if total <= best[i]:
                best[i], first[i] = total, k
        if best[i] == float("inf"):
            raise ValueError(f"no batch allowed at item {i}")
    return first[:n]
