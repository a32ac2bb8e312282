"""Few-shot exemplar selection: seeded, deterministic, and never the evaluated item."""

from __future__ import annotations

import re
from typing import Sequence

from jmedllm.schema import Question
from jmedllm.text import nfkc

from .stable import stable_key

_SPACE = re.compile(r"\s+")


def normalised_text(text: str) -> str:
    """Question text for duplicate detection: NFKC, case-folded, all whitespace removed."""
    return _SPACE.sub("", nfkc(text)).casefold()


def select_shots(question: Question, pool: Sequence[Question], k: int, seed: int, *, shared: bool = False) -> list[Question]:
    """``k`` exemplars for ``question`` from ``pool``.

    Never returns the evaluated item: pool items with the same id or the same normalised
    question text (see ``normalised_text``) are excluded, and so are repeats of a text
    already chosen. Prefers, in this order: same ``n_select`` and same number of choices,
    same ``n_select`` only, same number of choices only, the rest. Within a preference
    level the order is a seeded shuffle: candidates are sorted by
    ``stable_key(seed, question.id, candidate.id)`` (SHA-256), so the choice depends on
    (seed, question id, pool membership) only -- not on the pool's order, the process or
    ``PYTHONHASHSEED``. Raises ValueError when fewer than ``k`` usable items remain.

    ``shared=True`` leaves the question id out of the shuffle key: every question with the
    same ``n_select`` and number of choices gets the same exemplars in the same order
    (unless one of them is the question itself), so the prompts of a benchmark share their
    exemplars as a common prefix, which the engines compute once (engines/prefix_cache.py).
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    if k == 0:
        return []
    own_text = normalised_text(question.text)

    def rank(c: Question) -> tuple[bool, bool, int, str]:
        return (
            c.n_select != question.n_select,
            len(c.choices) != len(question.choices),
            stable_key(seed, "" if shared else question.id, c.id),
            c.id,  # tie-break, for completeness
        )

    chosen: list[Question] = []
    seen_ids = {question.id}
    seen_texts = {own_text}
    for candidate in sorted(pool, key=rank):
        text = normalised_text(candidate.text)
        if candidate.id in seen_ids or text in seen_texts:
            continue
        chosen.append(candidate)
        seen_ids.add(candidate.id)
        seen_texts.add(text)
        if len(chosen) == k:
            return chosen
    raise ValueError(
        f"{question.id}: asked for {k} few-shot exemplars but the pool of {len(pool)} items has only "
        f"{len(chosen)} after excluding the evaluated item and duplicates of its (or each other's) text"
    )
