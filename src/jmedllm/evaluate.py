"""The evaluation runner: the one place that ties benchmarks, prompts, an engine and scoring
together, writes the run directory and resumes.

    questions ──> prompts ──> engine (in fixed chunks) ──> raw outputs ──> items.jsonl
                                                                  └──> scoring ──> summary

Verdicts in the summary are always recomputed from the raw outputs stored in items.jsonl
(scoring is pure), so a resumed run, an uninterrupted run and a later re-scoring agree.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from tqdm.auto import tqdm

from jmedllm.config import to_dict
from jmedllm.runs import RunDir, chunked, data_hashes, item_key, open_run, run_context, sha256_file
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


class EvalError(ValueError):
    """A problem with the evaluation's configuration or inputs (shown to the user as is)."""


@dataclass(frozen=True)
class PreparedItem:
    question: Question  # as shown to the model (shuffled when shuffle is on)
    original: Question
    key: str
    prompt: str
    continuations: tuple[tuple[str, ...], ...]  # per choice; empty in generate mode
    shot_ids: tuple[str, ...]


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


def prepare_items(cfg: EvalConfig, data_root: Path, format_chat: Callable | None) -> Prepared:
    """Load benchmarks, apply limit / shuffle / shots, render prompts. Pure given the data."""
    from jmedllm import prompts as P
    from jmedllm.benchmarks import load_benchmark

    if cfg.mode not in MODES:
        raise EvalError(f"unknown mode {cfg.mode!r}; valid: {', '.join(MODES)}")
    if not cfg.benchmarks:
        raise EvalError("no benchmark given (--benchmark igakuqa,igakuqa-en,...)")
    try:
        family, template_file = P.resolve_prompt_spec(cfg.prompt)
    except P.PromptTemplateError as exc:
        raise EvalError(str(exc)) from None

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
            shown = P.shuffle_choices(q, cfg.seed) if cfg.shuffle and not q.is_numeric else q
            shots = P.select_shots(q, pool, cfg.shots, cfg.seed, shared=cfg.shared_shots) if cfg.shots > 0 else []
            if cfg.shuffle:
                shots = [P.shuffle_choices(s, cfg.seed) for s in shots]
            prompt = P.build_prompt(shown, family=family, mode=cfg.mode, language=cfg.language, shots=shots,
                                    template_file=template_file)
            text = prompt.render(format_chat)
            conts: tuple[tuple[str, ...], ...] = ()
            if cfg.mode != "generate":
                conts = tuple(tuple(c) for c in P.choice_continuations(shown, mode=cfg.mode, language=prompt.language))
            items.append(PreparedItem(shown, q, item_key(bench.name, q.id), text, conts, tuple(s.id for s in shots)))
    keys = [it.key for it in items]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})[:5]
        raise EvalError(f"the same item appears twice in this evaluation: {', '.join(dup)}")
    return Prepared(items, data_hashes(files, data_root), not_applicable, warnings)


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


def _identity(cfg: EvalConfig, engine_desc: dict, hashes: dict) -> dict:
    resolved = to_dict(cfg)
    for volatile in ("out", "limit", "device", "batch_size", "data_root", "chunk_size", "bootstrap"):
        resolved.pop(volatile, None)
    volatile_engine = ("device", "batch_size", "batch_size_now", "adapters", "active_adapter")
    stable_engine = {k: v for k, v in engine_desc.items() if k not in volatile_engine}
    # only the adapter that computes this run's scores: weights' sha256 and recorded base
    active = engine_desc.get("active_adapter")
    for info in engine_desc.get("adapters", []):
        if info.get("name") == active:
            stable_engine["adapter"] = {k: info.get(k) for k in ("sha256", "base_model_name_or_path", "peft_type")}
    identity = {"config": resolved, "engine": stable_engine, "data_hashes": hashes}
    if Path(cfg.model).is_dir():
        identity["model_fingerprint"] = model_fingerprint(Path(cfg.model))
    return identity


def model_fingerprint(model_dir: Path) -> dict[str, str]:
    """A cheap fingerprint of local weights: config files hashed whole; each weight file by its
    size and the sha256 of its first and last MiB (a full hash of 15 GB would take minutes)."""
    out: dict[str, str] = {}
    for f in sorted(model_dir.iterdir()):
        if not f.is_file():
            continue
        if f.suffix in (".json", ".jinja", ".model", ".txt"):
            out[f.name] = sha256_file(f)
        elif f.suffix in (".safetensors", ".bin", ".pt", ".gguf"):
            size = f.stat().st_size
            h = hashlib.sha256(str(size).encode())
            with open(f, "rb") as fh:
                h.update(fh.read(1 << 20))
                if size > 2 << 20:
                    fh.seek(-(1 << 20), 2)
                    h.update(fh.read(1 << 20))
            out[f.name] = f"size={size};head-tail-sha256={h.hexdigest()}"
    return out


def _run_chunk(engine, cfg: EvalConfig, chunk: Sequence[PreparedItem]) -> list[dict[str, Any]]:
    """Compute raw outputs for every item of a chunk (the chunk is always computed whole)."""
    records: list[dict[str, Any]] = []
    if cfg.mode == "generate":
        params = GenerationParams(max_new_tokens=cfg.max_new_tokens, stop=tuple(cfg.stop), seed=cfg.seed)
        completions = engine.generate([it.prompt for it in chunk], params)
        for it, c in zip(chunk, completions):
            records.append(_base_record(it) | {
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
        records.append(_base_record(it) | {
            "scores": grouped, "truncated_tokens": max((s.truncated_tokens for s in flat), default=0),
        })
    return records


def _base_record(it: PreparedItem) -> dict[str, Any]:
    q = it.question
    rec: dict[str, Any] = {
        "key": it.key, "benchmark": it.key.split("::")[0], "id": it.original.id, "language": q.language,
        "prompt": it.prompt, "shots": list(it.shot_ids),
    }
    if it.continuations:
        rec["continuations"] = [list(g) for g in it.continuations]
    if "permutation" in q.meta:
        rec["permutation"] = list(q.meta["permutation"])
    return rec


def verdict_for(question: Question, record: dict[str, Any], mode: str, first_line_only: bool = False):
    """Score one stored record (pure): the same raw output always gives the same verdict."""
    from jmedllm import scoring

    if mode == "generate":
        return scoring.score_generation(question, record["output"], first_line_only=first_line_only)

    groups = [[ContinuationScore(s["logprob"], s["n_tokens"], s["n_chars"], s.get("is_greedy", False))
               for s in g] for g in record["scores"]]
    if mode == "loglik":
        return scoring.score_loglik(question, [g[0] for g in groups])
    return scoring.score_letter(question, groups)


def summarize(prepared: Prepared, run: RunDir, cfg: EvalConfig) -> tuple[dict, str]:
    """Summary of the finished items, verdicts recomputed from the stored raw outputs."""
    from jmedllm import scoring

    pairs = []
    truncated = 0
    for it in prepared.items:
        rec = run.done.get(it.key)
        if rec is None:
            continue
        pairs.append((it.question, verdict_for(it.question, rec, cfg.mode, cfg.first_line_only)))
        truncated += 1 if rec.get("truncated_tokens", 0) else 0
    summary = scoring.aggregate(pairs, seed=cfg.seed, n_resamples=cfg.bootstrap)
    summary["run"] = {
        "model": cfg.model, "adapter": cfg.adapter, "mode": cfg.mode, "prompt": cfg.prompt, "shots": cfg.shots,
        "shuffle": cfg.shuffle, "seed": cfg.seed, "benchmarks": list(cfg.benchmarks),
        "items_planned": len(prepared.items), "items_done": len(pairs), "prompts_truncated": truncated,
        "not_applicable": {"count": len(prepared.not_applicable), "reason": "numeric items have no choices to score "
                           "in this mode (use --mode generate); exam verdicts count them wrong",
                           "items": prepared.not_applicable},
    }
    markdown = scoring.summary_markdown(summary)
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


def run_eval(cfg: EvalConfig, engine=None, argv: list[str] | None = None) -> Path:
    """Run (or resume) an evaluation; returns the run directory."""
    from jmedllm.paths import resolve_data_root

    if not cfg.out:
        raise EvalError("no output directory given (--out DIR)")
    data_root = resolve_data_root(cfg.data_root)
    if engine is None:
        engine = load_engine_for(cfg)
    format_chat = getattr(engine, "format_chat", None)
    prepared = prepare_items(cfg, data_root, format_chat)
    items = prepared.items
    identity = _identity(cfg, engine.describe(), prepared.data_hashes)
    run = open_run(cfg.out, identity, run_context(argv) | {"resolved_config": to_dict(cfg),
                                                           "data_warnings": prepared.warnings})
    _check_stored_prompts(run, items)
    todo_chunks = [c for c in chunked(items, max(1, cfg.chunk_size)) if not all(run.is_done(it.key) for it in c)]
    progress = tqdm(total=len(items), initial=sum(run.is_done(it.key) for it in items), desc=f"eval {cfg.mode}",
                    unit="item", file=sys.stderr, dynamic_ncols=True, smoothing=0.1)  # items, rate, ETA
    try:
        for chunk in todo_chunks:
            records = _run_chunk(engine, cfg, chunk)
            by_key = {it.key: it for it in chunk}
            new = [r for r in records if not run.is_done(r["key"])]
            for r in new:
                r["verdict"] = verdict_for(by_key[r["key"]].question, r, cfg.mode, cfg.first_line_only).to_dict()
            run.append(new)
            progress.update(len(new))
    finally:
        progress.close()
    summary, markdown = summarize(prepared, run, cfg)
    run.write_summary(summary, markdown)
    return run.path


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
    out = []
    for name, path in names.items():
        engine.use_adapter(loaded.get(name))
        out.append(run_eval(replace(cfg, adapter=path, out=str(Path(cfg.out) / name)), engine=engine, argv=argv))
    return out


def load_engine_for(cfg: EvalConfig):
    from jmedllm.engines import load_engine

    batch: int | str = int(cfg.batch_size) if str(cfg.batch_size).isdigit() else cfg.batch_size
    return load_engine(cfg.engine, model=cfg.model, adapter=cfg.adapter, dtype=cfg.dtype, device=cfg.device,
                       batch_size=batch, max_length=cfg.max_length, trust_remote_code=cfg.trust_remote_code)

