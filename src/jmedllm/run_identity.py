"""What makes a run directory's records one experiment: the identity compared on resume, and
the checks that refuse to mix two experiments (or to summarise fewer items than are recorded).

The identity holds every setting that changes an item's record in the run's mode; settings the
mode does not use (``--max-new-tokens`` in loglik mode) and volatile ones (``--out``, ``--limit``,
device, batch size, ...) are left out, from a new identity and from a stored one alike.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from jmedllm.config import to_dict
from jmedllm.runs import RunDir, RunDirError, sha256_file

if TYPE_CHECKING:
    from jmedllm.evaluate import EvalConfig, Prepared, PreparedItem


VOLATILE = ("out", "limit", "device", "batch_size", "data_root", "chunk_size", "bootstrap", "summary_subset")
#: Settings that play no part in a mode's records: left out of its identity (loglik ignores --max-new-tokens).
MODE_UNUSED = {
    "generate": (),
    "loglik": ("max_new_tokens", "stop", "first_line_only"),
    "letter": ("max_new_tokens", "stop", "first_line_only"),
}


def normalize_identity(identity: dict) -> dict:
    """Drop from an identity's config what does not affect its mode's records (also applied to a stored
    identity on resume): volatile fields, the generation settings outside generate mode, and the shot
    pool when there are no shots."""
    identity = dict(identity)
    config = dict(identity.get("config") or {})
    for name in VOLATILE + MODE_UNUSED.get(config.get("mode"), ()):
        config.pop(name, None)
    if not config.get("shots"):
        config.pop("shot_pool", None)
    identity["config"] = config
    return identity


def identity(cfg: EvalConfig, engine_desc: dict, hashes: dict) -> dict:
    """The identity of an evaluation: resolved config, engine description, data and model hashes."""
    resolved = to_dict(cfg)
    volatile_engine = ("device", "batch_size", "batch_size_now", "adapters", "active_adapter")
    stable_engine = {k: v for k, v in engine_desc.items() if k not in volatile_engine}
    # only the adapter that computes this run's scores: weights' sha256 and recorded base
    active = engine_desc.get("active_adapter")
    for info in engine_desc.get("adapters", []):
        if info.get("name") == active:
            stable_engine["adapter"] = {k: info.get(k) for k in ("sha256", "base_model_name_or_path", "peft_type")}
    ident = {"config": resolved, "engine": stable_engine, "data_hashes": hashes}
    if Path(cfg.model).is_dir():
        ident["model_fingerprint"] = model_fingerprint(Path(cfg.model))
    return normalize_identity(ident)


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
