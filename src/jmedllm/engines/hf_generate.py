"""Generation for the Hugging Face engine: left-padded batched ``model.generate`` in length
buckets, stop strings, prompts starting from a cached shared prefix."""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator, Sequence

import torch

from jmedllm.engines.batching import plan_generation_batches, plan_scoring_batches, rows_within_limits
from jmedllm.engines.hf_decode_groups import (decode_row_groups, growing_static_cache, per_row_groups, plan_row_groups,
                                              zero_group_padding)
from jmedllm.engines.hf_packed import pack_sequences, plan_packs, prefixes_for_pack
from jmedllm.engines.hf_retire import finished_rows_criterion, keep_cache_rows, retirable, worth_retiring
from jmedllm.engines.prefix_cache import HeldPrefixStates, group_ids_by_prefix, group_ids_for_generation
from jmedllm.engines.prefix_sharing import left_pad
from jmedllm.schema import Completion, GenerationParams


class HFGenerationMixin:
    """The ``generate`` half of :class:`jmedllm.engines.hf.HFEngine`."""

    def generate(self, prompts: Sequence[str], params: GenerationParams) -> list[Completion]:
        """One completion per prompt, in order (left-padded batches, longest first).

        Greedy when ``params.temperature == 0``; else sampling with temperature and top_p,
        seeded with ``params.seed`` (torch's global generator). Only ``params`` and the
        model's EOS / pad ids steer decoding: sampling or repetition defaults in the model's
        generation_config are deliberately not applied, so runs compare across models.
        Prompts longer than ``max_length - max_new_tokens`` lose tokens from the left
        (reported in ``truncated_tokens``). Text is cut before the first stop string;
        ``n_completion_tokens`` counts generated tokens up to and including EOS / the stop.
        """
        if params.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {params.max_new_tokens}")
        room = self.max_length - params.max_new_tokens
        if room < 1:
            raise ValueError(f"max_new_tokens={params.max_new_tokens} leaves no room for a prompt in max_length={self.max_length}")
        t0 = time.perf_counter()
        items: list[tuple[int, list[int], int]] = []
        for i, prompt in enumerate(prompts):
            ids = self.encode(prompt) or list(self._start_ids)
            cut = max(0, len(ids) - room)
            items.append((i, ids[cut:], cut))
        items.sort(key=lambda it: -len(it[1]))
        results: list[Completion | None] = [None] * len(items)
        if params.temperature > 0:
            torch.manual_seed(params.seed)

        def store(batch: Sequence[tuple[int, list[int], int]], outs: Sequence[Completion]) -> None:
            for (i, _, _), c in zip(batch, outs):
                results[i] = c

        if self.static_generation_cache and self.generation_cost is not None:
            # CPU: every prompt but its last token prefilled without padding, then decoded together
            try:
                self._generate_batches.run(items, lambda batch: self._generate_ragged(batch, params), store,
                                           max_items=self._decode_batch_rule(items, params.max_new_tokens))
            finally:
                if not self.keep_decode_storage:
                    self.decode_pool.clear()
        else:
            self._generate_padded(items, params, store)
        self.stats.seconds += time.perf_counter() - t0
        return results  # type: ignore[return-value]

    def _generate_padded(
        self, items: Sequence[tuple[int, list[int], int]], params: GenerationParams,
        store: Callable[[Sequence[tuple[int, list[int], int]], Sequence[Completion]], None],
    ) -> None:
        """Left-padded batches per prefix group; prompts sharing a prefix (header, shared
        exemplars) start from its cached key/value state."""
        cost = self.generation_cost
        budget = cost.forward + params.max_new_tokens * cost.step if cost is not None else 0.0
        for prefix, members in group_ids_for_generation([it[1] for it in items], self.prefix_cache_min_tokens, budget):
            group = sorted((items[k] for k in members), key=lambda it: -len(it[1]))
            self._generate_batches.run(
                group,
                lambda batch, prefix=prefix: self._generate_batch(batch, params, prefix),
                store,
                max_items=self._generation_batch_rule(group, len(prefix), params.max_new_tokens),
            )

    def _generation_batch_rule(
        self, group: Sequence[tuple[int, list[int], int]], p: int, new_tokens: int
    ) -> Callable[[Sequence[Any], int], int]:
        """How many of the remaining prompts of ``group`` (sorted longest first) the next batch takes.

        On CPU, the cheapest plan under the engine's decode cost model
        (``batching.plan_generation_batches``): a padded prompt position costs a forward's
        worth of work at prefill, but every extra batch repeats all its decode steps, whose
        cost is mostly fixed per step. Elsewhere, batches are limited by memory only.
        """
        if self.generation_cost is None:
            return lambda rest, n: rows_within_limits([len(r[1]) - p + new_tokens for r in rest[:n]],
                                                      self.max_batch_tokens, None)
        plan = plan_generation_batches([len(it[1]) - p for it in group], new_tokens, context=p,
                                       max_rows=self._generate_batches.size, max_tokens=self.max_batch_tokens,
                                       cost=self.generation_cost)
        return lambda rest, n: min(n, plan[len(group) - len(rest)])

    def _decode_batch_rule(self, items: Sequence[tuple[int, list[int], int]], new_tokens: int) -> Callable[[Sequence[Any], int], int]:
        """Decode batches of the ragged path (prompts sorted longest first): the cheapest plan
        of decode steps alone (``plan_generation_batches(prefill=False)``), since prefill does
        not depend on how prompts are grouped for decoding."""
        plan = plan_generation_batches([len(it[1]) for it in items], new_tokens, max_rows=self._generate_batches.size,
                                       max_tokens=self.max_cache_tokens, cost=self.generation_cost, prefill=False,
                                       own_widths=self.decode_by_row_groups)
        return lambda rest, n: min(n, plan[len(items) - len(rest)])

    def _generate_ragged(self, batch: Sequence[tuple[int, list[int], int]], params: GenerationParams) -> list[Completion]:
        """Generate for ``batch`` from a static cache holding every prompt but its last token.

        The prompts' key/value states are computed by ``_prefill_states`` in forwards planned
        without regard to decoding (rows of similar length together, each from its cached
        prefix) and copied once, right-aligned, into one StaticCache; ``model.generate`` then
        runs the last prompt token of every row and the decode steps, left padding masked as
        usual. A prompt's tokens pass through the model once either way; only float rounding
        differs from computing the batch in one piece (tests/engines/test_prefix_cache.py).
        With ``decode_by_row_groups``, decode attention runs per group of rows of similar
        length and reads only filled columns (``hf_decode_groups``); with greedy decoding,
        rows that finished leave the batch when that pays (``_decode_retiring``, ``hf_retire``).
        """
        seqs = [ids for _, ids, _ in batch]
        ids, mask, _ = left_pad(seqs, self.pad_id)
        cached = ids.shape[1] - 1  # every row's state ends at this column: its last token comes next
        size, groups = ids.shape[1] + params.max_new_tokens, None
        if self.decode_by_row_groups:  # rows sorted longest first; a group reads from its longest row's first column
            cache = growing_static_cache(self._hf_model.config, size, self.decode_pool)
            groups = self._row_groups(seqs, ids.shape[1])
        else:
            cache = self.prefix_cache.static([], len(batch), size, self._hf_model.config)
        buffers: list[tuple[torch.Tensor, torch.Tensor]] = []
        for row, layers in self._prefill_states([s[:-1] for s in seqs]):
            if not buffers and groups is not None:  # storage unwritten; the first `cached` positions count as filled
                buffers = [layer.reserve(len(batch), *pieces[0], cached) for layer, pieces in zip(cache.layers, layers)]
                zero_group_padding(buffers, groups, seqs, ids.shape[1])
            elif not buffers:  # the cache's storage, its first `cached` positions counted as filled (zeros)
                for layer, pieces in zip(cache.layers, layers):
                    k, v = pieces[0]
                    buffers.append(layer.update(k.new_zeros(()).expand(len(batch), k.shape[1], cached, k.shape[-1]),
                                                v.new_zeros(()).expand(len(batch), v.shape[1], cached, v.shape[-1])))
            end = cached - sum(k.shape[-2] for k, _ in layers[0])
            for (keys, values), pieces in zip(buffers, layers):
                start = end
                for k, v in pieces:
                    keys[row, :, start : start + k.shape[-2]] = k[0]
                    values[row, :, start : start + v.shape[-2]] = v[0]
                    start += k.shape[-2]
        new = self._decode_retiring(seqs, ids, mask, cache, groups, params)
        completions = [self._finish(tokens, prompt_ids, cut, params) for (_, prompt_ids, cut), tokens in zip(batch, new)]
        self.stats.tokens += len(batch) + sum(max(0, c.n_completion_tokens - 1) for c in completions)
        self.stats.generated_tokens += sum(c.n_completion_tokens for c in completions)
        return completions

    def _row_groups(self, seqs: Sequence[Sequence[int]], width: int) -> list[tuple[int, int, int]]:
        """Decode row groups (first row, end row, first column) of left-padded ``seqs`` (longest
        first): one per row for the decode attention kernel, else planned by cost."""
        if self._active_decode_kernel() is not None:
            return per_row_groups([len(s) for s in seqs], width)
        return [(a, b, width - len(seqs[a])) for a, b in plan_row_groups([len(s) for s in seqs])]

    def _decode_retiring(self, seqs: Sequence[Sequence[int]], ids: torch.Tensor, mask: torch.Tensor, cache: Any,
                         groups: list[tuple[int, int, int]] | None, params: GenerationParams) -> list[list[int]]:
        """Per row of ``ids`` (``seqs`` left-padded; ``cache`` holds all but each row's last token),
        its generated tokens. With greedy decoding on CPU, a ``generate`` call ends early once
        enough rows have met EOS or a stop string (``hf_retire``): the rest continue in a new call,
        their cache rows moved to the front, from the same state."""
        width, left = ids.shape[1], params.max_new_tokens
        live = list(range(len(seqs)))  # rows still decoding, in cache order
        out_tokens: list[list[int]] = [[] for _ in seqs]
        stops = self._stop_criterion(params)  # built once for the batch's generate calls
        can_retire = (self.retire_finished_rows and params.temperature == 0 and self.generation_cost is not None
                      and retirable(cache))
        while True:
            context = sum(len(seqs[r]) for r in live) / len(live) + params.max_new_tokens - left
            rows, budget, cost = len(live), left, self.generation_cost
            rule = (lambda finished, steps: worth_retiring(finished, rows, budget - steps, context + steps, cost)
                    ) if can_retire else None
            criterion = finished_rows_criterion(self._eos_ids, stops, rule)
            with decode_row_groups(self._hf_model, groups, self._active_decode_kernel()):
                out = self._run_generate(params, input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                         criteria=criterion, max_new_tokens=left, **{self._cache_kwarg: cache})
            new = out[:, ids.shape[1] :].cpu()
            steps = new.shape[1]
            for k, row in enumerate(live):
                out_tokens[row] += new[k].tolist()
            self.stats.forward_passes += steps
            self.stats.padded_tokens += len(live) * steps
            self.stats.logit_positions += len(live) * steps
            left -= steps
            if not criterion.ended_early or left < 1:
                return out_tokens
            keep = [k for k in range(len(live)) if not bool(criterion.done[k])]
            live = [live[k] for k in keep]
            keep_cache_rows(cache, keep, [width - len(seqs[r]) for r in live])
            self.stats.retired_rows += len(new) - len(keep)
            ids, mask = torch.cat([ids, new], dim=1)[keep], torch.cat([mask, torch.ones_like(new)], dim=1)[keep]
            if groups is not None:  # regrouped; a new group may read padding no group read before
                remaining = [seqs[r] for r in live]
                groups = self._row_groups(remaining, width)
                zero_group_padding([(layer.keys, layer.values) for layer in cache.layers], groups, remaining, width)

    def _prefill_states(self, seqs: Sequence[Sequence[int]]) -> Iterator[tuple[int, list[list[tuple[torch.Tensor, torch.Tensor]]]]]:
        """Per non-empty sequence i, ``(i, layers)``: its keys and values per layer, as pieces
        (batch 1, in order; views into a forward's cache, to be copied before the next item).

        Sequences sharing a prefix worth caching start from its cached state (``prefix_cache``);
        the rest of each is computed in forwards planned like log-likelihood rows
        (``batching.plan_scoring_batches``): left-padded to the longest of the forward, with a
        causal mask over real tokens only, rows of different prefixes side by side; with
        ``packed_forwards`` (CPU), packed one after another in unpadded rows of up to
        ``pack_tokens`` tokens instead (``hf_packed``), the call's missing prefix states
        computed together first (``_warm_prefixes``).
        """
        present = [i for i, s in enumerate(seqs) if s]
        rows: list[tuple[int, tuple[int, ...]]] = []
        for prefix, members in group_ids_by_prefix([seqs[i] for i in present], self.prefix_cache_min_tokens):
            rows += [(present[k], prefix) for k in members]
        rows.sort(key=lambda row: (-(len(seqs[row[0]]) - len(row[1])), -len(row[1])))
        widths = [len(seqs[i]) - len(prefix) for i, prefix in rows]
        if self.packed_forwards:  # one unpadded row per forward, attention per sequence (hf_packed)
            sizes, forward = plan_packs(widths, self.pack_tokens), self._prefill_pack
        else:
            plan = plan_scoring_batches(widths, [len(prefix) for _, prefix in rows], max_rows=len(rows),
                                        max_tokens=self.max_batch_tokens, cost=self.scoring_cost or self.generation_cost)
            sizes, start, forward = [], 0, self._prefill_chunk
            while start < len(rows):
                sizes.append(plan[start])
                start += plan[start]
        self._warm_prefixes(prefix for _, prefix in rows)
        held = HeldPrefixStates(self._cached_prefix_state)  # for the whole decode batch
        start = 0
        for size in sizes:
            chunk = rows[start : start + size]
            start += size
            prefixes = [held.get(prefix) for _, prefix in chunk]
            for (i, _), layers in zip(chunk, forward([seqs[i] for i, _ in chunk], prefixes)):
                yield i, layers

    def _prefill_chunk(
        self, seqs: Sequence[Sequence[int]], prefixes: Sequence[Any]
    ) -> list[list[list[tuple[torch.Tensor, torch.Tensor]]]]:
        """One forward over the rest of ``seqs`` after their cached ``prefixes`` (per row: per-layer
        state or None); returns each row's whole state (prefix + rest) per layer as pieces: views
        of its real positions in the forward's cache."""
        from transformers import DynamicCache

        lengths = [layers[0][0].shape[-2] if layers else 0 for layers in prefixes]
        suffixes = [list(s[n:]) for s, n in zip(seqs, lengths)]
        ids, real, positions = left_pad(suffixes, self.pad_id)
        positions = positions + torch.tensor(lengths, dtype=torch.long)[:, None]
        mask, cache = self._attention_after_prefixes(torch.where(real.bool(), 0, -1), prefixes, lengths)
        if cache is None:  # no row has a prefix: the forward fills a new cache
            cache = DynamicCache(config=self._hf_model.config)
        kwargs: dict[str, Any] = {self._cache_kwarg: cache, "use_cache": True}
        if self._accepts_logits_to_keep:
            kwargs["logits_to_keep"] = 1
        with torch.inference_mode(), self._adapter_scope(), self.mlp_trim.scope(self._hf_model, 1):
            self.model(input_ids=ids.to(self.device), attention_mask=mask, position_ids=positions.to(self.device), **kwargs)
        self.stats.forward_passes += 1
        self.stats.padded_tokens += ids.numel()
        self.stats.tokens += int(real.sum())
        longest, width = max(lengths), ids.shape[1]  # the cache holds [padded prefixes | padded suffixes]
        out = []
        for row, (n, s) in enumerate(zip(lengths, suffixes)):
            keep = [k for k in (slice(longest - n, longest), slice(longest + width - len(s), longest + width))
                    if k.stop > k.start]
            out.append([[(layer.keys[row : row + 1, :, k], layer.values[row : row + 1, :, k]) for k in keep]
                        for layer in cache.layers])
        return out

    def _prefill_pack(
        self, seqs: Sequence[Sequence[int]], prefixes: Sequence[Any]
    ) -> list[list[list[tuple[torch.Tensor, torch.Tensor]]]]:
        """``_prefill_chunk``'s result from one forward over the rest of ``seqs`` packed in one row
        (``hf_packed``): the distinct cached prefixes first in the cache, each once, then every
        sequence's tokens, attention per sequence, positions its own."""
        owner, lengths, cache = prefixes_for_pack(prefixes, self._hf_model.config)
        suffixes = [list(s[lengths[p]:]) if p >= 0 else list(s) for s, p in zip(seqs, owner)]
        ids, positions, layout, columns = pack_sequences(suffixes, owner, lengths)
        self._forward_pack(ids, positions, layout, cache, 1)
        out = []
        for seg, p in zip(layout.segments, owner):
            keep = [slice(layout.context + seg.start, layout.context + seg.end)]
            if p >= 0:
                keep.insert(0, slice(columns[p], columns[p] + lengths[p]))
            out.append([[(layer.keys[:, :, k], layer.values[:, :, k]) for k in keep if k.stop > k.start]
                        for layer in cache.layers])
        return out

    def _stop_criterion(self, params: GenerationParams) -> Any:
        """transformers' ``StopStringCriteria`` for ``params.stop`` (checked on token ids), or None."""
        stops = [s for s in params.stop if s]
        if not stops:
            return None
        from transformers import StopStringCriteria

        return StopStringCriteria(tokenizer=self.tokenizer, stop_strings=stops)

    def _generation_config(self, params: GenerationParams, max_new_tokens: int | None = None) -> Any:
        from transformers import GenerationConfig

        sample = params.temperature > 0
        options: dict[str, Any] = {}
        if sample:  # top_k=0 switches off the library's default top-k of 50
            options = dict(temperature=params.temperature, top_p=params.top_p, top_k=0)
        return GenerationConfig(
            max_new_tokens=max_new_tokens or params.max_new_tokens,
            do_sample=sample,
            eos_token_id=self._eos_ids or None,
            pad_token_id=self.pad_id,
            bos_token_id=self._bos_id,
            **options,
        )

    def _generate_batch(
        self, batch: Sequence[tuple[int, list[int], int]], params: GenerationParams, prefix: tuple[int, ...] = ()
    ) -> list[Completion]:
        p = len(prefix)
        ids, mask, _ = left_pad([b[1][p:] for b in batch], self.pad_id)
        extra: dict[str, Any] = {}
        layers = self._cached_prefix_state(prefix) if p else None
        if p:  # [prefix | left padding | rest of the prompt]; the prefix's state comes from the cache
            ids = torch.cat([torch.tensor([prefix], dtype=torch.long).expand(len(batch), p), ids], dim=1)
            mask = torch.cat([torch.ones((len(batch), p), dtype=mask.dtype), mask], dim=1)
        if self.static_generation_cache:
            # written in place: a dynamic cache copies all of itself at every decode step, which
            # dominates decoding after a long prompt on CPU (docs/benchmarks.md, "Generation batches")
            extra[self._cache_kwarg] = self.prefix_cache.static(
                layers or [], len(batch), ids.shape[1] + params.max_new_tokens, self._hf_model.config
            )
        elif layers is not None:
            extra[self._cache_kwarg] = self.prefix_cache.expand(layers, len(batch))
        out = self._run_generate(params, input_ids=ids.to(self.device), attention_mask=mask.to(self.device), **extra)
        new = out[:, ids.shape[1] :].cpu().tolist()
        steps = len(new[0]) if new else 0
        completions = [self._finish(tokens, prompt_ids, cut, params) for (_, prompt_ids, cut), tokens in zip(batch, new)]
        self.stats.forward_passes += steps
        self.stats.padded_tokens += ids.numel() + len(batch) * max(0, steps - 1)
        self.stats.logit_positions += len(batch) * steps
        self.stats.tokens += sum(c.n_prompt_tokens + max(0, c.n_completion_tokens - 1) for c in completions)
        self.stats.generated_tokens += sum(c.n_completion_tokens for c in completions)
        return completions

    def _run_generate(self, params: GenerationParams, *, criteria: Any = None, max_new_tokens: int | None = None,
                      **inputs: Any) -> torch.Tensor:
        """``model.generate`` on ``inputs`` decoding exactly by ``params``.

        Model defaults fill every generate() option left unset; a neutral generation config in
        the model's place keeps decoding to ``params`` (see ``generate``'s docstring). Rows stop at
        EOS and at ``params.stop`` through one stopping criterion (``hf_retire.FinishedRows``):
        ``criteria`` when given (it may also end the call early), else one built here.
        ``max_new_tokens``: in place of ``params.max_new_tokens``.
        """
        from transformers import GenerationConfig, StoppingCriteriaList

        config = self._generation_config(params, max_new_tokens)
        if criteria is None:
            criteria = finished_rows_criterion(self._eos_ids, self._stop_criterion(params))
        hf = self._hf_model
        saved = hf.generation_config
        hf.generation_config = GenerationConfig(
            eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id, bos_token_id=config.bos_token_id
        )
        try:
            with torch.inference_mode(), self._adapter_scope():
                return self.model.generate(**inputs, generation_config=config,
                                           stopping_criteria=StoppingCriteriaList([criteria]))
        finally:
            hf.generation_config = saved

    def _finish(self, tokens: list[int], prompt_ids: list[int], cut: int, params: GenerationParams) -> Completion:
        """Cut one generated row at EOS or the first stop string; count its tokens up to and
        including the EOS or the token that completed the stop string (a row that stopped before
        its batch carries tokens after that: padding, or more text)."""
        n = len(tokens)
        reason = "length"
        for k, t in enumerate(tokens):
            if t in self._eos_ids:
                n, reason = k + 1, "stop"
                break
        body = tokens[: n - 1] if reason == "stop" else tokens[:n]
        text = self.tokenizer.decode(body, skip_special_tokens=False)
        stops = [s for s in params.stop if s]
        hits = [text.find(s) for s in stops if s in text]
        if hits:
            text = text[: min(hits)]
            reason = "stop"
            n = next((k for k in range(1, len(body) + 1)
                      if any(s in self.tokenizer.decode(body[:k], skip_special_tokens=False) for s in stops)), len(body))
        return Completion(
            text=text,
            n_prompt_tokens=len(prompt_ids),
            n_completion_tokens=n,
            finish_reason=reason,
            truncated_tokens=cut,
        )
