"""The evaluation runner: the one place that ties benchmarks, prompts, an engine and scoring
together, writes the run directory and resumes.

    questions ──> prompts ──> engine (in fixed chunks) ──> raw outputs ──> items.jsonl
                                                                  └──> scoring ──> summary

Verdicts in the summary are always recomputed from the raw outputs stored in items.jsonl
(scoring is pure), so a resumed run, an uninterrupted run and a later re-scoring agree.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from tqdm.auto import tqdm

from jmedllm.config import to_dict
from jmedllm.runs import RunDir, chunked, data_hashes, item_key, model_fingerprint, open_run, run_context
from jmedllm.schema import ContinuationScore, GenerationParams, LoglikRequest, Question

MODES = ("generate", "loglik", "letter")


@dataclass
class EvalConfig:
    """Everything `jmedllm eval` needs. All fields but those _identity() calls volatile (out, limit,
    device, batch size, data root, chunk size, bootstrap) must match to resume a run directory."""

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
    shuffle: bool = False
    seed: int = 0
    limit: int | None = None
    max_new_tokens: int = 64
    stop: list[str] = field(default_factory=list)
    first_line_only: bool = False
    chunk_size: int = 32  # items per durable chunk (resume granularity)
    bootstrap: int = 2000
    trust_remote_code: bool = False
    answer_pattern: str | None = None  # regex with a named group "answer" (precedence: see answer_pattern.py)
    extract_with: str | None = None  # judge model asked about rule-unparsed answers (see judge.py)
    extract_engine: str = "hf"  # engine kind of the judge model


class EvalError(ValueError):
    """A problem with the evaluation's configuration or inputs (shown to the user as is)."""


@dataclass(frozen=True)
class PreparedItem:
    question: Question  # as shown to the model (shuffled when shuffle is on)
    original: Question
    key: str
    prompt: str | None  # None when the outputs were produced elsewhere (jmedllm score)
    continuations: tuple[tuple[str, ...], ...]  # per choice; empty in generate mode
    shot_ids: tuple[str, ...]
    answer_pattern: str | None = None  # the user-declared pattern in force for this item
    answer_pattern_source: str | None = None  # "run" | "prompt_file" | "mapping"


def default_shot_pool(spec: str) -> str:
    """Where few-shot exemplars come from when --shot-pool is not given.

    IgakuQA: another exam year (the year before the evaluated one; 2018 -> the newest
    year not evaluated); when every year is evaluated, the 119th exam for Japanese.
    Other benchmarks: the benchmark itself; the evaluated item is always excluded by
    ``select_shots`` (same id or same normalised text).
    """
    name, _, rest = spec.partition(":")
    if name in ("igakuqa", "igakuqa-en"):
        all_years = list(range(2018, 2023))
        years = sorted({int(p) for p in rest.split(":") if p.isdigit() and len(p) == 4}) if rest else []
        years = years or all_years
        others = [y for y in all_years if y not in years]
        if others:
            before = [y for y in others if y < years[0]]
            return f"{name}:{before[-1] if before else others[-1]}"
        return "igakuqa119" if name == "igakuqa" else spec
    return spec


@dataclass
class Prepared:
    items: list[PreparedItem]
    data_hashes: dict[str, str]
    not_applicable: list[str]  # keys of items this mode cannot score (numeric items in loglik / letter)
    warnings: list[str]  # source quirks the loaders tolerated (file:line), recorded in config.json
    answer_patterns: dict[str, Any] = field(default_factory=dict)  # every declared pattern, by source


def prepare_items(cfg: EvalConfig, data_root: Path, format_chat: Callable | None, *, render: bool = True) -> Prepared:
    """Load benchmarks, apply limit / shuffle / shots, render prompts. Pure given the data.

    ``render=False`` (outputs produced elsewhere, `jmedllm score`): no prompt, shots or
    shuffling; ``cfg.prompt``, if given, only contributes the answer pattern its file declares.
    """
    from jmedllm import answer_pattern as AP
    from jmedllm import prompts as P
    from jmedllm.benchmarks import load_benchmark

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
    warnings: list[str] = []
    for spec in cfg.benchmarks:
        bench = load_benchmark(spec, data_root)
        files += bench.files
        warnings += [f"{bench.name}: {w}" for w in bench.warnings]
        questions = list(bench.questions)
        if cfg.limit is not None:
            questions = questions[: cfg.limit]
        pool: list[Question] = []
        if cfg.shots > 0:
            pool_spec = cfg.shot_pool or default_shot_pool(spec)
            pool_bench = load_benchmark(pool_spec, data_root)
            files += pool_bench.files
            pool = [q for q in pool_bench.questions if not q.is_numeric]
        for q in questions:
            if q.is_numeric and cfg.mode != "generate":
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
            shown = P.shuffle_choices(q, cfg.seed) if cfg.shuffle and not q.is_numeric else q
            shots = P.select_shots(q, pool, cfg.shots, cfg.seed) if cfg.shots > 0 else []
            if cfg.shuffle:
                shots = [P.shuffle_choices(s, cfg.seed) for s in shots]
            prompt = P.build_prompt(shown, family=family, mode=cfg.mode, language=cfg.language, shots=shots,
                                    template_file=template_file)
            text = prompt.render(format_chat)
            conts: tuple[tuple[str, ...], ...] = ()
            if cfg.mode != "generate":
                conts = tuple(tuple(c) for c in P.choice_continuations(shown, mode=cfg.mode, language=prompt.language))
            items.append(PreparedItem(shown, q, item_key(bench.name, q.id), text, conts, tuple(s.id for s in shots),
                                      pattern, source))
    keys = [it.key for it in items]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})[:5]
        raise EvalError(f"the same item appears twice in this evaluation: {', '.join(dup)}")
    if patterns:
        patterns["precedence"] = " > ".join(AP.SOURCES)
    return Prepared(items, data_hashes(files, data_root), not_applicable, warnings, answer_patterns=patterns)


def _check_stored_prompts(run: RunDir, items: Sequence[PreparedItem]) -> None:
    """A resumed item must have been asked exactly the same prompt (a changed template, shot
    pool or data file would otherwise mix two experiments in one run directory)."""
    from jmedllm.runs import RunDirError

    for it in items:
        rec = run.done.get(it.key)
        if rec is None:
            continue
        stored = (rec.get("prompt"), [tuple(c) for c in rec.get("continuations", [])])
        if stored != (it.prompt, list(it.continuations)):
            raise RunDirError(f"{run.items_path}: item {it.key} was recorded with another prompt than this "
                              "command renders; choose another --out directory")


_VOLATILE_ENGINE = ("device", "batch_size", "batch_size_now", "adapters", "active_adapter")


def _identity(cfg: EvalConfig, engine_desc: dict, hashes: dict, answer_patterns: dict | None = None,
              judge_desc: dict | None = None, *, local_model: bool = True) -> dict:
    """Everything that changes the results; ``local_model=False`` when ``cfg.model`` is only a label
    (outputs produced elsewhere), so that no folder of that name is fingerprinted."""
    resolved = to_dict(cfg)
    for volatile in ("out", "limit", "device", "batch_size", "data_root", "chunk_size", "bootstrap"):
        resolved.pop(volatile, None)
    if not cfg.extract_with:  # left out when unused: run directories made before these options still resume
        resolved.pop("extract_with", None)
        resolved.pop("extract_engine", None)
    if not cfg.answer_pattern:
        resolved.pop("answer_pattern", None)
    stable_engine = {k: v for k, v in engine_desc.items() if k not in _VOLATILE_ENGINE}
    # only the adapter that computes this run's scores: weights' sha256 and recorded base
    active = engine_desc.get("active_adapter")
    for info in engine_desc.get("adapters", []):
        if info.get("name") == active:
            stable_engine["adapter"] = {k: info.get(k) for k in ("sha256", "base_model_name_or_path", "peft_type")}
    identity = {"config": resolved, "engine": stable_engine, "data_hashes": hashes}
    if answer_patterns:
        identity["answer_patterns"] = answer_patterns
    if judge_desc:
        identity["judge"] = judge_desc | {"engine": {k: v for k, v in judge_desc["engine"].items()
                                                      if k not in _VOLATILE_ENGINE}}
    if local_model and cfg.model and Path(cfg.model).is_dir():
        identity["model_fingerprint"] = model_fingerprint(Path(cfg.model))
    return identity


def _run_chunk(engine, cfg: EvalConfig, chunk: Sequence[PreparedItem]) -> list[dict[str, Any]]:
    """Compute raw outputs for every item of a chunk (the chunk is always computed whole)."""
    records: list[dict[str, Any]] = []
    if cfg.mode == "generate":
        params = GenerationParams(max_new_tokens=cfg.max_new_tokens, stop=tuple(cfg.stop), seed=cfg.seed)
        completions = engine.generate([it.prompt for it in chunk], params)
        for it, c in zip(chunk, completions):
            records.append(base_record(it) | {
                "output": c.text, "finish_reason": c.finish_reason,
                "n_prompt_tokens": c.n_prompt_tokens, "n_completion_tokens": c.n_completion_tokens,
                "truncated_tokens": c.truncated_tokens,
            })
        return records
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

    if mode == "generate":
        return scoring.score_generation(question, record["output"], first_line_only=first_line_only,
                                        answer_pattern=answer_pattern)

    groups = [[ContinuationScore(s["logprob"], s["n_tokens"], s["n_chars"], s.get("is_greedy", False))
               for s in g] for g in record["scores"]]
    if mode == "loglik":
        return scoring.score_loglik(question, [g[0] for g in groups])
    return scoring.score_letter(question, groups)


def summarize(prepared: Prepared, run: RunDir, cfg: EvalConfig) -> tuple[dict, str]:
    """Summary of the finished items, verdicts recomputed from the stored raw outputs."""
    from jmedllm import scoring

    from jmedllm import judge

    pairs = []
    judged: list = []  # per item: the judge's verdict, or None where the judge was not asked
    truncated = 0
    for it in prepared.items:
        rec = run.done.get(it.key)
        if rec is None:
            continue
        pairs.append((it.question, verdict_for(it.question, rec, cfg.mode, cfg.first_line_only, it.answer_pattern)))
        judged.append(judge.judge_verdict(it.question, rec["judge"]["reply"]) if "judge" in rec else None)
        truncated += 1 if rec.get("truncated_tokens", 0) else 0
    if not pairs:
        raise EvalError("no item was scored: nothing to summarise")
    summary = scoring.aggregate(pairs, seed=cfg.seed, n_resamples=cfg.bootstrap)
    summary["run"] = {
        "model": cfg.model, "adapter": cfg.adapter, "mode": cfg.mode, "prompt": cfg.prompt, "shots": cfg.shots,
        "shuffle": cfg.shuffle, "seed": cfg.seed, "benchmarks": list(cfg.benchmarks),
        "items_planned": len(prepared.items), "items_done": len(pairs), "prompts_truncated": truncated,
        "not_applicable": {"count": len(prepared.not_applicable), "reason": "numeric items have no choices to score "
                           "in this mode (use --mode generate); exam verdicts count them wrong",
                           "items": prepared.not_applicable},
    }
    if prepared.answer_patterns:
        summary["run"]["answer_patterns"] = prepared.answer_patterns
    if cfg.extract_with:
        summary["judge"] = judge.summarize([v for _, v in pairs], judged, model=cfg.extract_with, seed=cfg.seed,
                                           n_resamples=cfg.bootstrap)
    markdown = scoring.summary_markdown(summary)
    if cfg.extract_with:
        markdown += judge.summary_markdown(summary["judge"])
    notes = []
    if prepared.not_applicable:
        notes.append(f"- {len(prepared.not_applicable)} numeric item(s) not scorable in {cfg.mode} mode "
                     f"(counted wrong in exam verdicts): {', '.join(prepared.not_applicable[:10])}"
                     + (" …" if len(prepared.not_applicable) > 10 else ""))
    if truncated:
        notes.append(f"- {truncated} prompt(s) were longer than the model context and cut from the left")
    if len(pairs) < len(prepared.items):
        notes.append(f"- partial run: {len(pairs)} of {len(prepared.items)} items done")
    if notes:
        markdown += "\n## Notes\n\n" + "\n".join(notes) + "\n"
    return summary, markdown


def run_eval(cfg: EvalConfig, engine=None, argv: list[str] | None = None, judge_engine=None) -> Path:
    """Run (or resume) an evaluation; returns the run directory."""
    from jmedllm import judge
    from jmedllm.paths import resolve_data_root

    if not cfg.out:
        raise EvalError("no output directory given (--out DIR)")
    data_root = resolve_data_root(cfg.data_root)
    if cfg.extract_with and cfg.mode != "generate":
        raise EvalError(f"--extract-with reads generated answers; mode {cfg.mode!r} has none (use --mode generate)")
    if engine is None:
        engine = load_engine_for(cfg)
    format_chat = getattr(engine, "format_chat", None)
    prepared = prepare_items(cfg, data_root, format_chat)
    if judge_engine is None and cfg.extract_with:
        judge_engine = load_judge_for(cfg, engine)
    judge_desc = judge.describe(judge_engine, cfg.extract_with) if judge_engine is not None else None
    identity = _identity(cfg, engine.describe(), prepared.data_hashes, prepared.answer_patterns, judge_desc)
    run = open_run(cfg.out, identity, run_context(argv) | {"resolved_config": to_dict(cfg),
                                                           "data_warnings": prepared.warnings})
    run_items(cfg, prepared, run, lambda chunk: _run_chunk(engine, cfg, chunk), judge_engine)
    summary, markdown = summarize(prepared, run, cfg)
    run.write_summary(summary, markdown)
    return run.path


def run_items(cfg: EvalConfig, prepared: Prepared, run: RunDir,
              produce: Callable[[Sequence[PreparedItem]], list[dict[str, Any]]], judge_engine=None,
              desc: str | None = None) -> None:
    """The item loop every run directory is written by: for each chunk not yet done, ``produce``
    its raw records (an engine, or outputs recorded elsewhere), score them, ask the judge about
    the unparsed ones (when one is given) and append them durably."""
    items = prepared.items
    _check_stored_prompts(run, items)
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
    engine = load_engine_for(replace(cfg, adapter=None))
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
    return load_engine(cfg.engine, model=cfg.model, adapter=cfg.adapter, dtype=cfg.dtype, device=cfg.device,
                       batch_size=batch, max_length=cfg.max_length, trust_remote_code=cfg.trust_remote_code)

