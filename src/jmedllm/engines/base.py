"""The engine protocol: everything the runner (or `jmedllm synth`) may call on an engine.

An engine knows nothing of benchmarks. Prefix sharing, batching, caching, retries and
truncation live inside the engine.

Prompts reach an engine in one of two shapes (``PromptInput``):

* a string, already rendered (for a chat model: through the engine's own ``format_chat``);
* a list of chat messages ``{"role": ..., "content": ...}`` for engines that take messages
  natively (``supports.chat``: a chat API, a vision-language model). ``content`` is a string
  or a list of parts ``{"type": "text", "text": ...}`` / ``{"type": "image", "path": ...}``
  (see engines/messages.py); only engines with ``supports.images`` receive image parts.

An engine with ``supports.images`` but not ``supports.chat`` (a local vision-language model
rendering its own template) receives an image item as ONE user message: its text part is the
prompt already rendered (for chat families through its ``format_chat``, which places the
images), its image parts the files; such a message list may also be a ``LoglikRequest``
context (loglik and letter modes with images).

What an engine can do is declared in ``supports`` (a ``Capabilities``); engines written
before it existed get ``DEFAULT_CAPABILITIES`` through ``capabilities_of``.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, Sequence, Union, runtime_checkable

from jmedllm.schema import Completion, ContinuationScore, GenerationParams, LoglikRequest

#: a chat message: {"role": "system" | "user" | "assistant", "content": str | list[part]}
Message = dict[str, Any]
#: what ``generate`` (and ``first_token_logprobs``) take per prompt
PromptInput = Union[str, Sequence[Message]]

#: how an engine scores letter mode
LETTER_VIA = ("loglik", "top_logprobs", "")


@dataclass(frozen=True)
class Capabilities:
    """What an engine can compute.

    loglik: ``loglikelihoods`` scores arbitrary continuations (loglik mode).
    letter: how letter mode is scored: "loglik" (each label spelling as a continuation),
        "top_logprobs" (the first answer token's top-k log-probs, ``first_token_logprobs``;
        labels absent from the top-k are reported as absent), or "" (not at all).
    generate: ``generate`` produces text.
    chat: ``generate`` / ``first_token_logprobs`` take chat message lists natively; an engine
        without it renders messages with its ``format_chat`` first.
    images: image parts in chat messages reach the model; a text-only engine never sees an
        image item (the runner skips it and counts it).
    echo: prompt log-probs come back from a server (OpenAI completions with echo).
    letter_grammar: ``generate`` takes ``letters=`` (one ``LetterChoice`` or None per prompt) and
        constrains each answer to that item's choice labels (a grammar, structured output).
    """

    loglik: bool = True
    letter: str = "loglik"
    generate: bool = True
    chat: bool = False
    images: bool = False
    echo: bool = False
    letter_grammar: bool = False
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.letter not in LETTER_VIA:
            raise ValueError(f"letter must be one of {LETTER_VIA}, got {self.letter!r}")

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["notes"] = list(self.notes)
        return d

    def modes(self) -> tuple[str, ...]:
        """The evaluation modes this engine can run."""
        out = []
        if self.generate:
            out.append("generate")
        if self.loglik:
            out.append("loglik")
        if self.letter:
            out.append("letter")
        return tuple(out)


#: a local model that scores continuations, generates, and renders its own chat template
DEFAULT_CAPABILITIES = Capabilities()


@dataclass(frozen=True)
class TopLogprobs:
    """The first generated token of an answer and its top-k alternatives.

    ``top`` maps each alternative token's text to its log-probability (the k most likely;
    a token absent from it had a lower log-probability than every one listed, nothing more is
    known). ``text`` is the token actually produced.
    """

    text: str
    top: dict[str, float]
    n_prompt_tokens: int = 0


@dataclass(frozen=True)
class LetterChoice:
    """An answer made of choice labels only: ``min_count`` to ``max_count`` (None: any number)
    of ``labels``, comma-separated, e.g. "c" or "a,d". What ``generate(..., letters=...)``
    constrains one item's answer to, as a regular expression or a llama.cpp GBNF grammar."""

    labels: str
    min_count: int = 1
    max_count: int | None = 1

    def __post_init__(self) -> None:
        if not self.labels or self.min_count < 1 or (self.max_count is not None and self.max_count < self.min_count):
            raise ValueError(f"bad letter choice: {self}")

    def regex(self) -> str:
        one = "[" + "".join(re.escape(c) for c in self.labels) + "]"
        more = "*" if self.max_count is None else "{%d,%d}" % (self.min_count - 1, self.max_count - 1)
        return one if self.max_count == 1 else f"{one}(,{one}){more}"

    def gbnf(self) -> str:
        one = "(" + " | ".join(json.dumps(c) for c in self.labels) + ")"
        more = ['"," label'] * (self.min_count - 1) + (
            ['("," label)*'] if self.max_count is None else ['("," label)?'] * (self.max_count - self.min_count))
        return f"root ::= {' '.join(['label', *more])}\nlabel ::= {one}\n"


@runtime_checkable
class Engine(Protocol):
    #: short identifier recorded in run configs, e.g. "hf"
    kind: str

    def loglikelihoods(self, requests: Sequence[LoglikRequest]) -> list[list[ContinuationScore]]:
        """For each request, one score per continuation, in order."""
        ...

    def generate(self, prompts: Sequence[PromptInput], params: GenerationParams) -> list[Completion]:
        """One completion per prompt, in order. Message lists only when ``supports.chat``."""
        ...

    def format_chat(self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """Render chat messages with the model's chat template into one prompt string."""
        ...

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable description (model id, revision/hash, dtype, device, adapter, ...)."""
        ...


def capabilities_of(engine: Any) -> Capabilities:
    """The engine's declared ``supports``, else the defaults of a local model."""
    caps = getattr(engine, "supports", None)
    return caps if isinstance(caps, Capabilities) else DEFAULT_CAPABILITIES


class EngineError(RuntimeError):
    """An engine could not do what was asked (a server refused, a budget ran out, a mode it
    cannot run). The message names the remedy; the runner shows it as a user error."""


__all__ = [
    "Capabilities", "DEFAULT_CAPABILITIES", "Engine", "EngineError", "LETTER_VIA", "LetterChoice", "Message",
    "PromptInput",
    "TopLogprobs", "capabilities_of",
]


@dataclass
class EngineStats:
    """Work done by an engine since creation (or ``reset``), for throughput and FLOP/s figures.

    ``tokens`` counts non-padding input positions run through the model (for generation:
    prompt tokens plus every generated token fed back); ``padded_tokens`` counts all
    positions including padding; ``logit_positions`` the positions projected to the vocabulary.
    """

    forward_passes: int = 0
    tokens: int = 0
    padded_tokens: int = 0
    logit_positions: int = 0
    generated_tokens: int = 0
    #: rows that left a decode batch on finishing before it (hf_retire)
    retired_rows: int = 0
    seconds: float = 0.0

    def reset(self) -> None:
        for k in asdict(self):
            setattr(self, k, type(getattr(self, k))())

    def as_dict(self) -> dict[str, float]:
        return asdict(self)
