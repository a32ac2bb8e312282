"""The Hugging Face engine: a local causal LM (transformers), optionally with PEFT adapters.

Log-likelihoods use prefix sharing (see prefix_sharing.py): one packed row per request,
so a question's prompt is computed once however many choices it has, and letter-mode
questions ("a".."e" after "答え：") cost one forward over the prompt. Rows of several
requests are batched (longest first, padded, order restored). Generation is left-padded
batched ``model.generate``; greedy by default. Requests (and prompts) that share a long
token prefix, such as the instruction header and shared few-shot exemplars, start from
that prefix's key/value state, computed once (prefix_cache.py).

Model references are a local directory or a hub id, loaded the same way (hf_loading.py):
AutoTokenizer / AutoModelForCausalLM, or AutoProcessor / AutoModelForImageTextToText when the
config describes a vision-language model, whose image items go through hf_vision.py. PEFT
adapters are applied without merging, several may be loaded on one base and switched with
``use_adapter`` (hf_adapters.py).
"""

from __future__ import annotations

import inspect
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from jmedllm.engines.adapters import AdapterInfo, commit_of
from jmedllm.engines.base import Capabilities, EngineStats
from jmedllm.engines.hf_adapters import HFAdapterMixin
from jmedllm.engines.hf_generate import HFGenerationMixin
from jmedllm.engines.hf_loading import (  # noqa: F401  (re-exported)
    DTYPES, ModelLoadError, context_length_of, resolve_device, resolve_dtype,
)
from jmedllm.engines.hf_vision import HFVisionMixin
from jmedllm.engines.hf_scoring import HFScoringMixin
from jmedllm.engines.hf_decode_groups import ScratchPool, kv_bytes_per_token, row_groups_are_exact
from jmedllm.engines.hf_packed import PACK_TOKENS, packing_is_exact
from jmedllm.engines.hf_trim import UnreadMLPTrim
from jmedllm.engines.batching import AdaptiveBatcher, DecodeCost, attention_pair_cost
from jmedllm.engines.prefix_cache import (
    DEFAULT_MIN_PREFIX_TOKENS, PrefixKVCache,
)

#: attention implementations that take a custom 4D mask as given (others: per-sequence scoring)
TREE_MASK_ATTENTION = ("sdpa", "eager")
#: a memory guard: rows per batch are limited so that rows x padded width stays under this
DEFAULT_MAX_BATCH_TOKENS = 16384
#: a memory guard of the static key/value cache one CPU decode batch fills (hf_generate)
DEFAULT_MAX_CACHE_BYTES = 4 << 30


class HFEngine(HFAdapterMixin, HFVisionMixin, HFScoringMixin, HFGenerationMixin):
    """A transformers causal LM behind the engine protocol (see engines/base.py).

    Args:
        model: local model directory or hub id.
        adapter: a PEFT adapter directory, or a mapping name -> directory to load several on
            the one base; the first is active. Adapters are never merged into the weights.
        dtype: "auto" (float32 on CPU, bfloat16/float16 on CUDA), "float32", "bfloat16", "float16".
        device: "auto" (cuda if available, else cpu), or a torch device string.
        batch_size: rows per forward (int), or "auto": start at 64 and halve on out-of-memory.
        max_length: context length in tokens; default from the model config.
        max_batch_tokens: memory guard, rows x padded width per batch (at least one row).
        max_cache_bytes: memory guard of a CPU decode batch's static key/value cache (rows x
            padded width x the model's key/value bytes per token; default 4 GiB).
        pack_tokens: CPU: tokens per packed forward (a call's sequences one after another in an
            unpadded row, attention per sequence; ``hf_packed``), when the model passes the check.
        max_padding_fraction: log-likelihood batches stop growing when padding would exceed
            this share of their tokens (None: memory only); "auto": on CPU the cheapest plan
            under the engine's cost model (a forward's fixed cost against padded tokens,
            ``batching.plan_scoring_batches``), memory only on GPU.
        loglik_strategy: "auto" (shared prefix when the attention implementation takes a
            custom 4D mask, else per sequence), "shared_prefix", or "per_sequence" (each
            context + continuation its own row, the classic way; kept as fallback and baseline).
        attn_implementation: passed to from_pretrained (default: transformers' choice, sdpa).
        prefix_cache_min_tokens: requests whose contexts share at least this many leading
            tokens (instruction header, shared few-shot exemplars) reuse one computed key/value
            state of that prefix (prefix_cache.py); 0 switches the prefix cache off.
        static_generation_cache: generate into a preallocated key/value cache written in place
            (transformers' StaticCache, prefilled with a cached prefix) instead of a dynamic cache
            that copies itself at every step; "auto": on CPU for text models without a sliding window.
        keep_decode_storage: CPU generation keeps its decode caches' storage (at most one
            decode batch's, ``max_cache_bytes``) for the next batch and call, which then writes
            into memory already paged in (``hf_decode_groups.ScratchPool``); False frees it when
            each ``generate`` call returns. ``release_memory()`` frees it (and the prefix cache) at any time.
        trust_remote_code, revision: passed to from_pretrained.
        check_adapter_base: refuse adapters whose recorded base evidently differs.
    """

    kind = "hf"

    def __init__(
        self,
        model: str | Path,
        *,
        adapter: str | Path | Mapping[str, str | Path] | None = None,
        dtype: str | torch.dtype = "auto",
        device: str | torch.device = "auto",
        batch_size: int | str = "auto",
        max_length: int | None = None,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
        max_padding_fraction: float | str | None = "auto",
        loglik_strategy: str = "auto",
        attn_implementation: str | None = None,
        trust_remote_code: bool = False,
        revision: str | None = None,
        check_adapter_base: bool = True,
        chat_template_kwargs: Mapping[str, Any] | None = None,
        device_map: str | None = None,
        max_memory: str | Mapping[str, Any] | None = None,
        quantize: str | None = None,
        prefix_cache_min_tokens: int = DEFAULT_MIN_PREFIX_TOKENS,
        static_generation_cache: bool | str = "auto",
        max_cache_bytes: int = DEFAULT_MAX_CACHE_BYTES,
        pack_tokens: int = PACK_TOKENS,
        keep_decode_storage: bool = True,
    ) -> None:
        if loglik_strategy not in ("auto", "shared_prefix", "per_sequence"):
            raise ValueError(f"loglik_strategy must be auto, shared_prefix or per_sequence, got {loglik_strategy!r}")
        self.model_ref = str(model)
        self.revision = revision
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.batch_size_option = batch_size
        self._loglik_batches = AdaptiveBatcher(batch_size)
        self._generate_batches = AdaptiveBatcher(batch_size)
        self.max_batch_tokens = int(max_batch_tokens)
        #: CPU: generation batches planned by cost (batching.DecodeCost); GPU: by memory only
        self.generation_cost = DecodeCost() if self.device.type == "cpu" else None
        #: CPU with max_padding_fraction "auto": log-likelihood forwards planned by the same cost
        #: model (its attention term set for the model once loaded); else the padding / memory rule
        self.scoring_cost = self.generation_cost if max_padding_fraction == "auto" else None
        self.max_padding_fraction = None if max_padding_fraction == "auto" else max_padding_fraction
        self.check_adapter_base = check_adapter_base
        self.stats = EngineStats()
        self.chat_template_kwargs = dict(chat_template_kwargs or {})  # e.g. {"enable_thinking": False}
        self.placement = {"device_map": device_map, "max_memory": max_memory, "quantize": quantize}
        self.prefix_cache_min_tokens = int(prefix_cache_min_tokens)
        self.prefix_cache = PrefixKVCache()
        self.processor: Any = None  # a vision-language model's AutoProcessor (set by _load)

        self.tokenizer, self._hf_model = self._load(attn_implementation, trust_remote_code)
        if device_map or quantize:  # spread or quantised: inputs go where the embeddings are
            from jmedllm.engines.hf_loading import input_device

            self.device = input_device(self._hf_model)
        config = self._hf_model.config
        self.max_length = int(max_length) if max_length else context_length_of(config, self.tokenizer)
        self.n_parameters = sum(p.numel() for p in self._hf_model.parameters())
        self.mlp_trim = UnreadMLPTrim(self._hf_model)  # the last layer's MLP only where logits are read
        if self.scoring_cost is not None:
            text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
            layers, hidden = getattr(text_config, "num_hidden_layers", None), getattr(text_config, "hidden_size", None)
            if layers and hidden:
                self.scoring_cost = replace(self.scoring_cost,
                                            attention_pair=attention_pair_cost(layers, hidden, self.n_parameters))
        self.attn_implementation = getattr(config, "_attn_implementation", None)
        if loglik_strategy == "auto":
            loglik_strategy = "shared_prefix" if self.attn_implementation in TREE_MASK_ATTENTION else "per_sequence"
        elif loglik_strategy == "shared_prefix" and self.attn_implementation not in TREE_MASK_ATTENTION:
            raise ValueError(
                f"shared_prefix scoring needs attention taking a custom 4D mask ({', '.join(TREE_MASK_ATTENTION)}), "
                f"the model uses {self.attn_implementation!r}"
            )
        self.loglik_strategy = loglik_strategy
        self._sliding_window = self._active_sliding_window(config)
        #: generation writes keys/values into a preallocated cache (CPU, no sliding window): see hf_generate
        self.static_generation_cache = (
            static_generation_cache if static_generation_cache != "auto"
            else self.device.type == "cpu" and self._sliding_window is None and self.processor is None
        )
        self._accepts_logits_to_keep = "logits_to_keep" in inspect.signature(self._hf_model.forward).parameters
        #: tokens one CPU decode batch's static cache may hold (rows x padded width; max_cache_bytes)
        self.max_cache_bytes = int(max_cache_bytes)
        self.max_cache_tokens = max(1, self.max_cache_bytes // kv_bytes_per_token(config, self.dtype))
        #: ragged generation decodes with attention per group of rows of similar length (hf_decode_groups)
        self.decode_by_row_groups = bool(self.static_generation_cache) and row_groups_are_exact(
            self._hf_model, self._cache_kwarg)
        #: CPU float32 decode attention by a kernel reading each row's own columns (cpu_decode_attention)
        self.decode_kernel, self.decode_kernel_unavailable = self._exact_decode_kernel()
        self.decode_attention_kernel = self.decode_kernel is not None  # False: SDPA per row group
        self.decode_pool = ScratchPool()  # their caches' storage, kept between decode batches and calls
        self.keep_decode_storage = bool(keep_decode_storage)  # False: freed when each generate call returns
        self.retire_finished_rows = True  # greedy ragged generation: finished rows leave the batch (hf_retire)
        #: CPU: prompts prefilled and scoring rows computed packed in unpadded rows (hf_packed)
        self.packed_forwards = (self.device.type == "cpu" and self._sliding_window is None and self.processor is None
                                and packing_is_exact(self._hf_model, self._cache_kwarg))
        if int(pack_tokens) < 1:
            raise ValueError(f"pack_tokens must be >= 1, got {pack_tokens}")
        self.pack_tokens = int(pack_tokens)

        self._bos_id, self._add_bos = self._bos_convention()
        self.pad_id = self._first_id(self.tokenizer.pad_token_id, self.tokenizer.eos_token_id, 0)
        self._eos_ids = self._eos_token_ids()
        start = self._first_id(self._bos_id, self.tokenizer.eos_token_id)
        self._start_ids: tuple[int, ...] = (start,) if start is not None else ()

        self._peft: Any = None
        self._adapters: dict[str, AdapterInfo] = {}
        self.active_adapter: str | None = None
        if adapter is not None:
            items = adapter.items() if isinstance(adapter, Mapping) else [(None, adapter)]
            for i, (name, path) in enumerate(items):
                self.load_adapter(path, name=name, activate=(i == 0))

    # ------------------------------------------------------------------ loading

    def _load(self, attn_implementation: str | None, trust_remote_code: bool) -> tuple[Any, Any]:
        from jmedllm.engines.hf_loading import load_pretrained, placement_kwargs

        model_kwargs = placement_kwargs(self.device, self.dtype, attn_implementation=attn_implementation,
                                        **self.placement)
        tokenizer, model, self.processor = load_pretrained(self.model_ref, revision=self.revision,
                                                           trust_remote_code=trust_remote_code,
                                                           model_kwargs=model_kwargs)
        if self.device.type == "cpu" and not self.placement["device_map"]:
            model.to(self.device)
        model.eval()
        return tokenizer, model

    @staticmethod
    def _first_id(*candidates: Any) -> int | None:
        for c in candidates:
            if isinstance(c, int):
                return c
        return None

    def _bos_convention(self) -> tuple[int | None, bool]:
        """Whether the tokenizer prepends BOS by default (Llama) or not (Qwen2, GPT-2)."""
        bos = self.tokenizer.bos_token_id
        with_special = self.tokenizer("a").input_ids
        without = self.tokenizer("a", add_special_tokens=False).input_ids
        adds_bos = bos is not None and len(with_special) > len(without) and with_special[0] == bos
        return bos, adds_bos

    def _eos_token_ids(self) -> list[int]:
        ids: list[int] = []
        gen_eos = getattr(getattr(self._hf_model, "generation_config", None), "eos_token_id", None)
        for value in (gen_eos, self.tokenizer.eos_token_id):
            for v in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(v, int) and v not in ids:
                    ids.append(v)
        return ids

    @staticmethod
    def _active_sliding_window(config: Any) -> int | None:
        # a vision-language model keeps its language model's settings in its text config
        config = config.get_text_config() if hasattr(config, "get_text_config") else config
        window = getattr(config, "sliding_window", None)
        if not isinstance(window, int) or window <= 0 or getattr(config, "use_sliding_window", True) is False:
            return None
        layer_types = getattr(config, "layer_types", None)
        if layer_types is not None and "sliding_attention" not in layer_types:
            return None
        return window

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` with the model's BOS convention, never an EOS.

        BOS is prepended when the tokenizer does so by default, unless the text already
        starts with the BOS string (a chat template that writes it).
        """
        ids = self.tokenizer(text, add_special_tokens=False).input_ids
        if self._add_bos and not text.startswith(self.tokenizer.bos_token or "\0"):
            return [self._bos_id, *ids]
        return list(ids)

    # ------------- adapters: hf_adapters.py; log-likelihood and generation: hf_scoring.py, hf_generate.py

    @property
    def supports(self) -> Capabilities:
        """A causal LM is text-only; a vision-language model also takes image items (hf_vision.py)."""
        return Capabilities(images=self.processor is not None)

    def format_chat(self, messages: Sequence[dict[str, Any]], add_generation_prompt: bool = True) -> str:
        """Render messages with the tokenizer's chat template (raises if the model has none);
        a vision-language model renders with its processor's template, image parts included."""
        if self.processor is not None:
            return self._format_vision_chat(messages, add_generation_prompt)
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(
                f"model {self.model_ref} has no chat template (tokenizer.chat_template is empty); "
                "use a plain-text prompt format for this model"
            )
        return self.tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=add_generation_prompt, **self.chat_template_kwargs
        )

    def _exact_decode_kernel(self) -> tuple[Any, str | None]:
        """The CPU decode attention kernel when it builds here and is exact on this model, and
        why not otherwise: (kernel, None), (None, reason), or (None, None) off CPU float32 row groups."""
        if not (self.decode_by_row_groups and self.device.type == "cpu" and self.dtype == torch.float32):
            return None, None
        from jmedllm.engines import cpu_decode_attention

        kernel = cpu_decode_attention.load()
        if kernel is None:
            return None, cpu_decode_attention.unavailable_reason()
        if not row_groups_are_exact(self._hf_model, self._cache_kwarg, kernel):
            return None, "the exactness check on this model failed"
        return kernel, None

    def _active_decode_kernel(self) -> Any:
        """The kernel decode steps use now (None: SDPA per row group)."""
        return self.decode_kernel if self.decode_attention_kernel else None

    def release_memory(self) -> int:
        """Free what the engine keeps between calls: the decode caches' storage (CPU generation)
        and the prefix cache's key/value states. Returns the bytes released; the next call
        computes or allocates them again (same results)."""
        released = self.decode_pool.nbytes + self.prefix_cache.nbytes
        self.decode_pool.clear()
        self.prefix_cache.clear()
        return released

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable identity of what computes the scores (recorded in every run)."""
        import peft
        import transformers

        config = self._hf_model.config
        local = Path(self.model_ref).expanduser()
        return {
            "kind": self.kind,
            "model": self.model_ref,
            "model_path": str(local.resolve()) if local.exists() else None,
            "revision": commit_of(self.model_ref, self.revision) or self.revision,
            "config_class": type(config).__name__,
            "model_type": getattr(config, "model_type", None),
            "architectures": list(getattr(config, "architectures", None) or []),
            "processor": type(self.processor).__name__ if self.processor is not None else None,
            "n_parameters": self.n_parameters,
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": str(self.device),
            "quantize": self.placement["quantize"],
            "chat_template_kwargs": self.chat_template_kwargs,
            "attn_implementation": self.attn_implementation,
            "loglik_strategy": self.loglik_strategy,
            "max_length": self.max_length,
            "batch_size": self.batch_size_option,
            "batch_size_now": {"loglik": self._loglik_batches.size, "generate": self._generate_batches.size},
            "max_batch_tokens": self.max_batch_tokens,
            "max_cache_bytes": self.max_cache_bytes,
            "max_padding_fraction": self.max_padding_fraction,
            "static_generation_cache": self.static_generation_cache,
            "generation_cost": asdict(self.generation_cost) if self.generation_cost else None,
            "scoring_cost": asdict(self.scoring_cost) if self.scoring_cost else None,
            "last_mlp_on_read_positions_only": self.mlp_trim.exact,
            "decode_attention_by_row_groups": self.decode_by_row_groups,
            "decode_attention_kernel": self.decode_attention_kernel,
            "decode_attention_kernel_unavailable": self.decode_kernel_unavailable,
            "packed_forwards": self.packed_forwards,
            "retire_finished_rows": self.retire_finished_rows,
            "pack_tokens": self.pack_tokens,
            "keep_decode_storage": self.keep_decode_storage,
            "tokenizer_adds_bos": self._add_bos,
            "eos_token_ids": list(self._eos_ids),
            "adapters": [info.as_dict() for info in self._adapters.values()],
            "active_adapter": self.active_adapter,
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
        }
