"""Exam-verified rewards for GRPO: jmedllm's own scoring of each generated answer.

Pure functions (no I/O, no torch). A completion is scored with ``scoring.verdict.score_generation``
exactly as ``jmedllm eval`` scores it (same extraction, official exceptions, accepted answer sets,
forbidden choices), and the verdict becomes four reward terms, logged separately by TRL:

- ``correct``: ``rewards.correct`` when the extracted set is an accepted answer set; with
  ``partial_credit``, ``correct`` x F1 of the extracted set against the best accepted set;
- ``kinki``: ``-rewards.kinki_penalty`` when a forbidden choice (禁忌肢) is among the selected;
- ``format``: ``rewards.format`` when the extractor parses an answer at all;
- ``length``: ``-rewards.length_penalty`` per completion token beyond ``rewards.target_length``
  (a reasoning-length control beside the hard cap ``grpo.max_completion_length``).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from jmedllm.train.specs import RewardSpec

TERMS = ("correct", "kinki", "format", "length")


def completion_text(completion: Any) -> str:
    """The generated text: a string (text prompts) or the assistant message(s) (conversational prompts)."""
    if isinstance(completion, str):
        return completion
    return "".join(m.get("content", "") for m in completion)


def reward_terms(question: Any, text: str, spec: RewardSpec, n_tokens: int | None = None) -> dict[str, float]:
    """The four reward terms of one completion (see the module docstring)."""
    from jmedllm.scoring.verdict import score_generation

    v = score_generation(question, text)
    if v.correct:
        correct = spec.correct
    elif spec.partial_credit and v.f1 is not None:
        correct = spec.correct * v.f1
    else:
        correct = 0.0
    over = 0 if spec.target_length is None or n_tokens is None else max(0, n_tokens - spec.target_length)
    return {
        "correct": float(correct),
        "kinki": -spec.kinki_penalty if v.kinki_selected else 0.0,
        "format": spec.format if v.parsed else 0.0,
        "length": -spec.length_penalty * over,
    }


def total_reward(terms: Mapping[str, float]) -> float:
    return float(sum(terms[t] for t in TERMS))


def reward_functions(questions: Mapping[str, Any], spec: RewardSpec) -> list[Callable[..., list[float]]]:
    """TRL reward functions, one per term; each finds the item by the dataset's ``qid`` column.

    The four share one cache, so each completion is scored once per step."""
    cache: dict[tuple[str, str, int | None], dict[str, float]] = {}

    def terms_of(qid: str, text: str, n: int | None) -> dict[str, float]:
        key = (qid, text, n)
        if key not in cache:
            if len(cache) > 100_000:
                cache.clear()
            cache[key] = reward_terms(questions[qid], text, spec, n)
        return cache[key]

    def make(term: str) -> Callable[..., list[float]]:
        def reward(prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Sequence[Sequence[int]] | None = None,
                   qid: Sequence[str] = (), **_: Any) -> list[float]:
            out = []
            for i, completion in enumerate(completions):
                n = len(completion_ids[i]) if completion_ids is not None else None
                out.append(terms_of(qid[i], completion_text(completion), n)[term])
            return out

        reward.__name__ = term  # TRL logs rewards/<name>/mean
        return reward

    return [make(t) for t in TERMS]
