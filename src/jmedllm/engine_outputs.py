"""Engine outputs as item-record fields (pure): a generation's answer apart from a reasoning
model's thinking, and letter-mode label scores read off a first token's top-k log-probs."""

from __future__ import annotations

from typing import Any, Sequence

THINK_END = "</think>"


def split_reasoning(text: str) -> tuple[str, str]:
    """``(answer, reasoning)``: a reasoning model's ``<think>…</think>`` block is set apart (the
    answer is what follows it); an unclosed block (cut by the token budget) leaves no answer."""
    if THINK_END in text:
        thinking, _, answer = text.partition(THINK_END)
        return answer.lstrip(), thinking.replace("<think>", "", 1).strip()
    if text.lstrip().startswith("<think>"):
        return "", text.lstrip()[len("<think>"):].strip()
    return text, ""


def generation_fields(c) -> dict[str, Any]:
    answer, thinking = split_reasoning(c.text)
    out = {"output": answer, "finish_reason": c.finish_reason, "n_completion_tokens": c.n_completion_tokens}
    reasoning = "\n".join(r for r in (getattr(c, "reasoning", ""), thinking) if r)
    if reasoning:
        out |= {"reasoning": reasoning, "n_reasoning_tokens": getattr(c, "n_reasoning_tokens", 0)}
    return out


def letter_scores_from_top(top: dict[str, float], continuations: Sequence[Sequence[str]]) -> list[list[dict]]:
    """Per choice and label spelling, the log-probability of a first answer token that spells it
    (tokens compared without surrounding whitespace; several tokens spelling it: logsumexp), or
    None where no token of the top-k spells it: absent, known only to be below every listed one."""
    from jmedllm.scoring.metrics import logsumexp

    by_text: dict[str, list[float]] = {}
    for token, logprob in top.items():
        by_text.setdefault(token.strip(), []).append(float(logprob))
    out = []
    for group in continuations:
        scores = []
        for variant in group:
            found = by_text.get(variant.strip())
            scores.append({"logprob": logsumexp(found) if found else None, "n_tokens": 1, "n_chars": len(variant),
                           "is_greedy": False})
        out.append(scores)
    return out


__all__ = ["generation_fields", "letter_scores_from_top", "split_reasoning"]
