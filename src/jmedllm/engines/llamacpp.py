"""The ``llamacpp`` engine: a GGUF model through llama-cpp-python (CPU or any llama.cpp backend).

* loglik: the question's prompt is evaluated once, its KV cache kept; each continuation is
  evaluated after it (the cache cut back to the prompt between choices), and consecutive
  prompts reuse their common token prefix (few-shot exemplars are computed once per run).
  Tokenisation follows the HF engine: context and context + continuation are encoded whole
  and the continuation's tokens are the difference (trailing whitespace moves onto the
  continuation), so the two engines score the same tokens.
* generate: stop strings, seed, temperature; ``grammar`` (GBNF text, or "letters") constrains
  the output (e.g. to choice letters); ``letters`` (the runner's --letter-grammar) gives each
  prompt its own item's labels (``LetterChoice.gbnf``).
* ``close()`` frees the model explicitly (its destructor is noisy at interpreter exit).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from jmedllm.engines.base import Capabilities, EngineError, LetterChoice, PromptInput
from jmedllm.engines.messages import text_only
from jmedllm.schema import Completion, ContinuationScore, GenerationParams, LoglikRequest

#: GBNF for answers made of choice letters (one or more of a-z, optionally comma-separated)
LETTERS_GRAMMAR = 'root ::= [a-zA-Z] ("," [a-zA-Z])*'


def move_trailing_whitespace(context: str, continuation: str) -> tuple[str, str]:
    """``("Answer: ", "a")`` -> ``("Answer:", " a")`` (as the HF engine and lm-evaluation-harness do)."""
    n = len(context) - len(context.rstrip())
    return (context[:-n], context[-n:] + continuation) if n else (context, continuation)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


class LlamaCppEngine:
    """A GGUF file behind the engine protocol (see base.py).

    Args:
        model: path of the .gguf file.
        n_ctx (or max_length): context size in tokens (default 2048).
        n_threads: CPU threads (default: llama.cpp's choice).
        n_batch: tokens per decode call.
        n_gpu_layers: layers offloaded to a GPU build (0 on CPU).
        grammar: default GBNF grammar for generation ("letters" for LETTERS_GRAMMAR), or None.
        seed: sampling seed when temperature > 0 (GenerationParams.seed wins when given).
    """

    kind = "llamacpp"
    supports = Capabilities(loglik=True, letter="loglik", generate=True, chat=False, images=False, letter_grammar=True)

    def __init__(
        self,
        model: str | Path,
        *,
        n_ctx: int | None = None,
        max_length: int | None = None,
        n_threads: int | None = None,
        n_batch: int = 512,
        n_gpu_layers: int = 0,
        grammar: str | None = None,
        seed: int = 0,
        adapter: str | None = None,
        verbose: bool = False,
    ) -> None:
        try:
            from llama_cpp import Llama
        except ImportError:
            raise EngineError("the llamacpp engine needs llama-cpp-python: pip install 'jmedllm[llamacpp]'") from None
        path = Path(model).expanduser()
        if not path.is_file() or path.suffix != ".gguf":
            raise EngineError(f"{path}: not a .gguf file (make one with `jmedllm export gguf`)")
        if adapter:
            raise EngineError("the llamacpp engine takes a merged model: export base + adapter with "
                              "`jmedllm export gguf --model BASE --adapter ADAPTER`")
        self.model_path = path
        self.n_ctx = int(n_ctx or max_length or 2048)
        self.n_threads = n_threads
        self.default_grammar = grammar
        self.seed = seed
        # logits_all: log-likelihoods need the logits of every evaluated position
        with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
            self._llm = Llama(model_path=str(path), n_ctx=self.n_ctx, n_threads=n_threads, n_batch=n_batch,
                              n_gpu_layers=n_gpu_layers, logits_all=True, seed=seed, verbose=verbose)
        self._evaluated: list[int] = []  # tokens whose KV (and logits rows) are in the context now
        self.max_length = self.n_ctx

    # -- protocol ---------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        meta = dict(self._llm.metadata or {})
        return {"kind": self.kind, "model": str(self.model_path), "size": self.model_path.stat().st_size,
                "n_ctx": self.n_ctx, "file_type": meta.get("general.file_type"),
                "architecture": meta.get("general.architecture"), "grammar": self.default_grammar}

    def close(self) -> None:
        llm, self._llm = getattr(self, "_llm", None), None
        if llm is not None:
            llm.close()

    def __enter__(self) -> "LlamaCppEngine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def encode(self, text: str) -> list[int]:
        return self._llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)

    def format_chat(self, messages: Sequence[dict[str, Any]], add_generation_prompt: bool = True) -> str:
        """Render with the GGUF's own chat template (``tokenizer.chat_template``)."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        meta = self._llm.metadata or {}
        template = meta.get("tokenizer.chat_template")
        if not template:
            raise EngineError(f"{self.model_path} has no chat template: use a text prompt family")
        tok = self._llm

        def token_text(key: str) -> str:
            tid = meta.get(key)
            return tok.detokenize([int(tid)], special=True).decode("utf-8", "ignore") if tid is not None else ""

        formatter = Jinja2ChatFormatter(template, eos_token=token_text("tokenizer.ggml.eos_token_id"),
                                        bos_token=token_text("tokenizer.ggml.bos_token_id"),
                                        add_generation_prompt=add_generation_prompt)
        return formatter(messages=text_only(messages)).prompt

    # -- log-likelihoods --------------------------------------------------------------------------

    def _eval_to(self, tokens: list[int]) -> None:
        """Make the context hold exactly ``tokens``, reusing the longest common prefix."""
        if len(tokens) > self.n_ctx:
            raise EngineError(f"{len(tokens)} tokens do not fit in n_ctx={self.n_ctx}")
        common = 0
        for a, b in zip(self._evaluated, tokens):
            if a != b:
                break
            common += 1
        common = min(common, len(tokens) - 1)  # the last token is always (re)evaluated: its logits row
        self._llm.n_tokens = common
        self._llm.eval(tokens[common:])
        self._evaluated = list(tokens)

    def loglikelihoods(self, requests: Sequence[LoglikRequest]) -> list[list[ContinuationScore]]:
        return [self._score_request(r) for r in requests]

    def _score_request(self, request: LoglikRequest) -> list[ContinuationScore]:
        ctx_text, moved = move_trailing_whitespace(request.context, "")
        ctx = self.encode(ctx_text)
        conts = []
        for cont in request.continuations:
            whole = self.encode(ctx_text + moved + cont)
            if whole[: len(ctx)] != ctx or len(whole) == len(ctx):
                # the continuation merged into the context's last token: score it after the whole context
                whole = ctx + self._llm.tokenize((moved + cont).encode("utf-8"), add_bos=False, special=False)
            conts.append(whole[len(ctx):])
        if not ctx:
            raise EngineError("empty context and no BOS token to start from")
        longest = max(len(c) for c in conts)
        truncated = max(0, len(ctx) + longest - 1 - self.n_ctx)
        if truncated:
            ctx = ctx[truncated:]
        self._eval_to(ctx)
        first = log_softmax(self._llm.scores[len(ctx) - 1])
        out = []
        for cont, text in zip(conts, request.continuations):
            rows = [first]
            if len(cont) > 1:
                self._eval_to(ctx + cont[:-1])
                rows += list(log_softmax(self._llm.scores[len(ctx) : len(ctx) + len(cont) - 1]))
            logprob = float(sum(row[t] for row, t in zip(rows, cont)))
            greedy = all(int(np.argmax(row)) == t for row, t in zip(rows, cont))
            out.append(ContinuationScore(logprob, len(cont), len(text), greedy, truncated))
        return out

    # -- generation -------------------------------------------------------------------------------

    def generate(self, prompts: Sequence[PromptInput], params: GenerationParams, grammar: str | None = None,
                 letters: Sequence[LetterChoice | None] | None = None) -> list[Completion]:
        """``grammar``: GBNF text (or "letters") for every prompt; ``letters``: one LetterChoice per
        prompt (the runner's --letter-grammar), constraining each answer to its item's labels
        (None: that prompt uses ``grammar``)."""
        from llama_cpp import LlamaGrammar

        if letters is not None and len(letters) != len(prompts):
            raise EngineError(f"{len(letters)} letter choices for {len(prompts)} prompts")
        grammar = grammar or self.default_grammar
        gbnf = None
        if grammar:
            gbnf = LlamaGrammar.from_string(LETTERS_GRAMMAR if grammar == "letters" else grammar, verbose=False)
        compiled: dict[LetterChoice, Any] = {}
        out = []
        for i, prompt in enumerate(prompts):
            choice = letters[i] if letters is not None else None
            if choice is not None and choice not in compiled:
                compiled[choice] = LlamaGrammar.from_string(choice.gbnf(), verbose=False)
            text = prompt if isinstance(prompt, str) else self.format_chat(prompt)
            self._evaluated = []  # create_completion manages the context itself
            resp = self._llm.create_completion(
                text, max_tokens=params.max_new_tokens, temperature=params.temperature, top_p=params.top_p,
                seed=params.seed, stop=list(params.stop) or None, grammar=compiled[choice] if choice else gbnf)
            choice = resp["choices"][0]
            usage = resp.get("usage") or {}
            out.append(Completion(choice["text"], int(usage.get("prompt_tokens", 0)),
                                  int(usage.get("completion_tokens", 0)),
                                  "length" if choice.get("finish_reason") == "length" else "stop"))
        return out


__all__ = ["LETTERS_GRAMMAR", "LlamaCppEngine"]
