"""Log-likelihood scoring for the Hugging Face engine: shared-prefix packed rows (tree mask),
the prefix cache across questions, and the per-sequence fallback."""

from __future__ import annotations

import inspect
import time
from typing import Any, Callable, Iterable, Sequence

import torch

from jmedllm.engines.batching import plan_scoring_batches, rows_within_limits
from jmedllm.engines.hf_packed import pack_sequences, packed_forward, plan_packs, prefixes_for_pack
from jmedllm.engines.prefix_cache import (
    HeldPrefixStates, group_by_prefix, pack_after_prefix, prefix_tree_mask, strip_prefix,
)
from jmedllm.engines.prefix_sharing import EncodedRequest, encode_request, left_pad, pack_batch, tree_attention_mask
from jmedllm.schema import ContinuationScore, LoglikRequest


class HFScoringMixin:
    """The ``loglikelihoods`` half of :class:`jmedllm.engines.hf.HFEngine` (uses its model,
    tokenizer, batcher and prefix cache)."""

    def loglikelihoods(self, requests: Sequence[LoglikRequest]) -> list[list[ContinuationScore]]:
        """For each request, one ContinuationScore per continuation, in order.

        All requests are tokenised and checked before any model call, so a bad request
        fails the call before work is done. Requests whose context + longest continuation
        exceed an active sliding window, and every request when loglik_strategy is
        "per_sequence", are scored one continuation per row with the model's own masks.
        """
        t0 = time.perf_counter()
        encoded = [
            encode_request(i, r.context, r.continuations, self.encode, self.max_length, self._start_ids)
            for i, r in enumerate(requests)
        ]
        results: list[list[ContinuationScore] | None] = [None] * len(encoded)
        shared, single = [], []
        for r in encoded:
            longest = len(r.context) + max(len(c) for c in r.continuations) - 1
            use_tree = self.loglik_strategy == "shared_prefix" and (
                self._sliding_window is None or longest <= self._sliding_window
            )
            (shared if use_tree else single).append(r)

        # every row starts from the cached state of its group's prefix (header, shared
        # exemplars, a shared case vignette); rows of different prefixes share batches
        rows = [(r, g.prefix) for g in group_by_prefix(shared, self.prefix_cache_min_tokens) for r in g.requests]
        rows.sort(key=lambda row: (-(row[0].packed_length - len(row[1])), -len(row[1])))
        self._warm_prefixes(prefix for _, prefix in rows)
        states = HeldPrefixStates(self._cached_prefix_state, [prefix for _, prefix in rows])

        def store_rows(batch: Sequence[tuple[EncodedRequest, tuple[int, ...]]], scores: Sequence[list[ContinuationScore]]) -> None:
            for (r, prefix), s in zip(batch, scores):
                results[r.index] = s
                states.done(prefix)

        self._loglik_batches.run(
            rows,
            lambda batch: self._score_packed([r for r, _ in batch], [states.get(prefix) for _, prefix in batch]),
            store_rows,
            max_items=self._scoring_batch_rule([r.packed_length - len(p) for r, p in rows], [len(p) for _, p in rows],
                                               packed=self.packed_forwards),
        )

        if single:
            pieces: dict[tuple[int, int], ContinuationScore] = {}
            items = [(r, j) for r in single for j in range(len(r.continuations))]
            items.sort(key=lambda it: -(len(it[0].context) + len(it[0].continuations[it[1]])))

            def store_pieces(batch: Sequence[tuple[EncodedRequest, int]], scores: Sequence[ContinuationScore]) -> None:
                for (r, j), s in zip(batch, scores):
                    pieces[(r.index, j)] = s

            widths = [len(r.context) + len(r.continuations[j]) - 1 for r, j in items]
            self._loglik_batches.run(
                items, self._score_sequences, store_pieces, max_items=self._scoring_batch_rule(widths, [0] * len(widths))
            )
            for r in single:
                results[r.index] = [pieces[(r.index, j)] for j in range(len(r.continuations))]
        self.stats.seconds += time.perf_counter() - t0
        assert all(r is not None for r in results)
        return results  # type: ignore[return-value]

    def _scoring_batch_rule(self, widths: Sequence[int], prefixes: Sequence[int],
                            packed: bool = False) -> Callable[[Sequence[Any], int], int]:
        """How many of the remaining rows (``widths`` sorted longest first, each attending to a
        cached prefix of ``prefixes`` tokens) the next forward takes.

        On CPU (``max_padding_fraction`` "auto"), the cheapest plan under the engine's cost
        model (``batching.plan_scoring_batches``): a forward has a fixed cost, so fewer, larger
        forwards win until padding costs more. Otherwise the padding share and the token budget
        decide (``batching.rows_within_limits``). ``packed`` (rows packed in one unpadded row,
        ``hf_packed``): packs of up to ``pack_tokens`` tokens (``hf_packed.plan_packs``).
        """
        if packed:  # unpadded rows: only the token budget of a pack (hf_packed)
            firsts: dict[int, int] = {}

            def pack_rule(rest: Sequence[Any], n: int) -> int:
                start = len(widths) - len(rest)
                if start not in firsts:  # the plan from here (the batcher may have cut a pack short)
                    at = start
                    for size in plan_packs(widths[start:], self.pack_tokens):
                        firsts[at] = size
                        at += size
                return min(n, firsts[start])

            return pack_rule
        if self.scoring_cost is None:
            return lambda rest, n: rows_within_limits(widths[len(widths) - len(rest) :][:n], self.max_batch_tokens,
                                                      self.max_padding_fraction)
        plan = plan_scoring_batches(widths, prefixes, max_rows=self._loglik_batches.size,
                                    max_tokens=self.max_batch_tokens, cost=self.scoring_cost)
        return lambda rest, n: min(n, plan[len(widths) - len(rest)])

    def _forward_logits(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor, keep: int,
        cache: Any = None,
    ) -> torch.Tensor:
        """Logits of the last ``keep`` positions, (B, keep, V); ``cache``: key/value state of a prefix."""
        kwargs: dict[str, Any] = dict(
            input_ids=input_ids.to(self.device),
            attention_mask=attention_mask.to(self.device),
            position_ids=position_ids.to(self.device),
            use_cache=False,
        )
        if cache is not None:
            kwargs[self._cache_kwarg] = cache
        if self._accepts_logits_to_keep:
            kwargs["logits_to_keep"] = keep
        with torch.inference_mode(), self._adapter_scope(), self.mlp_trim.scope(self._hf_model, keep):
            logits = self.model(**kwargs).logits
        self.stats.forward_passes += 1
        self.stats.padded_tokens += input_ids.numel()
        self.stats.logit_positions += input_ids.shape[0] * keep
        return logits[:, -keep:]

    @staticmethod
    def _token_scores(
        logits: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, targets: torch.Tensor
    ) -> tuple[list[float], list[bool]]:
        """Log-probability of each target and whether it is the argmax, at (row, col) of the logits."""
        dev = logits.device
        picked = logits[rows.to(dev), cols.to(dev)].float()  # (N, V): only the scored positions
        logprobs = torch.log_softmax(picked, dim=-1)
        t = targets.to(dev)[:, None]
        token_lp = logprobs.gather(1, t)[:, 0]
        greedy = picked.argmax(dim=-1) == t[:, 0]
        return token_lp.cpu().tolist(), greedy.cpu().tolist()

    def _score_packed(
        self, batch: Sequence[EncodedRequest], prefix_states: Sequence[Sequence[tuple[torch.Tensor, torch.Tensor]] | None] = ()
    ) -> list[list[ContinuationScore]]:
        """Score packed rows; ``prefix_states[b]``: the cached key/value state of row b's prefix
        (per layer, batch 1; None or missing: the row has no cached prefix)."""
        states = list(prefix_states) or [None] * len(batch)
        if self.packed_forwards:
            return self._score_pack(batch, states)
        lengths = [s[0][0].shape[-2] if s else 0 for s in states]
        packed = pack_after_prefix(batch, lengths, self.pad_id)
        mask, cache = self._attention_after_prefixes(packed.segments, states, lengths)
        logits = self._forward_logits(packed.input_ids, mask, packed.position_ids, packed.keep, cache)
        self.stats.tokens += packed.n_real_tokens
        token_lp, greedy = self._token_scores(logits, packed.rows, packed.cols, packed.targets)
        return self._continuation_scores(batch, packed.owners, token_lp, greedy)

    def _score_pack(self, batch: Sequence[EncodedRequest], states: Sequence[Any]) -> list[list[ContinuationScore]]:
        """``_score_packed`` in one unpadded row (``hf_packed``): each request's packed row (context
        and continuations, ``pack_batch``) after its cached prefix is one segment, attending by its
        tree mask; logits and the last layer's MLP only at the scored positions."""
        owner, lengths, cache = prefixes_for_pack(states, self._hf_model.config)
        seqs, positions, masks, reads, owners, targets = [], [], [], [], [], []
        for b, (r, p) in enumerate(zip(batch, owner)):
            n = lengths[p] if p >= 0 else 0
            row = pack_batch([strip_prefix(r, n)], self.pad_id)  # one row: no padding
            t = row.input_ids.shape[1]
            tree = tree_attention_mask(row.segments, torch.float32)[0, 0] == 0
            masks.append(torch.cat([tree.new_ones((t, n)), tree], dim=1) if n else tree)
            seqs.append(row.input_ids[0].tolist())
            positions.append(row.position_ids[0].tolist())
            reads.append(row.cols + (t - row.keep))  # scored positions within the segment
            owners += [(b, j) for _, j in row.owners]
            targets.append(row.targets)
        ids, position_ids, layout, _ = pack_sequences(seqs, owner, lengths, masks=masks, positions=positions)
        read = torch.cat([seg.start + cols for seg, cols in zip(layout.segments, reads)])
        kept, where = torch.unique(read, sorted=True, return_inverse=True)
        logits = self._forward_pack(ids, position_ids, layout, cache, kept)
        if not self._accepts_logits_to_keep:  # logits at every position
            where = read
        self.stats.logit_positions += logits.shape[1]
        token_lp, greedy = self._token_scores(logits, torch.zeros_like(where), where, torch.cat(targets))
        return self._continuation_scores(batch, owners, token_lp, greedy)

    def _forward_pack(self, ids: torch.Tensor, positions: torch.Tensor, layout: Any, cache: Any,
                      keep: int | torch.Tensor) -> torch.Tensor:
        """One forward over a packed row (``hf_packed``: ``layout`` its segments, ``cache`` its
        prefixes' states, filled by the forward); logits, and the last layer's MLP, only at the
        last ``keep`` positions or the positions of an index tensor ``keep``."""
        keep = keep.to(self.device) if isinstance(keep, torch.Tensor) else keep
        kwargs: dict[str, Any] = {self._cache_kwarg: cache, "use_cache": True}
        if self._accepts_logits_to_keep:
            kwargs["logits_to_keep"] = keep
        with torch.inference_mode(), self._adapter_scope(), packed_forward(self._hf_model, layout), \
                self.mlp_trim.scope(self._hf_model, keep):
            logits = self.model(input_ids=ids.to(self.device), position_ids=positions.to(self.device), **kwargs).logits
        self.stats.forward_passes += 1
        self.stats.padded_tokens += ids.numel()  # a pack has no padding
        self.stats.tokens += ids.numel()
        return logits

    @staticmethod
    def _continuation_scores(batch: Sequence[EncodedRequest], owners: Sequence[tuple[int, int]],
                             token_lp: Sequence[float], greedy: Sequence[bool]) -> list[list[ContinuationScore]]:
        """Per request, its continuations' scores from per-token log-probabilities and argmax hits
        (``owners``: the (request, continuation) of each token)."""
        sums: dict[tuple[int, int], float] = {}
        all_greedy: dict[tuple[int, int], bool] = {}
        for owner, lp, g in zip(owners, token_lp, greedy):
            sums[owner] = sums.get(owner, 0.0) + lp
            all_greedy[owner] = all_greedy.get(owner, True) and g
        return [
            [
                ContinuationScore(
                    logprob=sums[(b, j)],
                    n_tokens=len(cont),
                    n_chars=r.n_chars[j],
                    is_greedy=all_greedy[(b, j)],
                    truncated_tokens=r.truncated_tokens,
                )
                for j, cont in enumerate(r.continuations)
            ]
            for b, r in enumerate(batch)
        ]

    def _attention_after_prefixes(
        self, segments: torch.Tensor, states: Sequence[Any], lengths: Sequence[int]
    ) -> tuple[torch.Tensor, Any]:
        """Attention mask and key/value cache (None: no row has a prefix) for rows continuing
        their cached prefix states (``states[b]``: per-layer keys and values of ``lengths[b]``
        positions, or None): [left padding to the longest prefix | row's prefix | row's
        ``segments``], the mask built on the model's device where it is used."""
        segments = segments.to(self.device)
        if any(lengths):
            return prefix_tree_mask(segments, lengths, self.dtype), self.prefix_cache.stack(states)
        return tree_attention_mask(segments, self.dtype), None

    @property
    def _cache_kwarg(self) -> str:
        """The forward argument that takes a key/value cache ("cache" from transformers 5.2x)."""
        params = inspect.signature(self._hf_model.forward).parameters
        return "cache" if "cache" in params else "past_key_values"

    def _cached_prefix_state(self, prefix: tuple[int, ...]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The prefix's per-layer keys and values, from the engine's prefix cache (computed on a miss)."""
        return self.prefix_cache.get(self.active_adapter, prefix, self._prefix_state)

    def _warm_prefixes(self, prefixes: Iterable[tuple[int, ...]]) -> None:
        """With packed forwards, the states of the distinct ``prefixes`` not in the prefix cache yet
        (at most as many as it keeps), computed together in packed forwards and put there."""
        missing = [p for p in dict.fromkeys(prefixes) if p and not self.prefix_cache.holds(self.active_adapter, p)]
        missing = missing[: self.prefix_cache.max_entries]
        if not self.packed_forwards or len(missing) < 2:
            return
        start = 0
        for size in plan_packs([len(p) for p in missing], self.pack_tokens):
            pack, start = missing[start : start + size], start + size
            owner, _, cache = prefixes_for_pack([None] * len(pack), self._hf_model.config)
            ids, positions, layout, _ = pack_sequences(pack, owner, [])
            self._forward_pack(ids, positions, layout, cache, 1)
            for seg, prefix in zip(layout.segments, pack):
                self.prefix_cache.put(self.active_adapter, prefix, [(layer.keys[:, :, seg.start : seg.end],
                                                                     layer.values[:, :, seg.start : seg.end])
                                                                    for layer in cache.layers])

    def _prefix_state(self, prefix: tuple[int, ...]) -> Any:
        """Run the model over one prefix row and return the filled DynamicCache."""
        from transformers import DynamicCache

        cache = DynamicCache(config=self._hf_model.config)
        ids = torch.tensor([prefix], dtype=torch.long, device=self.device)
        kwargs: dict[str, Any] = {self._cache_kwarg: cache, "use_cache": True}
        if self._accepts_logits_to_keep:
            kwargs["logits_to_keep"] = 1
        with torch.inference_mode(), self._adapter_scope(), self.mlp_trim.scope(self._hf_model, 1):
            self.model(input_ids=ids, position_ids=torch.arange(len(prefix), device=self.device)[None], **kwargs)
        self.stats.forward_passes += 1
        self.stats.tokens += len(prefix)
        self.stats.padded_tokens += len(prefix)
        return cache

    def _score_sequences(self, batch: Sequence[tuple[EncodedRequest, int]]) -> list[ContinuationScore]:
        """Classic scoring: every context + continuation is its own left-padded row."""
        seqs = [r.context + r.continuations[j][:-1] for r, j in batch]
        ids, mask, positions = left_pad(seqs, self.pad_id)
        keep = max(len(r.continuations[j]) for r, j in batch)
        logits = self._forward_logits(ids, mask, positions, keep)
        self.stats.tokens += sum(len(s) for s in seqs)
        rows, cols, targets = [], [], []
        for b, (r, j) in enumerate(batch):
            cont = r.continuations[j]
            # the last len(cont) positions of the row predict the continuation's tokens
            rows += [b] * len(cont)
            cols += range(keep - len(cont), keep)
            targets += cont
        token_lp, greedy = self._token_scores(logits, torch.tensor(rows), torch.tensor(cols), torch.tensor(targets))
        out, k = [], 0
        for r, j in batch:
            n = len(r.continuations[j])
            out.append(
                ContinuationScore(
                    logprob=sum(token_lp[k : k + n]),
                    n_tokens=n,
                    n_chars=r.n_chars[j],
                    is_greedy=all(greedy[k : k + n]),
                    truncated_tokens=r.truncated_tokens,
                )
            )
            k += n
        return out
