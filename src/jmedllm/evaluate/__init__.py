"""The evaluation runner: the one place that ties benchmarks, prompts, an engine and scoring
together, writes the run directory and resumes.

    questions ──> prompts ──> engine (in fixed chunks) ──> raw outputs ──> items.jsonl
                                                                  └──> scoring ──> summary

Verdicts in the summary are always recomputed from the raw outputs stored in items.jsonl
(scoring is pure), so a resumed run, an uninterrupted run and a later re-scoring agree.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

from tqdm.auto import tqdm

from jmedllm.benchmarks.pools import default_shot_pool  # noqa: F401  (re-exported)
from jmedllm.config import to_dict
from jmedllm.engine_outputs import generation_fields, letter_scores_from_top, split_reasoning  # noqa: F401
from jmedllm.evaluate.config import MODES, EvalConfig, EvalError  # noqa: F401
from jmedllm.evaluate.prepare import Prepared, PreparedItem, load_benchmarks, prepare_items  # noqa: F401
from jmedllm.evaluate.records import _run_chunk, base_record, verdict_for  # noqa: F401
from jmedllm.evaluate.summary import summarize  # noqa: F401
from jmedllm.run_identity import check_selection, check_stored_prompts, normalize_identity
from jmedllm.run_identity import identity as run_identity
from jmedllm.provenance import run_context
from jmedllm.runs import RunDir, chunked, lock_run_dir, open_run


def data_root_for(cfg: EvalConfig) -> Path | None:
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
    data_root = data_root_for(cfg)
    if cfg.letter_grammar and cfg.mode != "generate":
        raise EvalError(f"--letter-grammar constrains generated answers; {cfg.mode} mode already ranks the choice "
                        "labels (use --mode generate)")
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
        check_letter_grammar(cfg, engine, caps)
        format_chat = getattr(engine, "format_chat", None)
        prepared = prepare_items(cfg, data_root, format_chat, caps, loaded)
        if judge_engine is None and cfg.extract_with:
            judge_engine = load_judge_for(cfg, engine)
        judge_desc = judge.describe(judge_engine, cfg.extract_with) if judge_engine is not None else None
        engine_desc = engine.describe()
        identity = run_identity(cfg, engine_desc, prepared.data_hashes, prepared.answer_patterns, judge_desc)
        # the whole descriptions, volatile and scheduling keys included (the identity leaves those out)
        described = {"engine": engine_desc} | ({"judge": judge_desc} if judge_desc else {})
        with open_run(cfg.out, identity, run_context(argv) | {"resolved_config": to_dict(cfg), "described": described,
                                                              "data_warnings": prepared.warnings} | (context or {}),
                      lock=lock, normalize=normalize_identity) as run:
            check_selection(run, prepared, cfg)
            if hasattr(engine, "use_cache_dir"):  # response cache kept with the run, so a rerun resumes for free
                engine.use_cache_dir(run.path)
            run_items(cfg, prepared, run, lambda chunk: _run_chunk(engine, cfg, chunk), judge_engine)
            summary, markdown = summarize(prepared, run, cfg, engine.usage() if hasattr(engine, "usage") else None)
            run.write_summary(summary, markdown)
            return run.path


def check_letter_grammar(cfg: EvalConfig, engine, caps) -> None:
    """--letter-grammar needs an engine that constrains generation per item (``supports.letter_grammar``)."""
    if cfg.letter_grammar and not caps.letter_grammar:
        raise EvalError(f"--letter-grammar: engine {getattr(engine, 'kind', '?')!r} cannot constrain answers to "
                        "choice labels; use --engine llamacpp (GBNF grammar) or vllm (structured output), or "
                        "drop --letter-grammar (letter mode ranks the labels on any engine)")


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
