"""The evaluation runner: the one place that ties benchmarks, prompts, an engine and scoring
together, writes the run directory and resumes.

    questions ──> prompts ──> engine (in fixed chunks) ──> raw outputs ──> items.jsonl
                                                                  └──> scoring ──> summary

Verdicts in the summary are always recomputed from the raw outputs stored in items.jsonl
(scoring is pure), so a resumed run, an uninterrupted run and a later re-scoring agree.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from tqdm.auto import tqdm

from jmedllm.benchmarks.pools import default_shot_pool  # re-exported
from jmedllm.config import to_dict
from jmedllm.engine_outputs import generation_fields, letter_scores_from_top, split_reasoning  # noqa: F401
from jmedllm.run_identity import check_selection, check_stored_prompts, normalize_identity
from jmedllm.run_identity import identity as run_identity
from jmedllm.runs import RunDir, chunked, data_hashes, item_key, lock_run_dir, open_run, run_context
from jmedllm.schema import ContinuationScore, GenerationParams, LoglikRequest, Question

MODES = ("generate", "loglik", "letter")


@dataclass
class EvalConfig:
    """Everything `jmedllm eval` needs. All fields but those run_identity calls volatile (out, limit,
    device, batch size, data root, chunk size, bootstrap, summary_subset) and those the mode does
    not use (MODE_UNUSED) must match to resume a run directory."""

    model: str = ""
    benchmarks: list[str] = field(default_factory=list)
    out: str = ""
    data_root: str | None = None
    adapter: str | None = None
    engine: str = "hf"
    dtype: str = "auto"
    device: str = "auto"
    batch_size: str = "auto"
    max_length: int | None = None
    mode: str = "generate"
    prompt: str = "alpaca"  # a family name, or the path of a Jinja2 template file
    language: str | None = None  # prompt language; default: each question's own
    shots: int = 0
    shot_pool: str | None = None  # benchmark spec; default: see default_shot_pool()
    shared_shots: bool = False  # the same exemplars for every question (see select_shots)
    shuffle: bool = False
    seed: int = 0
    limit: int | None = None
    max_new_tokens: int = 64
    stop: list[str] = field(default_factory=list)
    first_line_only: bool = False
    chunk_size: int = 32  # items per durable chunk (resume granularity)
    bootstrap: int = 2000
    trust_remote_code: bool = False
    allow_outside_paths: bool = False  # let a custom mapping name files outside its folder
    answer_pattern: str | None = None  # regex with a named group "answer" (precedence: see answer_pattern.py)
    extract_with: str | None = None  # judge model asked about rule-unparsed answers (see judge.py)
    extract_engine: str = "hf"  # engine kind of the judge model
    summary_subset: bool = False  # allow a summary of fewer items than the run directory records
    # engine-specific keyword options (openai: base_url, api, api_key_env, concurrency, ...);
    # only what the engine's describe() reports enters the run identity
    engine_options: dict[str, Any] = field(default_factory=dict)
    top_logprobs: int = 20  # letter mode through top-k log-probs: k
    samples: int = 1  # generate: answers sampled per item (seeds seed, seed+1, ...); scored by majority vote
    temperature: float = 0.0  # generate: 0 = greedy


class EvalError(ValueError):
    """A problem with the evaluation's configuration or inputs (shown to the user as is)."""


@dataclass(frozen=True)
class PreparedItem:
    question: Question  # as shown to the model (shuffled when shuffle is on)
    original: Question
    key: str
    prompt: Any  # str, or chat messages (base.PromptInput); None when the outputs came from elsewhere (score)
    continuations: tuple[tuple[str, ...], ...]  # per choice; empty in generate mode
    shot_ids: tuple[str, ...]
    answer_pattern: str | None = None  # the user-declared pattern in force for this item
    answer_pattern_source: str | None = None  # "run" | "prompt_file" | "mapping"


@dataclass
class Prepared:
    items: list[PreparedItem]
    data_hashes: dict[str, str]
    not_applicable: list[str]  # keys of items this mode cannot score (numeric / select-all / ordering in loglik, letter)
    warnings: list[str]  # source quirks the loaders tolerated (file:line), recorded in config.json
    excluded: list[str] = field(default_factory=list)  # records the loaders left out on purpose (no answer key)
    answer_patterns: dict[str, Any] = field(default_factory=dict)  # every declared pattern, by source
    skipped_images: list[str] = field(default_factory=list)  # keys of image items a text-only engine skips


def _pool_spec(cfg: EvalConfig, spec: str) -> str:
    """The few-shot pool for ``spec``: --shot-pool, else a default disjoint from the evaluated items."""
    pool = cfg.shot_pool or default_shot_pool(spec)
    if pool is None:
        raise EvalError(f"--shots {cfg.shots} on {spec}: the data holds no split of {spec.split(':')[0]} "
                        "apart from the evaluated items, and exemplars drawn from them would leak "
                        "answers; give --shot-pool SPEC (e.g. another benchmark or your own custom: file)")
    return pool


def load_benchmarks(cfg: EvalConfig, data_root: Path | None) -> dict[str, Any]:
    """Every benchmark the run reads (evaluated specs and shot pools), loaded once: run_eval
    calls it before loading the model, so that bad data or a bad spec fails in seconds."""
    from jmedllm.benchmarks import load_benchmark

    specs = list(cfg.benchmarks)
    if cfg.shots > 0:
        specs += [_pool_spec(cfg, s) for s in cfg.benchmarks]
    return {spec: load_benchmark(spec, data_root, allow_outside_paths=cfg.allow_outside_paths)
            for spec in dict.fromkeys(specs)}


def _engine_input(prompt, format_chat: Callable | None, caps, question: Question, key: str):
    """What the engine is given for one prompt: a rendered string, or chat messages (an engine
    taking messages natively; always so for an item with images)."""
    from jmedllm.engines.messages import with_images

    if caps.chat and prompt.is_chat:
        value: Any = [dict(m) for m in prompt.messages]  # the API applies its own template; no assistant prefix
    elif prompt.is_chat and format_chat is None:
        raise EvalError(f"prompt family {prompt.family!r} produces chat messages and this engine renders none "
                        "(no chat template, no chat endpoint): use a text family (alpaca, medpalm, terse) or a "
                        "chat endpoint")
    else:
        value = prompt.render(format_chat)
    if question.images:
        missing = [p for p in question.images if not Path(p).is_file()]
        if missing:
            raise EvalError(f"{key}: image file(s) not found: {', '.join(missing)}")
        value = with_images(value, question.images)
    return value


def prepare_items(cfg: EvalConfig, data_root: Path | None, format_chat: Callable | None, caps=None,
                  loaded: dict[str, Any] | None = None, *, render: bool = True) -> Prepared:
    """Load benchmarks, apply limit / shuffle / shots, render prompts. Pure given the data.

    ``caps`` (the engine's base.Capabilities) decides whether prompts go as chat messages and
    whether image items are asked (else they are skipped and listed in ``skipped_images``).
    ``render=False`` (outputs produced elsewhere, `jmedllm score`): no prompt, shots or
    shuffling; ``cfg.prompt``, if given, only contributes the answer pattern its file declares.
    ``loaded``: benchmarks already read by :func:`load_benchmarks` (by spec).
    """
    from jmedllm import answer_pattern as AP
    from jmedllm import prompts as P
    from jmedllm.benchmarks import load_benchmark
    from jmedllm.engines.base import DEFAULT_CAPABILITIES

    caps = caps or DEFAULT_CAPABILITIES

    if cfg.mode not in MODES:
        raise EvalError(f"unknown mode {cfg.mode!r}; valid: {', '.join(MODES)}")
    if not cfg.benchmarks:
        raise EvalError("no benchmark given (--benchmark igakuqa,igakuqa-en,...)")
    family, template_file = "alpaca", None
    try:
        if render or cfg.prompt:
            family, template_file = P.resolve_prompt_spec(cfg.prompt)
        run_pattern = AP.check(cfg.answer_pattern, "--answer-pattern") if cfg.answer_pattern else None
        file_pattern = AP.from_template(template_file) if template_file else None
    except (P.PromptTemplateError, AP.AnswerPatternError) as exc:
        raise EvalError(str(exc)) from None
    patterns: dict[str, Any] = {}
    if run_pattern:
        patterns["run"] = run_pattern
    if file_pattern:
        patterns["prompt_file"] = {"path": str(template_file), "pattern": file_pattern}

    files: list[Path] = []
    items: list[PreparedItem] = []
    not_applicable: list[str] = []
    skipped_images: list[str] = []
    warnings: list[str] = []
    excluded: list[str] = []
    for spec in cfg.benchmarks:
        bench = (loaded or {}).get(spec) or load_benchmark(spec, data_root, allow_outside_paths=cfg.allow_outside_paths)
        files += bench.files
        warnings += [f"{bench.name}: {w}" for w in bench.warnings]
        excluded += [f"{bench.name}: {e}" for e in bench.excluded]
        questions = list(bench.questions)
        if cfg.limit is not None:
            questions = questions[: cfg.limit]
        pool: list[Question] = []
        if cfg.shots > 0:
            pool_spec = _pool_spec(cfg, spec)
            pool_bench = ((loaded or {}).get(pool_spec)
                          or load_benchmark(pool_spec, data_root, allow_outside_paths=cfg.allow_outside_paths))
            files += pool_bench.files
            pool = [q for q in pool_bench.questions if not q.is_numeric and q.selection == "n"]
        for q in questions:
            if (q.is_numeric or q.selection != "n") and cfg.mode != "generate":
                not_applicable.append(item_key(bench.name, q.id))
                continue
            pattern, source = AP.resolve(run_pattern, file_pattern, q.meta)
            declared = q.meta.get("answer_pattern")
            if declared and declared != patterns.get("mapping", {}).get(bench.name):
                try:
                    AP.check(declared, f"{bench.name}: the mapping's answer_pattern")
                except AP.AnswerPatternError as exc:
                    raise EvalError(str(exc)) from None
                patterns.setdefault("mapping", {})[bench.name] = declared
            if not render:
                items.append(PreparedItem(q, q, item_key(bench.name, q.id), None, (), (), pattern, source))
                continue
            if q.images and not caps.images:
                skipped_images.append(item_key(bench.name, q.id))
                continue
            shown = P.shuffle_choices(q, cfg.seed) if cfg.shuffle and not q.is_numeric else q
            try:
                shots = P.select_shots(q, pool, cfg.shots, cfg.seed, shared=cfg.shared_shots) if cfg.shots > 0 else []
            except ValueError as exc:
                raise EvalError(f"{exc}; use a larger --shot-pool or fewer --shots") from None
            if cfg.shuffle:
                shots = [P.shuffle_choices(s, cfg.seed) for s in shots]
            prompt = P.build_prompt(shown, family=family, mode=cfg.mode, language=cfg.language, shots=shots,
                                    template_file=template_file)
            text = _engine_input(prompt, format_chat, caps, q, item_key(bench.name, q.id))
            conts: tuple[tuple[str, ...], ...] = ()
            if cfg.mode != "generate":
                conts = tuple(tuple(c) for c in P.choice_continuations(shown, mode=cfg.mode, language=prompt.language))
            items.append(PreparedItem(shown, q, item_key(bench.name, q.id), text, conts, tuple(s.id for s in shots),
                                      pattern, source))
    if not items and not_applicable:
        raise EvalError(f"nothing to score in {cfg.mode} mode: all {len(not_applicable)} selected item(s) are "
                        "numeric, select-all or ordering questions, which only --mode generate can score")
    keys = [it.key for it in items]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})[:5]
        raise EvalError(f"the same item appears twice in this evaluation: {', '.join(dup)}")
    if patterns:
        patterns["precedence"] = " > ".join(AP.SOURCES)
    return Prepared(items, data_hashes(files, data_root), not_applicable, warnings, excluded,
                    answer_patterns=patterns, skipped_images=skipped_images)


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
        completions = engine.generate([it.prompt for it in chunk], params)
        for it, c in zip(chunk, completions):
            records.append(base_record(it) | generation_fields(c) | {
                "n_prompt_tokens": c.n_prompt_tokens, "truncated_tokens": c.truncated_tokens})
        return records
    if any(not isinstance(it.prompt, str) for it in chunk):
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


def _run_chunk_samples(engine, cfg: EvalConfig, chunk: Sequence[PreparedItem]) -> list[dict[str, Any]]:
    """``cfg.samples`` answers per item, sample k drawn with seed ``cfg.seed + k``."""
    per_item: list[list[dict]] = [[] for _ in chunk]
    for k in range(cfg.samples):
        params = GenerationParams(max_new_tokens=cfg.max_new_tokens, stop=tuple(cfg.stop), seed=cfg.seed + k,
                                  temperature=cfg.temperature)
        for i, c in enumerate(engine.generate([it.prompt for it in chunk], params)):
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


def summarize(prepared: Prepared, run: RunDir, cfg: EvalConfig, engine_usage: dict | None = None) -> tuple[dict, str]:
    """Summary of the finished items, verdicts recomputed from the stored raw outputs."""
    from jmedllm import scoring

    from jmedllm import judge

    pairs = []
    judged: list = []  # per item: the judge's verdict, or None where the judge was not asked
    truncated = 0
    sampled: list[list] = []  # --samples K: each item's sample verdicts
    hit_budget = reasoning_tokens = 0  # generate: answers cut by max_new_tokens; reasoning tokens spent
    labels_absent = 0  # letter mode via top-k: items with at least one choice label outside the top-k
    no_label = 0  # ... and items with none inside it
    for it in prepared.items:
        rec = run.done.get(it.key)
        if rec is None:
            continue
        pairs.append((it.question, verdict_for(it.question, rec, cfg.mode, cfg.first_line_only, it.answer_pattern)))
        judged.append(judge.judge_verdict(it.question, rec["judge"]["reply"]) if "judge" in rec else None)
        truncated += 1 if rec.get("truncated_tokens", 0) else 0
        hit_budget += sum(s.get("finish_reason") == "length" for s in rec.get("samples", [rec]))
        if "samples" in rec:
            sampled.append([scoring.score_generation(it.question, s["output"], first_line_only=cfg.first_line_only,
                                                     answer_pattern=it.answer_pattern) for s in rec["samples"]])
        reasoning_tokens += rec.get("n_reasoning_tokens", 0)
        if rec.get("letter_via") == "top_logprobs":
            absent = [all(s["logprob"] is None for s in g) for g in rec["scores"]]
            labels_absent += any(absent)
            no_label += all(absent)
    if not pairs:
        raise EvalError("no item could be evaluated with this engine" + (
            f" ({len(prepared.skipped_images)} image item(s) skipped: the engine is text-only)"
            if prepared.skipped_images else ""))
    summary = scoring.aggregate(pairs, seed=cfg.seed, n_resamples=cfg.bootstrap)
    summary["run"] = {
        "model": cfg.model, "adapter": cfg.adapter, "mode": cfg.mode, "prompt": cfg.prompt, "shots": cfg.shots,
        "shuffle": cfg.shuffle, "seed": cfg.seed, "benchmarks": list(cfg.benchmarks),
        "items_planned": len(prepared.items), "items_done": len(pairs), "prompts_truncated": truncated,
        "items_recorded": len(run.done), "subset": len(pairs) < len(run.done),
        "not_applicable": {"count": len(prepared.not_applicable), "reason": "numeric, select-all and ordering "
                           "items have no single choice to rank in this mode (use --mode generate); exam verdicts "
                           "count them wrong",
                           "items": prepared.not_applicable},
        "excluded": {"count": len(prepared.excluded), "reason": "left out by the loader (e.g. no official answer "
                     "key); not in any count or exam maximum", "items": prepared.excluded},
        "hit_token_budget": hit_budget, "reasoning_tokens": reasoning_tokens,
        "skipped": {"image": {"count": len(prepared.skipped_images), "reason": "the engine is text-only; items with "
                              "images need a vision-language engine", "items": prepared.skipped_images}},
    }
    if prepared.answer_patterns:
        summary["run"]["answer_patterns"] = prepared.answer_patterns
    if cfg.extract_with:
        summary["judge"] = judge.summarize([v for _, v in pairs], judged, model=cfg.extract_with, seed=cfg.seed,
                                           n_resamples=cfg.bootstrap)
    if sampled:
        from jmedllm.sampling import samples_summary

        summary["samples"] = samples_summary(sampled, seed=cfg.seed, n_resamples=cfg.bootstrap,
                                             temperature=cfg.temperature)
    with_image = [(q, v) for q, v in pairs if q.images]
    if with_image:  # the same metrics on the items asked with and without images, side by side
        text_pairs = [(q, v) for q, v in pairs if not q.images]
        summary["images"] = {name: scoring.aggregate(sub, seed=cfg.seed, n_resamples=cfg.bootstrap)["overall"]
                             for name, sub in (("text_only", text_pairs), ("with_image", with_image)) if sub}
    if cfg.mode == "letter" and (labels_absent or any(r.get("letter_via") == "top_logprobs"
                                                      for r in run.done.values())):
        summary["run"]["top_logprobs"] = {"k": cfg.top_logprobs, "items_with_a_label_absent": labels_absent,
                                          "items_without_any_label": no_label}
    if engine_usage:
        summary["engine_usage"] = engine_usage
    markdown = scoring.summary_markdown(summary)
    if cfg.extract_with:
        markdown += judge.summary_markdown(summary["judge"])
    notes = []
    if sampled:
        s = summary["samples"]
        notes.append(f"- {s['k']} samples per item at temperature {s['temperature']}: mean accuracy "
                     f"{100 * s['mean_accuracy']['mean']:.1f}% [{100 * s['mean_accuracy']['low']:.1f}, "
                     f"{100 * s['mean_accuracy']['high']:.1f}], majority vote {100 * s['majority_vote_accuracy']['mean']:.1f}% "
                     f"[{100 * s['majority_vote_accuracy']['low']:.1f}, {100 * s['majority_vote_accuracy']['high']:.1f}] "
                     "(the overall table scores the majority answer)")
    if hit_budget:
        notes.append(f"- {hit_budget} answer(s) hit the token budget (--max-new-tokens {cfg.max_new_tokens}) and were "
                     "cut off: raise it for reasoning models")
    if prepared.skipped_images:
        notes.append(f"- skipped: image — {len(prepared.skipped_images)} item(s) with images not asked (text-only "
                     f"engine): {', '.join(prepared.skipped_images[:10])}" + (" …" if len(prepared.skipped_images) > 10
                                                                              else ""))
    if "images" in summary:
        cells = [f"{name}: {100 * g['metrics']['accuracy']['mean']:.1f}% (n={g['n']})"
                 for name, g in summary["images"].items() if "accuracy" in g.get("metrics", {})]
        notes.append("- text-only vs with-image items: " + "; ".join(cells))
    if no_label or labels_absent:
        notes.append(f"- letter mode through top-{cfg.top_logprobs} log-probs: {labels_absent} item(s) had a choice "
                     f"label absent from the top-k (ranked below every listed token), {no_label} had none "
                     "(no answer, counted wrong)")
    if engine_usage:
        notes.append("- engine usage: " + ", ".join(f"{k}={v}" for k, v in engine_usage.items()
                                                    if not isinstance(v, dict)))
    if prepared.not_applicable:
        notes.append(f"- {len(prepared.not_applicable)} numeric / select-all / ordering item(s) not scorable in {cfg.mode} mode "
                     f"(counted wrong in exam verdicts): {', '.join(prepared.not_applicable[:10])}"
                     + (" …" if len(prepared.not_applicable) > 10 else ""))
    if prepared.excluded:
        notes.append(f"- {len(prepared.excluded)} record(s) excluded by the loader (no official answer key): "
                     + ", ".join(prepared.excluded[:10]) + (" …" if len(prepared.excluded) > 10 else ""))
    if truncated:
        notes.append(f"- {truncated} prompt(s) were longer than the model context and cut from the left")
    if len(pairs) < len(prepared.items):
        notes.append(f"- partial run: {len(pairs)} of {len(prepared.items)} items done")
    if len(pairs) < len(run.done):
        notes.append(f"- this summary covers {len(pairs)} of {len(run.done)} recorded items (the items this command "
                     "selected, --summary-subset); items.jsonl holds all of them")
    if notes:
        markdown += "\n## Notes\n\n" + "\n".join(notes) + "\n"
    return summary, markdown


def _data_root_for(cfg: EvalConfig) -> Path | None:
    """The data root; None when every benchmark (and the shot pool) is a custom: mapping and
    none is configured (a mapping names its own files)."""
    from jmedllm.paths import DataRootError, resolve_data_root

    specs = [*cfg.benchmarks, *([cfg.shot_pool] if cfg.shot_pool else [])]
    try:
        return resolve_data_root(cfg.data_root)
    except DataRootError:
        given = cfg.data_root or os.environ.get("JMEDLLM_DATA_ROOT")
        if not given and specs and all(s.strip().startswith("custom:") for s in specs):
            return None
        raise


def run_eval(cfg: EvalConfig, engine=None, argv: list[str] | None = None, judge_engine=None,
             context: dict[str, Any] | None = None) -> Path:
    """Run (or resume) an evaluation; returns the run directory.

    The run directory is locked first (a second process on it is refused before it loads a model)
    and stays locked until the summary is written. ``context``: more to record in config.json
    (not part of the identity), e.g. the training step of a checkpoint evaluated during
    training: ``{"training": {"step": 200, "output_dir": ...}}``.
    """
    from jmedllm import judge
    from jmedllm.engines.base import capabilities_of

    if not cfg.out:
        raise EvalError("no output directory given (--out DIR)")
    data_root = _data_root_for(cfg)
    if cfg.extract_with and cfg.mode != "generate":
        raise EvalError(f"--extract-with reads generated answers; mode {cfg.mode!r} has none (use --mode generate)")
    # every benchmark read (and checked) before --out is touched and before the model loads
    loaded = load_benchmarks(cfg, data_root) if cfg.benchmarks and cfg.mode in MODES else None
    with lock_run_dir(cfg.out) as lock:
        if engine is None:
            engine = load_engine_for(cfg)
        caps = capabilities_of(engine)
        if cfg.mode not in caps.modes():
            raise EvalError(f"engine {getattr(engine, 'kind', '?')!r} cannot run {cfg.mode} mode"
                            + ("".join(f" ({n})" for n in caps.notes)) + f"; it can run: {', '.join(caps.modes())}")
        format_chat = getattr(engine, "format_chat", None)
        prepared = prepare_items(cfg, data_root, format_chat, caps, loaded)
        if judge_engine is None and cfg.extract_with:
            judge_engine = load_judge_for(cfg, engine)
        judge_desc = judge.describe(judge_engine, cfg.extract_with) if judge_engine is not None else None
        identity = run_identity(cfg, engine.describe(), prepared.data_hashes, prepared.answer_patterns, judge_desc)
        with open_run(cfg.out, identity, run_context(argv) | {"resolved_config": to_dict(cfg),
                                                              "data_warnings": prepared.warnings} | (context or {}),
                      lock=lock, normalize=normalize_identity) as run:
            check_selection(run, prepared, cfg)
            if hasattr(engine, "use_cache_dir"):  # response cache kept with the run, so a rerun resumes for free
                engine.use_cache_dir(run.path)
            run_items(cfg, prepared, run, lambda chunk: _run_chunk(engine, cfg, chunk), judge_engine)
            summary, markdown = summarize(prepared, run, cfg, engine.usage() if hasattr(engine, "usage") else None)
            run.write_summary(summary, markdown)
            return run.path


def run_items(cfg: EvalConfig, prepared: Prepared, run: RunDir,
              produce: Callable[[Sequence[PreparedItem]], list[dict[str, Any]]], judge_engine=None,
              desc: str | None = None) -> None:
    """The item loop every run directory is written by: for each chunk not yet done, ``produce``
    its raw records (an engine, or outputs recorded elsewhere), score them, ask the judge about
    the unparsed ones (when one is given) and append them durably."""
    items = prepared.items
    check_stored_prompts(run, items)
    todo_chunks = [c for c in chunked(items, max(1, cfg.chunk_size)) if not all(run.is_done(it.key) for it in c)]
    progress = tqdm(total=len(items), initial=sum(run.is_done(it.key) for it in items),
                    desc=desc or f"eval {cfg.mode}", unit="item", file=sys.stderr, dynamic_ncols=True,
                    smoothing=0.1)  # items, rate, ETA
    try:
        for chunk in todo_chunks:
            records = produce(chunk)
            by_key = {it.key: it for it in chunk}
            new = [r for r in records if not run.is_done(r["key"])]
            for r in new:
                it = by_key[r["key"]]
                r["verdict"] = verdict_for(it.question, r, cfg.mode, cfg.first_line_only, it.answer_pattern).to_dict()
            if judge_engine is not None:
                from jmedllm import judge

                pending = [(by_key[r["key"]].question, r) for r in new if not r["verdict"]["parsed"]]
                judge.attach(judge_engine, cfg.extract_with, pending)
            run.append(new)
            progress.update(len(new))
    finally:
        progress.close()


BASE_ADAPTER = "none"  # in an adapter list: the bare base model


def run_eval_adapters(cfg: EvalConfig, adapters: Sequence[str], argv: list[str] | None = None) -> list[Path]:
    """Evaluate several adapters (and, for "none", the bare base) against ONE loaded base model.

    Each gets its own run directory ``<cfg.out>/<name>`` (the adapter folder's name, or "base"),
    with the same identity as a single-adapter run of that adapter would have.
    """
    if not adapters:
        raise EvalError("no adapters given")
    names: dict[str, str | None] = {}
    for a in adapters:
        name = "base" if a == BASE_ADAPTER else Path(a).expanduser().name or "adapter"
        if name in names:
            raise EvalError(f"two adapters would share the run directory name {name!r}: rename one folder")
        names[name] = None if a == BASE_ADAPTER else a
    lora = {"enable_lora": True} if cfg.engine == "vllm" else {}  # vLLM serves adapters only when started so
    engine = load_engine_for(replace(cfg, adapter=None, engine_options=dict(cfg.engine_options) | lora))
    loaded = {name: engine.load_adapter(path, name=name, activate=False) for name, path in names.items() if path}
    # one judge for every run, apart from the engine whose adapters are switched
    judge_engine = load_judge_for(cfg) if cfg.extract_with and cfg.mode == "generate" else None
    out = []
    for name, path in names.items():
        engine.use_adapter(loaded.get(name))
        out.append(run_eval(replace(cfg, adapter=path, out=str(Path(cfg.out) / name)), engine=engine, argv=argv,
                            judge_engine=judge_engine))
    return out


def load_judge_for(cfg: EvalConfig, engine=None):
    """The judge engine: the evaluated engine itself when it is the same bare model, else a new one."""
    if engine is not None and cfg.extract_with == cfg.model and cfg.extract_engine == cfg.engine and not cfg.adapter:
        return engine
    try:
        return load_engine_for(replace(cfg, engine=cfg.extract_engine, model=cfg.extract_with, adapter=None,
                                       max_length=None))
    except ValueError as exc:  # unknown engine kind
        raise EvalError(f"--extract-with {cfg.extract_with}: {exc}") from None


def load_engine_for(cfg: EvalConfig):
    from jmedllm.engines import load_engine

    batch: int | str = int(cfg.batch_size) if str(cfg.batch_size).isdigit() else cfg.batch_size
    if cfg.engine != "hf":  # remote and non-torch engines take their own options
        options = dict(cfg.engine_options)
        if cfg.adapter:
            options.setdefault("adapter", cfg.adapter)
        if cfg.max_length:
            options.setdefault("max_length", cfg.max_length)
        return load_engine(cfg.engine, model=cfg.model, **options)
    return load_engine(cfg.engine, model=cfg.model, adapter=cfg.adapter, dtype=cfg.dtype, device=cfg.device,
                       batch_size=batch, max_length=cfg.max_length, trust_remote_code=cfg.trust_remote_code,
                       **cfg.engine_options)

