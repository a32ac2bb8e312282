"""One chunk of items through an engine into raw item records, and the verdict of a stored
record (pure: the same raw output always gives the same verdict)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

from jmedllm.engine_outputs import generation_fields, letter_scores_from_top
from jmedllm.evaluate.config import EvalConfig, EvalError
from jmedllm.evaluate.prepare import PreparedItem
from jmedllm.engines.base import LetterChoice
from jmedllm.schema import ContinuationScore, GenerationParams, LoglikRequest, Question


def _run_chunk(engine, cfg: EvalConfig, chunk: Sequence[PreparedItem]) -> list[dict[str, Any]]:
    """Compute raw outputs for every item of a chunk (the chunk is always computed whole)."""
    from jmedllm.engines.base import capabilities_of

    records: list[dict[str, Any]] = []
    if cfg.mode == "letter" and capabilities_of(engine).letter == "top_logprobs":
        return _run_chunk_top_logprobs(engine, cfg, chunk)
    if cfg.mode == "generate" and cfg.samples > 1:
        return _run_chunk_samples(engine, cfg, chunk)
    if cfg.mode == "generate":
        params = GenerationParams(max_new_tokens=cfg.max_new_tokens, stop=tuple(cfg.stop), seed=cfg.seed,
                                  temperature=cfg.temperature)
        completions = engine.generate([it.prompt for it in chunk], params, **_letters(cfg, chunk))
        for it, c in zip(chunk, completions):
            records.append(base_record(it) | generation_fields(c) | {
                "n_prompt_tokens": c.n_prompt_tokens, "truncated_tokens": c.truncated_tokens})
        return records
    caps = capabilities_of(engine)
    if any(not isinstance(it.prompt, str) and (caps.chat or not caps.images) for it in chunk):
        # (an engine rendering its own template takes image items as rendered text + image parts)
        raise EvalError(f"{cfg.mode} mode scores continuations of a text prompt; this engine was given chat messages "
                        "(use --mode generate, or letter mode through top log-probs)")
    requests = [LoglikRequest(it.prompt, tuple(c for group in it.continuations for c in group)) for it in chunk]
    for it, flat in zip(chunk, engine.loglikelihoods(requests)):
        grouped, i = [], 0
        for group in it.continuations:
            grouped.append([{"logprob": s.logprob, "n_tokens": s.n_tokens, "n_chars": s.n_chars,
                             "is_greedy": s.is_greedy} for s in flat[i : i + len(group)]])
            i += len(group)
        records.append(base_record(it) | {
            "scores": grouped, "truncated_tokens": max((s.truncated_tokens for s in flat), default=0),
        })
    return records


def letter_choice(question: Question) -> LetterChoice | None:
    """What a letter-only answer to ``question`` looks like: its labels, as many as it asks for
    (one or more comma-separated; any number for select-all; every label for an ordering).
    None for a numeric item (no labels: its answer stays free)."""
    if question.is_numeric:
        return None
    labels = question.letters
    if question.selection == "all":
        return LetterChoice(labels, 1, None)
    if question.selection == "order":
        return LetterChoice(labels, len(labels), len(labels))
    n = max(1, question.n_select)
    return LetterChoice(labels, n, n)


def _letters(cfg: EvalConfig, chunk: Sequence[PreparedItem]) -> dict[str, Any]:
    """``generate``'s ``letters=`` argument under --letter-grammar (each item its own labels), else nothing."""
    return {"letters": [letter_choice(it.question) for it in chunk]} if cfg.letter_grammar else {}


def _run_chunk_samples(engine, cfg: EvalConfig, chunk: Sequence[PreparedItem]) -> list[dict[str, Any]]:
    """``cfg.samples`` answers per item, sample k drawn with seed ``cfg.seed + k``."""
    per_item: list[list[dict]] = [[] for _ in chunk]
    for k in range(cfg.samples):
        params = GenerationParams(max_new_tokens=cfg.max_new_tokens, stop=tuple(cfg.stop), seed=cfg.seed + k,
                                  temperature=cfg.temperature)
        for i, c in enumerate(engine.generate([it.prompt for it in chunk], params, **_letters(cfg, chunk))):
            per_item[i].append(generation_fields(c) | {"seed": cfg.seed + k})
    records = []
    for it, samples in zip(chunk, per_item):
        records.append(base_record(it) | {"samples": samples, "output": samples[0]["output"],
                                            "finish_reason": samples[0]["finish_reason"], "truncated_tokens": 0})
    return records


def _run_chunk_top_logprobs(engine, cfg: EvalConfig, chunk: Sequence[PreparedItem]) -> list[dict[str, Any]]:
    """Letter mode for engines that cannot score continuations: the first answer token's top-k."""
    records = []
    for it, first in zip(chunk, engine.first_token_logprobs([it.prompt for it in chunk], cfg.top_logprobs)):
        scores = letter_scores_from_top(first.top, it.continuations)
        records.append(base_record(it) | {
            "scores": scores, "first_token": first.text, "top_logprobs": first.top, "letter_via": "top_logprobs",
            "labels_absent": sum(s["logprob"] is None for g in scores for s in g),
            "n_prompt_tokens": first.n_prompt_tokens, "truncated_tokens": 0,
        })
    return records


def base_record(it: PreparedItem) -> dict[str, Any]:
    q = it.question
    rec: dict[str, Any] = {
        "key": it.key, "benchmark": it.key.split("::")[0], "id": it.original.id, "language": q.language,
        "prompt": it.prompt, "shots": list(it.shot_ids),
    }
    if it.answer_pattern_source:
        rec["answer_pattern_source"] = it.answer_pattern_source
    if it.continuations:
        rec["continuations"] = [list(g) for g in it.continuations]
    if "permutation" in q.meta:
        rec["permutation"] = list(q.meta["permutation"])
    return rec


def verdict_for(question: Question, record: dict[str, Any], mode: str, first_line_only: bool = False,
                answer_pattern: str | None = None):
    """Score one stored record (pure): the same raw output always gives the same verdict."""
    from jmedllm import scoring

    if mode == "generate" and "samples" in record:  # the majority answer's verdict
        from jmedllm.sampling import majority_index

        verdicts = [scoring.score_generation(question, s["output"], first_line_only=first_line_only,
                                             answer_pattern=answer_pattern) for s in record["samples"]]
        return verdicts[majority_index(verdicts)]
    if mode == "generate":
        return scoring.score_generation(question, record["output"], first_line_only=first_line_only,
                                        answer_pattern=answer_pattern)

    if mode == "letter" and all(s["logprob"] is None for g in record["scores"] for s in g):
        # no choice label among the first token's top-k: no answer, never a guessed one
        empty = scoring.score_generation(question, "")
        return dataclasses.replace(empty, mode="letter", method="letter_absent_from_top_k", exact_match=None,
                                   gestalt=None, gestalt_predicted=None, gestalt_correct=None, span=None, matched=None)
    groups = [[ContinuationScore(-math.inf if s["logprob"] is None else s["logprob"], s["n_tokens"], s["n_chars"],
                                 s.get("is_greedy", False)) for s in g] for g in record["scores"]]
    if mode == "loglik":
        return scoring.score_loglik(question, [g[0] for g in groups])
    return scoring.score_letter(question, groups)
