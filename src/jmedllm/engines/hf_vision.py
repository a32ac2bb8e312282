"""Image items for the Hugging Face engine when it holds a vision-language model
(AutoModelForImageTextToText + AutoProcessor; see hf_loading.load_pretrained).

An engine that renders its own chat template (``supports.chat`` off) receives an image item
as one user message: its text part is the prompt exactly as the item would be asked without
images, its image parts the files (engines/messages.py). For chat prompt families the runner
has already rendered the images into the user turn through :meth:`format_chat` (the
processor's template places the model's image placeholders); for text families the images'
placeholders go before the prompt, as LLaVA-style models are trained. The processor then
expands each placeholder into the image's tokens and computes its pixel values.

* generate: one item per ``model.generate`` call (items differ in image count and size),
  greedy unless a temperature is given, stop strings as for text items.
* loglik / letter: one forward over the prompt with its images gives every one-token
  continuation (letters); a longer continuation is scored by one more forward over prompt +
  continuation. Continuation tokens are split off as for text items (trailing whitespace moves
  onto the continuation; context and context + continuation tokenised whole).
* image prompts are never cut to fit the context (cutting would drop image tokens): too long
  is an EngineError.

Text-only items, and every item of a text-only model, go through the usual batched paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from jmedllm.engines.base import EngineError, PromptInput
from jmedllm.engines.messages import as_messages
from jmedllm.engines.prefix_sharing import move_trailing_whitespace
from jmedllm.schema import Completion, ContinuationScore, GenerationParams, LoglikRequest


def image_parts_for_template(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as processors' chat templates take them: content always a list of parts, an
    image part only ``{"type": "image"}`` (the template places a placeholder; files are loaded
    apart)."""
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        out.append(dict(m, content=[{"type": "image"} if p.get("type") == "image" else dict(p) for p in content]))
    return out


def split_prompt(prompt: PromptInput) -> tuple[list[dict[str, Any]], list[str]]:
    """(messages, image paths in order) of a prompt input."""
    messages = as_messages(prompt)
    paths = [p["path"] for m in messages if isinstance(m.get("content"), list)
             for p in m["content"] if p.get("type") == "image"]
    return messages, paths


def load_images(paths: Sequence[str]) -> list[Any]:
    """The files as RGB PIL images; an unreadable file is an EngineError naming it."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise EngineError("reading images needs Pillow: pip install 'jmedllm[vision]'") from None

    images = []
    for path in paths:
        try:
            with Image.open(Path(path)) as img:
                images.append(img.convert("RGB"))
        except (OSError, UnidentifiedImageError) as exc:
            raise EngineError(f"{path}: cannot read image ({exc})") from None
    return images


class HFVisionMixin:
    """Image items of :class:`jmedllm.engines.hf.HFEngine` (which sets ``processor``)."""

    processor: Any

    # ----------------------------------------------------------------- prompts

    def _format_vision_chat(self, messages: Sequence[dict[str, Any]], add_generation_prompt: bool = True) -> str:
        template = getattr(self.processor, "chat_template", None) or getattr(self.tokenizer, "chat_template", None)
        if not template:
            raise ValueError(f"model {self.model_ref} has no chat template (processor and tokenizer); "
                             "use a plain-text prompt format for this model")
        return self.processor.apply_chat_template(
            image_parts_for_template(messages), chat_template=template, tokenize=False,
            add_generation_prompt=add_generation_prompt, **self.chat_template_kwargs)

    def _image_marker(self) -> str:
        """The string whose every occurrence in a prompt the processor expands into one image."""
        marker = getattr(self.processor, "boi_token", None) or getattr(self.processor, "image_token", None)
        if not marker:
            raise EngineError(f"the processor of {self.model_ref} names no image token")
        return marker

    def _image_placeholder(self) -> str:
        """What the model's chat template writes for one image (e.g. Qwen2-VL's
        ``<|vision_start|><|image_pad|><|vision_end|>``), else the bare image token."""
        if "_placeholder" not in self.__dict__:
            self.__dict__["_placeholder"] = self._derive_placeholder()
        return self.__dict__["_placeholder"]

    def _derive_placeholder(self) -> str:
        marker = self._image_marker()
        try:
            plain = self._format_vision_chat([{"role": "user", "content": "\x01"}], False)
            with_image = self._format_vision_chat(
                [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "\x01"}]}], False)
        except (ValueError, TypeError, KeyError):
            return marker
        head = plain[: plain.find("\x01")]
        placeholder = with_image[len(head): with_image.find("\x01")] if with_image.startswith(head) else ""
        return placeholder if marker in placeholder else marker

    def _vision_text(self, prompt: PromptInput) -> tuple[str, list[str]]:
        """The prompt text with one image marker per image, and the image paths."""
        messages, paths = split_prompt(prompt)
        if len(messages) == 1 and messages[0].get("role") == "user":  # the runner's rendered prompt
            content = messages[0]["content"]
            text = content if isinstance(content, str) else "".join(p.get("text", "") for p in content
                                                                     if p.get("type") == "text")
        else:  # a conversation: the template places the images
            text = self._format_vision_chat(messages)
        found = text.count(self._image_marker())
        if found == 0:
            text = "".join(self._image_placeholder() for _ in paths) + "\n" + text
        elif found != len(paths):
            raise EngineError(f"the prompt holds {found} image placeholder(s) for {len(paths)} image(s)")
        return text, paths

    def _vision_inputs(self, text: str, paths: Sequence[str]) -> dict[str, Any]:
        """Processor outputs for one prompt (BOS as the engine's ``encode`` adds it), on the device."""
        bos = self.tokenizer.bos_token
        if self._add_bos and bos and not text.startswith(bos):
            text = bos + text
        inputs = self.processor(text=[text], images=load_images(paths) or None, return_tensors="pt",
                                add_special_tokens=False)
        return {k: (v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device))
                for k, v in inputs.items() if isinstance(v, torch.Tensor)}

    def _check_room(self, n_tokens: int, what: str) -> None:
        if n_tokens > self.max_length:
            raise EngineError(f"{what} needs {n_tokens} tokens (images included), more than the model's context of "
                              f"{self.max_length}; prompts with images are not cut")

    # ----------------------------------------------------------------- generation

    def generate(self, prompts: Sequence[PromptInput], params: GenerationParams) -> list[Completion]:
        """Text prompts batched as usual; each prompt with images its own ``generate`` call."""
        visual = [i for i, p in enumerate(prompts) if not isinstance(p, str)]
        if not visual:
            return super().generate(prompts, params)
        if self.processor is None:
            raise EngineError(f"model {self.model_ref} is text-only: it takes rendered text prompts, not chat "
                              "messages or images")
        out: list[Completion | None] = [None] * len(prompts)
        text_idx = sorted(set(range(len(prompts))) - set(visual))
        if text_idx:
            for i, c in zip(text_idx, super().generate([prompts[i] for i in text_idx], params)):
                out[i] = c
        for i in visual:
            out[i] = self._generate_with_images(prompts[i], params)
        return out  # type: ignore[return-value]

    def _generate_with_images(self, prompt: PromptInput, params: GenerationParams) -> Completion:
        inputs = self._vision_inputs(*self._vision_text(prompt))
        n_prompt = inputs["input_ids"].shape[1]
        self._check_room(n_prompt + params.max_new_tokens, "a prompt with images plus max_new_tokens")
        if params.temperature > 0:
            torch.manual_seed(params.seed)
        out = self._run_generate(params, **inputs)  # as for text prompts: decoding follows `params` only
        tokens = out[0, n_prompt:].tolist()
        self.stats.forward_passes += len(tokens)
        self.stats.tokens += n_prompt + max(0, len(tokens) - 1)
        self.stats.generated_tokens += len(tokens)
        return self._finish(tokens, inputs["input_ids"][0].tolist(), 0, params)

    # ----------------------------------------------------------------- log-likelihoods

    def loglikelihoods(self, requests: Sequence[LoglikRequest]) -> list[list[ContinuationScore]]:
        """Text contexts batched as usual; each context with images scored on its own."""
        visual = [i for i, r in enumerate(requests) if not isinstance(r.context, str)]
        if not visual:
            return super().loglikelihoods(requests)
        if self.processor is None:
            raise EngineError(f"model {self.model_ref} is text-only: it scores rendered text prompts, not chat "
                              "messages or images")
        out: list[list[ContinuationScore] | None] = [None] * len(requests)
        text_idx = sorted(set(range(len(requests))) - set(visual))
        if text_idx:
            for i, s in zip(text_idx, super().loglikelihoods([requests[i] for i in text_idx])):
                out[i] = s
        for i in visual:
            out[i] = self._score_with_images(requests[i])
        return out  # type: ignore[return-value]

    def _continuation_ids(self, ctx_text: str, moved: str, cont: str) -> list[int]:
        ctx = self.tokenizer(ctx_text, add_special_tokens=False).input_ids
        whole = self.tokenizer(ctx_text + moved + cont, add_special_tokens=False).input_ids
        if whole[: len(ctx)] != ctx or len(whole) == len(ctx):  # merged into the context's last token
            return self.tokenizer(moved + cont, add_special_tokens=False).input_ids
        return whole[len(ctx):]

    def _forward_logprobs(self, inputs: dict[str, Any], extra: Sequence[int], n_rows: int) -> torch.Tensor:
        """Log-probs of the last ``n_rows`` positions of prompt (+ ``extra`` token ids)."""
        if extra:
            n = inputs["input_ids"].shape[1]
            ext = torch.tensor([list(extra)], device=self.device)
            inputs = {k: (torch.cat([v, ext if k == "input_ids" else torch.full_like(ext, 1 if k == "attention_mask"
                                                                                       else 0)], dim=1)
                          if v.dim() == 2 and v.shape[1] == n and not v.is_floating_point() else v)
                      for k, v in inputs.items()}
        with torch.inference_mode(), self._adapter_scope():
            logits = self.model(**inputs).logits[0, -n_rows:].float()
        self.stats.forward_passes += 1
        self.stats.tokens += inputs["input_ids"].shape[1]
        self.stats.logit_positions += inputs["input_ids"].shape[1]
        return torch.log_softmax(logits, dim=-1)

    def _score_with_images(self, request: LoglikRequest) -> list[ContinuationScore]:
        text, paths = self._vision_text(request.context)
        ctx_text, moved = move_trailing_whitespace(text, "")
        inputs = self._vision_inputs(ctx_text, paths)
        n_ctx = inputs["input_ids"].shape[1]
        conts = [self._continuation_ids(ctx_text, moved, c) for c in request.continuations]
        self._check_room(n_ctx + max(len(c) for c in conts) - 1, "a prompt with images plus its longest answer")
        first = self._forward_logprobs(inputs, (), 1)[0]
        scores = []
        for ids, cont_text in zip(conts, request.continuations):
            rows = first[None] if len(ids) == 1 else self._forward_logprobs(inputs, ids[:-1], len(ids))
            picked = rows[torch.arange(len(ids)), torch.tensor(ids, device=rows.device)]
            greedy = bool((rows.argmax(dim=-1) == torch.tensor(ids, device=rows.device)).all())
            scores.append(ContinuationScore(float(picked.sum()), len(ids), len(cont_text), greedy, 0))
        return scores


__all__ = ["HFVisionMixin", "image_parts_for_template", "load_images", "split_prompt"]
