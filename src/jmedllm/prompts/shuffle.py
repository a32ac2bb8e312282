"""Choice shuffling (to measure position bias) and mapping predictions back.

``shuffle_choices`` permutes an item's choices with a per-item stable seed and remaps every
per-choice field, so scoring and exam rules (kinki) work on the shuffled item unchanged;
``meta["permutation"]`` records, for each new position, the original index.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterable, Mapping

from jmedllm.schema import LETTERS, Question

from .stable import stable_key


def permutation_for(question: Question, seed: int) -> tuple[int, ...]:
    """The permutation ``shuffle_choices`` applies: new position -> current index.

    Each index is ranked by ``stable_key(seed, question.id, index)`` (SHA-256), which gives a
    uniformly random order that is the same in every process and Python version.
    """
    return tuple(sorted(range(len(question.choices)), key=lambda i: stable_key(seed, question.id, i)))


def shuffle_choices(question: Question, seed: int) -> Question:
    """A copy of ``question`` with its choices permuted (per item, by ``seed`` and its id).

    Remapped: ``choices``, ``answer``, ``answer_order`` (ordering questions), ``meta["kinki"]`` (indices) and ``meta["breakdown"]``
    (per-choice list, or mapping keyed by letter or index). ``meta["permutation"]`` is
    ``(original index of new position 0, of position 1, ...)``; shuffling a shuffled item
    composes, so it always refers to the original order. Numeric items come back unchanged.
    """
    if question.is_numeric:
        return question
    return permute_choices(question, permutation_for(question, seed))


def permute_choices(question: Question, perm: tuple[int, ...] | list[int]) -> Question:
    """Apply ``perm`` (new position -> current index) to ``question``: the remapping that
    ``shuffle_choices`` does, for a permutation given explicitly."""
    perm = tuple(perm)
    if sorted(perm) != list(range(len(question.choices))):
        raise ValueError(f"{question.id}: {perm} is not a permutation of {len(question.choices)} choices")
    new_of_old = {old: new for new, old in enumerate(perm)}
    meta: dict[str, Any] = dict(question.meta)
    if meta.get("kinki") is not None:
        meta["kinki"] = tuple(sorted(new_of_old[i] for i in _check_indices(question, meta["kinki"], "kinki")))
    if meta.get("breakdown") is not None:
        meta["breakdown"] = _permute_per_choice(question, meta["breakdown"], perm, new_of_old)
    earlier = meta.get("permutation")
    original = tuple(earlier) if earlier is not None else tuple(range(len(question.choices)))
    if len(original) != len(question.choices):
        raise ValueError(f"{question.id}: meta['permutation'] has {len(original)} entries for {len(question.choices)} choices")
    meta["permutation"] = tuple(original[old] for old in perm)
    return replace(
        question,
        choices=tuple(question.choices[old] for old in perm),
        answer=frozenset(new_of_old[i] for i in question.answer),
        answer_order=(tuple(new_of_old[i] for i in question.answer_order)
                      if question.answer_order is not None else None),
        meta=meta,
    )


def to_original_indices(question: Question, indices: Iterable[int]) -> frozenset[int]:
    """Map choice indices of a (possibly) shuffled item back to the original choice order.

    An item without ``meta["permutation"]`` was not shuffled: the indices are returned as is.
    """
    perm = question.meta.get("permutation")
    idx = frozenset(indices)
    bad = [i for i in idx if not 0 <= i < len(question.choices)]
    if bad:
        raise ValueError(f"{question.id}: indices {sorted(bad)} out of range for {len(question.choices)} choices")
    if perm is None:
        return idx
    return frozenset(perm[i] for i in idx)


def _check_indices(question: Question, values: Iterable[Any], field: str) -> list[int]:
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < len(question.choices):
            raise ValueError(
                f"{question.id}: meta[{field!r}] must hold choice indices 0..{len(question.choices) - 1}, found {v!r}"
            )
        out.append(v)
    return out


def _permute_per_choice(question: Question, values: Any, perm: tuple[int, ...], new_of_old: dict[int, int]) -> Any:
    if isinstance(values, Mapping):
        out = {}
        for key, value in values.items():
            if isinstance(key, int) and not isinstance(key, bool) and 0 <= key < len(perm):
                out[new_of_old[key]] = value
            elif isinstance(key, str) and len(key) == 1 and key.lower() in LETTERS[: len(perm)]:
                new_letter = LETTERS[new_of_old[LETTERS.index(key.lower())]]
                out[new_letter.upper() if key.isupper() else new_letter] = value
            else:
                raise ValueError(f"{question.id}: meta['breakdown'] key {key!r} is neither a choice index nor a letter")
        return out
    values = list(values)
    if len(values) != len(perm):
        raise ValueError(f"{question.id}: meta['breakdown'] has {len(values)} entries for {len(perm)} choices")
    return tuple(values[old] for old in perm)
