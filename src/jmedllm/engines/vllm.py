"""The ``vllm`` engine: offline batched inference with vLLM (GPU only).

* generate: one ``LLM.generate`` call per batch of text prompts, one ``LLM.chat`` call for the
  chat messages; images go as vLLM's multimodal chat input (``image_url`` parts with data
  URLs: vLLM's per-model processing places the image tokens), see ``request_plan``.
* adapters: a ``LoRARequest`` per request; several adapters may be loaded
  (``adapter={"name": path, ...}``), the active one chosen with ``use_adapter``.
* parallelism: ``tensor_parallel_size``, ``pipeline_parallel_size`` and ``data_parallel_size``
  are vLLM's own; nothing here distributes work.
* letter mode: the first generated token's top-k log-probs (``SamplingParams(logprobs=k)``).
* loglik: prompt log-probs of context + continuation, token ids built as the HF engine
  builds them; prefix caching is on, so a question's prompt is cached across its choices
  (``prefix_cache_stats`` reads vLLM's counters to check that it hits).
* structured output: ``generate(..., letters=...)`` restricts each answer to its item's labels
  (``LetterChoice.regex``; the runner's --letter-grammar); ``guided_letters=True`` restricts
  every generation to letters.

Nothing here runs without CUDA: the constructor says so clearly. The pure helpers
(``sampling_kwargs``, ``first_token_top``, ``continuation_from_prompt_logprobs``) read the
documented output types (``RequestOutput.outputs[0].logprobs`` / ``.prompt_logprobs``: lists
of ``{token_id: Logprob(logprob, rank, decoded_token)}``) and are tested on CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from jmedllm.engines.base import Capabilities, EngineError, LetterChoice, PromptInput, TopLogprobs
from jmedllm.engines.messages import as_messages, to_openai
from jmedllm.schema import Completion, ContinuationScore, GenerationParams, LoglikRequest

LETTER_REGEX = r"[a-zA-Z](,[a-zA-Z])*"


def sampling_kwargs(params: GenerationParams) -> dict[str, Any]:
    """SamplingParams keyword arguments for a generation (greedy at temperature 0)."""
    kw: dict[str, Any] = {"max_tokens": params.max_new_tokens, "temperature": params.temperature,
                          "top_p": params.top_p, "seed": params.seed}
    if params.stop:
        kw["stop"] = list(params.stop)
    return kw


def first_token_top(output: Any) -> TopLogprobs:
    """The first generated token and its top-k from a CompletionOutput (``.text``, ``.logprobs``)."""
    steps = getattr(output, "logprobs", None)
    if not steps:
        raise EngineError("vLLM returned no log-probs for the first token (SamplingParams.logprobs not set?)")
    top = {}
    for lp in steps[0].values():
        token = lp.decoded_token if lp.decoded_token is not None else ""
        top[token] = max(top.get(token, float("-inf")), float(lp.logprob))  # equal spellings: the likelier
    first_id = output.token_ids[0] if getattr(output, "token_ids", None) else None
    text = steps[0][first_id].decoded_token if first_id in steps[0] else output.text
    return TopLogprobs(text or "", top)


def continuation_from_prompt_logprobs(prompt_logprobs: Sequence[Mapping[int, Any] | None], token_ids: Sequence[int],
                                      n_context: int) -> tuple[float, int, bool]:
    """Sum of the prompt log-probs of ``token_ids[n_context:]``; whether each was rank 1."""
    if len(prompt_logprobs) != len(token_ids):
        raise EngineError(f"vLLM returned {len(prompt_logprobs)} prompt log-probs for {len(token_ids)} tokens")
    total, greedy = 0.0, True
    for pos in range(n_context, len(token_ids)):
        entry = prompt_logprobs[pos]
        if entry is None or token_ids[pos] not in entry:
            raise EngineError(f"vLLM returned no prompt log-prob for position {pos}")
        lp = entry[token_ids[pos]]
        total += float(lp.logprob)
        greedy = greedy and getattr(lp, "rank", 1) == 1
    return total, len(token_ids) - n_context, greedy


@dataclass
class RequestPlan:
    """How one batch goes to vLLM: ``text`` (indices of rendered prompts, to ``LLM.generate``)
    and ``chat`` (indices of message lists, to ``LLM.chat``, as ``messages``)."""

    text: list[int] = field(default_factory=list)
    chat: list[int] = field(default_factory=list)
    messages: list[list[dict[str, Any]]] = field(default_factory=list)
    images: int = 0  # image parts sent (each as a data URL)
    max_images: int = 0  # most images in one prompt (vLLM's limit_mm_per_prompt must allow it)


def request_plan(prompts: Sequence[PromptInput]) -> RequestPlan:
    """Split a batch into text prompts and chat conversations. Conversations take vLLM's
    multimodal chat input: each image part an ``image_url`` part with the file as a data URL,
    so that vLLM's own per-model chat processing places the image tokens (what
    ``LLM.chat`` documents for vision-language models)."""
    plan = RequestPlan()
    for i, p in enumerate(prompts):
        if isinstance(p, str):
            plan.text.append(i)
            continue
        messages = to_openai(as_messages(p))
        n = sum(1 for m in messages if isinstance(m["content"], list)
                for part in m["content"] if part["type"] == "image_url")
        plan.chat.append(i)
        plan.messages.append(messages)
        plan.images += n
        plan.max_images = max(plan.max_images, n)
    return plan


class VLLMEngine:
    """A vLLM ``LLM`` behind the engine protocol (see base.py).

    Args:
        model: local folder or hub id.
        adapter: a LoRA adapter folder, or a mapping name -> folder (the first is active).
        dtype, max_length (max_model_len), seed, trust_remote_code: passed to vLLM.
        tensor_parallel_size, pipeline_parallel_size, data_parallel_size: vLLM's parallelism.
        gpu_memory_utilization, max_lora_rank, enforce_eager: vLLM options.
        guided_letters: constrain every generation to choice letters (structured output); per item,
            ``generate(..., letters=...)`` (the runner's --letter-grammar) does it with each item's labels.
        max_images_per_prompt: vLLM's ``limit_mm_per_prompt`` for images (items with several figures).
        chat_template_kwargs: e.g. {"enable_thinking": False} for reasoning models.
    """

    kind = "vllm"

    def __init__(
        self,
        model: str | Path,
        *,
        adapter: str | Path | Mapping[str, str | Path] | None = None,
        dtype: str = "auto",
        max_length: int | None = None,
        seed: int = 0,
        trust_remote_code: bool = False,
        tensor_parallel_size: int = 1,
        pipeline_parallel_size: int = 1,
        data_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.85,
        max_lora_rank: int = 64,
        max_loras: int = 4,
        enable_lora: bool | None = None,
        enforce_eager: bool = False,
        guided_letters: bool = False,
        max_images_per_prompt: int | None = None,
        chat_template_kwargs: dict[str, Any] | None = None,
        device: str | None = None,
        batch_size: Any = None,
    ) -> None:
        try:
            import torch
        except ImportError:
            torch = None
        if torch is None or not torch.cuda.is_available():
            raise EngineError("the vllm engine needs a CUDA GPU and vLLM (pip install 'jmedllm[vllm]'); on this "
                              "machine use --engine hf, llamacpp, or openai against a vLLM server elsewhere")
        try:
            from vllm import LLM
        except ImportError:
            raise EngineError("the vllm engine needs vLLM: pip install 'jmedllm[vllm]'") from None
        self.model_ref = str(model)
        adapters = dict(adapter) if isinstance(adapter, Mapping) else ({Path(adapter).name: adapter} if adapter else {})
        self._adapters = {name: str(Path(p).expanduser()) for name, p in adapters.items()}
        self.active_adapter = next(iter(self._adapters), None)
        self.guided_letters = guided_letters
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.options = {"dtype": dtype, "max_model_len": max_length, "seed": seed,
                        "tensor_parallel_size": tensor_parallel_size, "pipeline_parallel_size": pipeline_parallel_size,
                        "data_parallel_size": data_parallel_size, "gpu_memory_utilization": gpu_memory_utilization,
                        "enforce_eager": enforce_eager}
        kwargs = {k: v for k, v in self.options.items() if v is not None}
        if data_parallel_size == 1:
            kwargs.pop("data_parallel_size")
        if max_images_per_prompt:  # vLLM's per-prompt image limit (older versions admit one unless told)
            kwargs["limit_mm_per_prompt"] = {"image": int(max_images_per_prompt)}
            self.options["max_images_per_prompt"] = int(max_images_per_prompt)
        self.lora_enabled = bool(self._adapters) if enable_lora is None else enable_lora
        if self.lora_enabled:  # adapters may also be added later (load_adapter), up to max_loras per batch
            kwargs |= {"enable_lora": True, "max_lora_rank": max_lora_rank,
                       "max_loras": max(max_loras, len(self._adapters))}
        self._llm = LLM(model=self.model_ref, trust_remote_code=trust_remote_code, enable_prefix_caching=True,
                        **kwargs)
        self.tokenizer = self._llm.get_tokenizer()
        self.max_length = self._llm.llm_engine.model_config.max_model_len

    @property
    def supports(self) -> Capabilities:
        return Capabilities(loglik=True, letter="loglik", generate=True, chat=True, images=True, letter_grammar=True)

    def describe(self) -> dict[str, Any]:
        import vllm

        return {"kind": self.kind, "model": self.model_ref, "vllm": vllm.__version__, **self.options,
                "adapters": [{"name": n, "path": p} for n, p in self._adapters.items()],
                "active_adapter": self.active_adapter, "guided_letters": self.guided_letters,
                "chat_template_kwargs": self.chat_template_kwargs}

    def load_adapter(self, path: str | Path, name: str | None = None, activate: bool = True) -> str:
        """Register a LoRA adapter (served per request; nothing is merged)."""
        if not self.lora_enabled:
            raise EngineError("this vLLM engine was started without LoRA: pass --adapter, or enable_lora=true")
        name = name or Path(path).name
        self._adapters[name] = str(Path(path).expanduser())
        if activate:
            self.active_adapter = name
        return name

    def use_adapter(self, name: str | None) -> None:
        if name is not None and name not in self._adapters:
            raise EngineError(f"no adapter {name!r} loaded (have: {', '.join(self._adapters) or 'none'})")
        self.active_adapter = name

    def _lora(self, name: str | None = None):
        name = name or self.active_adapter
        if name is None:
            return None
        from vllm.lora.request import LoRARequest

        return LoRARequest(name, list(self._adapters).index(name) + 1, self._adapters[name])

    def format_chat(self, messages: Sequence[dict[str, Any]], add_generation_prompt: bool = True) -> str:
        return self.tokenizer.apply_chat_template(list(messages), tokenize=False,
                                                  add_generation_prompt=add_generation_prompt,
                                                  **self.chat_template_kwargs)

    def _sampling(self, regex: str | None = None, **kw: Any):
        from vllm import SamplingParams

        if regex is None and self.guided_letters and kw.get("max_tokens", 1) > 1:
            regex = LETTER_REGEX
        if regex is not None:
            try:
                from vllm.sampling_params import StructuredOutputsParams

                kw["structured_outputs"] = StructuredOutputsParams(regex=regex)
            except ImportError:  # older vLLM
                from vllm.sampling_params import GuidedDecodingParams

                kw["guided_decoding"] = GuidedDecodingParams(regex=regex)
        return SamplingParams(**kw)

    def _run(self, prompts: Sequence[PromptInput], sampling, adapters: Sequence[str | None] | None = None):
        """Text prompts in one ``generate`` call, message lists (images included) in one ``chat``
        call; outputs in the order of ``prompts``."""
        loras = [self._lora(a) for a in adapters] if adapters else None
        plan = request_plan(prompts)
        outs: list[Any] = [None] * len(prompts)

        def pick(indices: list[int]):  # one SamplingParams for all, or each prompt its own
            return [sampling[i] for i in indices] if isinstance(sampling, list) else sampling

        if plan.text:
            lora = [loras[i] for i in plan.text] if loras else self._lora()
            for i, o in zip(plan.text, self._llm.generate([prompts[i] for i in plan.text], pick(plan.text),
                                                          lora_request=lora, use_tqdm=False)):
                outs[i] = o
        if plan.chat:
            if loras:
                raise EngineError("several adapters in one pass are supported for text prompts only")
            for i, o in zip(plan.chat, self._llm.chat(plan.messages, pick(plan.chat), lora_request=self._lora(),
                                                      use_tqdm=False,
                                                      chat_template_kwargs=self.chat_template_kwargs or None)):
                outs[i] = o
        return outs

    def generate(self, prompts: Sequence[PromptInput], params: GenerationParams,
                 adapters: Sequence[str | None] | None = None,
                 letters: Sequence[LetterChoice | None] | None = None) -> list[Completion]:
        """``adapters``: one adapter name (or None for the base) per prompt, all in one pass.
        ``letters``: one LetterChoice per prompt (the runner's --letter-grammar): each answer
        restricted to its item's labels by structured output (a regex), one SamplingParams each."""
        kw = sampling_kwargs(params)
        if letters is None:
            sampling: Any = self._sampling(**kw)
        else:
            if len(letters) != len(prompts):
                raise EngineError(f"{len(letters)} letter choices for {len(prompts)} prompts")
            sampling = [self._sampling(**kw, regex=c.regex() if c else None) for c in letters]
        outs = self._run(prompts, sampling, adapters)
        return [Completion(o.outputs[0].text, len(o.prompt_token_ids or ()), len(o.outputs[0].token_ids),
                           "length" if o.outputs[0].finish_reason == "length" else "stop") for o in outs]

    def first_token_logprobs(self, prompts: Sequence[PromptInput], k: int = 20) -> list[TopLogprobs]:
        outs = self._run(prompts, self._sampling(max_tokens=1, temperature=0.0, logprobs=k))
        return [first_token_top(o.outputs[0]) for o in outs]

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text).input_ids

    def loglikelihoods(self, requests: Sequence[LoglikRequest]) -> list[list[ContinuationScore]]:
        from vllm.inputs import TokensPrompt

        flat, meta = [], []
        for r in requests:
            n = len(r.context) - len(r.context.rstrip())
            ctx_text, moved = (r.context[:-n], r.context[-n:]) if n else (r.context, "")
            ctx = self._encode(ctx_text)
            for cont in r.continuations:
                whole = self._encode(ctx_text + moved + cont)
                if whole[: len(ctx)] != ctx or len(whole) == len(ctx):
                    raise EngineError(f"continuation {cont!r} merges into the context's last token")
                truncated = max(0, len(whole) - self.max_length)
                flat.append(TokensPrompt(prompt_token_ids=whole[truncated:]))
                meta.append((whole[truncated:], len(ctx) - truncated, len(cont), truncated))
        sampling = self._sampling(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        outs = self._llm.generate(flat, sampling, lora_request=self._lora(), use_tqdm=False)
        scores = []
        for o, (ids, n_ctx, n_chars, truncated) in zip(outs, meta):
            total, n_tokens, greedy = continuation_from_prompt_logprobs(o.prompt_logprobs, ids, n_ctx)
            scores.append(ContinuationScore(total, n_tokens, n_chars, greedy, truncated))
        it = iter(scores)
        return [[next(it) for _ in r.continuations] for r in requests]

    def prefix_cache_stats(self) -> dict[str, float]:
        """vLLM's prefix-cache counters (queries, hits) from its metrics, to check that caching hits."""
        out: dict[str, float] = {}
        for m in self._llm.get_metrics():
            if "prefix_cache" in m.name:
                out[m.name] = float(getattr(m, "value", 0) or 0)
        return out

    def close(self) -> None:
        self._llm = None


__all__ = ["RequestPlan", "VLLMEngine", "continuation_from_prompt_logprobs", "first_token_top", "request_plan",
           "sampling_kwargs"]
