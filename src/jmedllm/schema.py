"""The vocabulary of jmedllm: a handful of frozen records that every layer passes.

benchmarks -> Question; prompts -> Prompt; engines -> ContinuationScore / Completion;
scoring -> verdict dicts; runs -> item records. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

LETTERS = "abcdefghijklmnopqrstuvwxyz"
#: what a question asks for: exactly n_select choices, all that apply, or an ordering
SELECTIONS = ("n", "all", "order")


@dataclass(frozen=True)
class Question:
    """One benchmark item, knowing nothing of prompts or models.

    ``answer`` is the set of 0-based indices of the correct choices; ``n_select`` is how
    many choices the question *asks for* (parsed from its text by the loader, never taken
    from the gold answer). Numeric-answer items have no choices, an empty ``answer`` and
    their gold value in ``numeric_answer``.

    ``meta`` holds source metadata. Keys used across the toolkit (all optional):
    ``exam`` (e.g. 116), ``year``, ``block`` ("A".."F"), ``section`` ("hisshu" / "ippan_rinsho"),
    ``points`` (int), ``kinki`` (tuple of forbidden choice indices), ``category``,
    ``text_only`` (bool), ``human_accuracy`` (float, percent), ``breakdown`` (per-choice %),
    ``subject``, ``split``, ``source_file``, ``source_line``, ``group`` (serial-group id),
    ``answer_pattern`` (a user regex with a named group ``answer``, from a custom mapping),
    ``number`` (question number within its block), ``exam_rules`` (an
    ``benchmarks.examrules.ExamRules`` declared by a custom mapping), ``exam_incomplete``
    (e.g. "75 of 400 items found": the data root holds part of the exam; no exam verdict).

    ``selection`` says what kind of answer the question asks for:
    ``"n"`` (pick exactly ``n_select`` choices; the default), ``"all"`` (select all that
    apply: exact set, ``n_select`` is 0 and unknown to the model) or ``"order"`` (arrange
    the choices: ``answer_order`` holds the correct sequence, ``answer`` its set).
    ``images``: paths of the item's images (absolute, or relative to the data file's
    folder as the loader resolved them); an item with images is not text-only.
    """

    id: str
    benchmark: str
    text: str
    choices: tuple[str, ...]
    answer: frozenset[int]
    n_select: int
    language: str
    numeric_answer: str | None = None
    context: str | None = None
    explanation: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    selection: str = "n"
    answer_order: tuple[int, ...] | None = None
    images: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Normalise containers so that records are hashable-ish and compare equal.
        object.__setattr__(self, "choices", tuple(self.choices))
        object.__setattr__(self, "answer", frozenset(self.answer))
        object.__setattr__(self, "images", tuple(self.images))
        if self.answer_order is not None:
            object.__setattr__(self, "answer_order", tuple(self.answer_order))
        if self.selection not in SELECTIONS:
            raise ValueError(f"{self.id}: selection must be one of {SELECTIONS}, got {self.selection!r}")
        if self.selection == "order" and (self.answer_order is None or frozenset(self.answer_order) != self.answer):
            raise ValueError(f"{self.id}: an ordering question needs answer_order covering its answer set")
        bad = [i for i in self.answer if not 0 <= i < len(self.choices)]
        if bad:
            raise ValueError(f"{self.id}: answer indices {sorted(bad)} out of range for {len(self.choices)} choices")
        if self.n_select < 0:
            raise ValueError(f"{self.id}: n_select must be >= 0, got {self.n_select}")

    @property
    def is_numeric(self) -> bool:
        return not self.choices

    @property
    def letters(self) -> str:
        """Choice labels in order: 'abcde' for five choices."""
        return LETTERS[: len(self.choices)]

    @property
    def answer_letters(self) -> str:
        return "".join(LETTERS[i] for i in sorted(self.answer))

    @property
    def answer_texts(self) -> tuple[str, ...]:
        return tuple(self.choices[i] for i in sorted(self.answer))


@dataclass(frozen=True)
class LoglikRequest:
    """Score each continuation given one shared context (the prompt)."""

    context: str
    continuations: tuple[str, ...]


@dataclass(frozen=True)
class ContinuationScore:
    """Sum of token log-probabilities of one continuation after its context."""

    logprob: float
    n_tokens: int
    n_chars: int
    is_greedy: bool = False
    truncated_tokens: int = 0  # context tokens cut from the left to fit the model


@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int = 64
    stop: tuple[str, ...] = ()
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class Completion:
    text: str
    n_prompt_tokens: int = 0
    n_completion_tokens: int = 0
    finish_reason: str = "stop"  # "stop" (eos / stop string) or "length"
    truncated_tokens: int = 0
    reasoning: str = ""  # a reasoning model's thinking, as the server returned it apart (never scored)
    n_reasoning_tokens: int = 0
