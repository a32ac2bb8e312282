"""What makes a run directory's records one experiment: the identity compared on resume, and
the checks that refuse to mix two experiments (or to summarise fewer items than are recorded).

The identity holds every setting that changes an item's record in the run's mode; settings the
mode does not use (``--max-new-tokens`` in loglik mode) and volatile ones (``--out``, ``--limit``,
device, batch size, ...) are left out, from a new identity and from a stored one alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from jmedllm.config import to_dict
from jmedllm.provenance import model_fingerprint
from jmedllm.runs import RunDir, RunDirError

if TYPE_CHECKING:
    from jmedllm.evaluate import EvalConfig, Prepared, PreparedItem


# engine_options: those that change results are in the engine's describe(), the rest (concurrency, keys' names) not
VOLATILE = ("out", "limit", "device", "batch_size", "data_root", "chunk_size", "bootstrap", "summary_subset",
            "allow_outside_paths", "engine_options")
VOLATILE_ENGINE = ("device", "batch_size", "batch_size_now", "adapters", "active_adapter", "keep_decode_storage",
                   "decode_attention_kernel_unavailable")
#: How an engine batches and schedules its work: like the batch size, these move scores by float
#: rounding only, so a run resumes across them (they are recorded in config.json's context).
ENGINE_SCHEDULING = ("max_batch_tokens", "max_cache_bytes", "max_padding_fraction", "static_generation_cache",
                     "generation_cost", "scoring_cost", "last_mlp_on_read_positions_only",
                     "decode_attention_by_row_groups", "packed_forwards", "pack_tokens",
                     "retire_finished_rows", "decode_attention_kernel")
#: Options left out of an identity while unused, so that run directories made before they existed still resume.
UNUSED_WHEN_EMPTY = {"extract_with": ("extract_with", "extract_engine"), "answer_pattern": ("answer_pattern",),
                     "letter_grammar": ("letter_grammar",)}
#: Settings that play no part in a mode's records: left out of its identity (loglik ignores --max-new-tokens).
MODE_UNUSED = {
    "generate": (),
    "loglik": ("max_new_tokens", "stop", "first_line_only", "letter_grammar"),
    "letter": ("max_new_tokens", "stop", "first_line_only", "letter_grammar"),
}


def normalize_identity(identity: dict) -> dict:
    """Drop from an identity's config what does not affect its mode's records (also applied to a stored
    identity on resume): volatile fields, the generation settings outside generate mode, and the shot
    pool when there are no shots; and from its engine (and judge engine) descriptions the volatile and
    scheduling keys (so a run written before a scheduling key existed still resumes)."""
    identity = dict(identity)
    config = dict(identity.get("config") or {})
    for name in VOLATILE + MODE_UNUSED.get(config.get("mode"), ()):
        config.pop(name, None)
    for option, names in UNUSED_WHEN_EMPTY.items():
        if not config.get(option):
            for name in names:
                config.pop(name, None)
    if not config.get("shots"):
        config.pop("shot_pool", None)
    identity["config"] = config
    if isinstance(identity.get("engine"), dict):
        identity["engine"] = stable_engine(identity["engine"])
    if isinstance(identity.get("judge"), dict) and isinstance(identity["judge"].get("engine"), dict):
        identity["judge"] = identity["judge"] | {"engine": stable_engine(identity["judge"]["engine"])}
    return identity


def stable_engine(engine_desc: dict) -> dict:
    """An engine description without its volatile and scheduling keys (what the identity keeps)."""
    return {k: v for k, v in engine_desc.items() if k not in VOLATILE_ENGINE + ENGINE_SCHEDULING}


def identity(cfg: EvalConfig, engine_desc: dict, hashes: dict, answer_patterns: dict | None = None,
             judge_desc: dict | None = None, *, local_model: bool = True) -> dict:
    """The identity of an evaluation: resolved config, engine description, data and model hashes,
    the answer patterns in force and the judge model (when one reads unparsed answers).
    ``local_model=False`` when ``cfg.model`` is only a label (outputs produced elsewhere), so that
    no folder of that name is fingerprinted."""
    resolved = to_dict(cfg)
    engine = dict(engine_desc)  # its volatile and scheduling keys go in normalize_identity (as the judge's)
    # only the adapter that computes this run's scores: weights' sha256 and recorded base
    active = engine_desc.get("active_adapter")
    for info in engine_desc.get("adapters", []):
        if info.get("name") == active:
            engine["adapter"] = {k: info.get(k) for k in ("sha256", "base_model_name_or_path", "peft_type")}
    ident = {"config": resolved, "engine": engine, "data_hashes": hashes}
    if answer_patterns:
        ident["answer_patterns"] = answer_patterns
    if judge_desc:
        ident["judge"] = judge_desc
    if local_model and cfg.model and (Path(cfg.model).is_dir() or Path(cfg.model).is_file()):  # a folder, or one weights file (GGUF)
        ident["model_fingerprint"] = model_fingerprint(Path(cfg.model))
    return normalize_identity(ident)


def check_stored_prompts(run: RunDir, items: Sequence[PreparedItem]) -> None:
    """A resumed item must have been asked exactly the same prompt (a changed template, shot
    pool or data file would otherwise mix two experiments in one run directory)."""
    for it in items:
        rec = run.done.get(it.key)
        if rec is None:
            continue
        stored = (rec.get("prompt"), [tuple(c) for c in rec.get("continuations", [])])
        if stored != (it.prompt, list(it.continuations)):
            raise RunDirError(f"{run.items_path}: item {it.key} was recorded with another prompt than this "
                              "command renders; choose another --out directory")


def check_selection(run: RunDir, prepared: Prepared, cfg: EvalConfig) -> None:
    """A command that selects fewer items than the run directory records (``--limit 10`` on a
    40-item run) would rewrite summary.json for 10 items while items.jsonl holds 40: refused,
    unless ``--summary-subset`` asks for a summary of exactly the selected items (which then says
    "10 of 40 recorded items")."""
    selected = {it.key for it in prepared.items}
    outside = [k for k in run.done if k not in selected]
    if outside and not cfg.summary_subset:
        raise RunDirError(
            f"{run.path} records {len(run.done)} items, {len(outside)} of them outside this command's selection "
            f"(e.g. {outside[0]}; a smaller --limit?). Its summary would cover only the {len(run.done) - len(outside)} "
            "selected ones: re-run with the selection that made it, or pass --summary-subset to write a summary "
            "of the selected items only")
