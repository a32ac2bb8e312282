"""From benchmark specs to prepared items: questions loaded, shots chosen, prompts rendered
(as text or chat messages, with images where the engine takes them). Pure given the data."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from jmedllm.benchmarks.pools import default_shot_pool
from jmedllm.evaluate.config import MODES, EvalConfig, EvalError
from jmedllm.provenance import data_hashes
from jmedllm.runs import item_key
from jmedllm.schema import Question


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
    elif prompt.is_chat and question.images and format_chat is not None:
        # an engine rendering its own template (a local vision-language model): the template places
        # the images in the user turn; the text then travels with the files (with_images below)
        value = format_chat(with_images(list(prompt.messages), question.images)) + prompt.assistant_prefix
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
