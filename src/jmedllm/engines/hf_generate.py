"""Generation for the Hugging Face engine: left-padded batched ``model.generate`` in length
buckets, stop strings, prompts starting from a cached shared prefix."""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import torch

from jmedllm.engines.batching import plan_generation_batches, rows_within_limits
from jmedllm.engines.prefix_cache import group_ids_for_generation
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

        # prompts sharing a prefix (header, shared exemplars) start from its cached key/value state
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
        self.stats.seconds += time.perf_counter() - t0
        return results  # type: ignore[return-value]

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

    def _generation_config(self, params: GenerationParams) -> Any:
        from transformers import GenerationConfig

        sample = params.temperature > 0
        options: dict[str, Any] = {}
        if sample:  # top_k=0 switches off the library's default top-k of 50
            options = dict(temperature=params.temperature, top_p=params.top_p, top_k=0)
        return GenerationConfig(
            max_new_tokens=params.max_new_tokens,
            do_sample=sample,
            eos_token_id=self._eos_ids or None,
            pad_token_id=self.pad_id,
            bos_token_id=self._bos_id,
            stop_strings=[s for s in params.stop if s] or None,
            **options,
        )

    def _generate_batch(
        self, batch: Sequence[tuple[int, list[int], int]], params: GenerationParams, prefix: tuple[int, ...] = ()
    ) -> list[Completion]:
        p = len(prefix)
        ids, mask, _ = left_pad([b[1][p:] for b in batch], self.pad_id)
        extra: dict[str, Any] = {}
        layers = self.prefix_cache.get(self.active_adapter, prefix, self._prefix_state) if p else None
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

    def _run_generate(self, params: GenerationParams, **inputs: Any) -> torch.Tensor:
        """``model.generate`` on ``inputs`` decoding exactly by ``params``.

        Model defaults fill every generate() option left unset; a neutral generation config in
        the model's place keeps decoding to ``params`` (see ``generate``'s docstring).
        """
        from transformers import GenerationConfig

        config = self._generation_config(params)
        hf = self._hf_model
        saved = hf.generation_config
        hf.generation_config = GenerationConfig(
            eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id, bos_token_id=config.bos_token_id
        )
        try:
            with torch.inference_mode(), self._adapter_scope():
                return self.model.generate(
                    **inputs, generation_config=config, tokenizer=self.tokenizer if params.stop else None
                )
        finally:
            hf.generation_config = saved

    def _finish(self, tokens: list[int], prompt_ids: list[int], cut: int, params: GenerationParams) -> Completion:
        """Cut one generated row at EOS or the first stop string; count its tokens."""
        n = len(tokens)
        reason = "length"
        for k, t in enumerate(tokens):
            if t in self._eos_ids:
                n, reason = k + 1, "stop"
                break
        body = tokens[: n - 1] if reason == "stop" else tokens[:n]
        text = self.tokenizer.decode(body, skip_special_tokens=False)
        hits = [text.find(s) for s in params.stop if s and s in text]
        if hits:
            text = text[: min(hits)]
            reason = "stop"
        return Completion(
            text=text,
            n_prompt_tokens=len(prompt_ids),
            n_completion_tokens=n,
            finish_reason=reason,
            truncated_tokens=cut,
        )
