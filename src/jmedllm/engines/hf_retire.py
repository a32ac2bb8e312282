"""Rows that finished leave a CPU decode batch (ragged generation, greedy decoding).

``model.generate`` steps every row of a batch until the last one stops, as lm-eval and most
harnesses do: a row that met EOS or a stop string after two tokens keeps costing a row of
every matmul and its attention for the rest of the batch's steps. On CPU, where a decode
step's cost grows with its rows, that is most of the decode time when short answers ("3",
"c,e") share a batch with a few long ones.

Here the finished rows leave the batch:

* :func:`finished_rows_criterion` builds a stopping criterion that tracks, per row, EOS and
  the stop strings (transformers' ``StopStringCriteria``, on token ids), and ends the whole
  ``generate`` call when enough rows have finished that the steps left would cost more than
  moving the others' cache (:func:`worth_retiring`, under the engine's ``DecodeCost``);
* the caller keeps the finished rows' tokens, moves the unfinished rows' keys and values to
  the front of the cache (:func:`keep_cache_rows`) and calls ``generate`` again for them from
  the same state: the cache holds every token but the last, as at the start of the batch.

With greedy decoding a row's tokens depend only on its own state, so the texts are those of
the whole batch; only the kernels' blocking (so float rounding) differs with the batch size,
as between any two decode plans. Sampled decoding is left as it is: its random draws are
taken per batch row, so a smaller batch would draw different tokens.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import torch

from jmedllm.engines.batching import DecodeCost

#: savings must exceed this many times the cost of retiring (a new generate call, the cache moved),
#: so that one batch is not split at every row that stops
MARGIN = 2.0


def worth_retiring(finished: int, rows: int, steps_left: int, context: float, cost: DecodeCost) -> bool:
    """Whether ``finished`` of ``rows`` rows leaving now saves more than ``MARGIN`` times what it
    costs: each of the ``steps_left`` steps saves their rows (``step_row``) and the keys they read
    (``step_row_context`` per position, ``context`` positions per row on average); leaving costs a
    new generate call (``forward``) and moving the kept rows' cache (about one step's reading of it)."""
    if finished < 1 or finished >= rows or steps_left < 1:
        return False
    saved = steps_left * finished * (cost.step_row + cost.step_row_context * context)
    price = cost.forward + cost.step_row_context * (rows - finished) * context
    return saved > MARGIN * price


@functools.cache
def _criterion_class() -> type:
    from transformers import StoppingCriteria

    class FinishedRows(StoppingCriteria):
        """Per row, whether it met an EOS id or completed a stop string (``stops``: a
        ``StopStringCriteria`` or None), remembered across steps in ``done``; all rows at once
        when ``retire(finished, steps)`` says the finished rows should leave (``ended_early``)."""

        def __init__(self, eos_ids: Sequence[int], stops: Any, retire: Any = None) -> None:
            self.eos = torch.tensor(sorted(set(eos_ids)), dtype=torch.long)
            self.stops, self.retire = stops, retire
            self.done: torch.Tensor | None = None
            self.steps = 0
            self.ended_early = False

        def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
            hit = torch.isin(input_ids[:, -1], self.eos.to(input_ids.device))
            if self.stops is not None:
                hit = hit | self.stops(input_ids, scores)
            self.done = hit if self.done is None else self.done | hit
            self.steps += 1
            finished = int(self.done.sum())
            if self.retire is not None and 0 < finished < len(self.done) and self.retire(finished, self.steps):
                self.ended_early = True
                return torch.ones_like(self.done)
            return self.done

    return FinishedRows


def finished_rows_criterion(eos_ids: Sequence[int], stops: Any, retire: Any = None) -> Any:
    """A ``FinishedRows`` stopping criterion (see the module docstring): ``stops`` a
    ``StopStringCriteria`` or None; ``retire(finished, steps)`` (None: never) ends the call
    early, leaving ``ended_early`` set and the finished rows in ``done``."""
    return _criterion_class()(eos_ids, stops, retire)


def retirable(cache: Any) -> bool:
    """Whether every layer of ``cache`` keeps all its state in ``keys`` / ``values`` tensors whose
    first dimension is the batch: transformers' plain static and static sliding-window layers, and
    layers that move their own rows (``keep_rows``); not layers with more state (indexers, linear
    attention), which subclass them."""
    from transformers.cache_utils import StaticLayer, StaticSlidingWindowLayer

    layers = getattr(cache, "layers", None)
    return bool(layers) and all(hasattr(layer, "keep_rows") or type(layer) in (StaticLayer, StaticSlidingWindowLayer)
                                for layer in layers)


def keep_cache_rows(cache: Any, rows: Sequence[int], starts: Sequence[int]) -> None:
    """Keep only ``rows`` (ascending) of a static cache, as its first rows. Layers that move their
    own rows (``keep_rows``: ``GrowingStaticLayer``) move them within their storage, row
    ``rows[i]`` from column ``starts[i]`` on (the columns before are its padding, which the caller
    rewrites as needed); other layers get new tensors of those rows (``index_select``)."""
    if any(a >= b for a, b in zip(rows, rows[1:])):
        raise ValueError("keep_cache_rows needs rows in ascending order")
    index = None
    for layer in cache.layers:
        if hasattr(layer, "keep_rows"):
            layer.keep_rows(rows, starts)
            continue
        if index is None:
            index = torch.tensor(list(rows), dtype=torch.long, device=layer.keys.device)
        layer.keys = layer.keys.index_select(0, index)
        layer.values = layer.values.index_select(0, index)
        layer.batch_size = len(rows)
