"""What made a checkpoint: library versions, git commit, data hashes, written next to the model."""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from jmedllm.provenance import git_state, library_versions, sha256_file

RUN_RECORD = "jmedllm_train.json"
RECIPE_COPY = "recipe.yaml"

_PACKAGES = ("jmedllm", "torch", "transformers", "peft", "trl", "datasets", "accelerate", "tokenizers",
             "safetensors", "bitsandbytes", "deepspeed")


def versions() -> dict[str, Any]:
    """Python, platform and the versions of the libraries that shape training (absent ones omitted)."""
    out: dict[str, Any] = dict(library_versions(_PACKAGES))
    out["python"] = sys.version.split()[0]
    if "jmedllm" not in out:
        from jmedllm import __version__

        out["jmedllm"] = __version__
    try:
        import torch

        out["cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            out["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        pass
    return out


def git_commit(path: str | Path | None = None) -> dict[str, Any] | None:
    """The git commit (and whether the tree is dirty: None when ``git status`` failed) of the
    jmedllm checkout; None when not in git."""
    state = git_state(path)
    return None if state is None else {"commit": state[0], "dirty": state[1]}


def data_hashes(files: Iterable[str | Path]) -> list[dict[str, Any]]:
    """sha256 and size of each input file, in the order given (repeats removed)."""
    out, seen = [], set()
    for f in files:
        p = Path(f)
        key = str(p.resolve())
        if key in seen:
            continue
        seen.add(key)
        out.append({"path": str(p), "sha256": sha256_file(p), "bytes": p.stat().st_size})
    return out


def tokens_sha256(rows: Iterable[Iterable[int]]) -> str:
    """A fingerprint of the token ids actually trained on (order matters)."""
    h = hashlib.sha256()
    for row in rows:
        h.update(json.dumps(list(row), separators=(",", ":")).encode())
        h.update(b"\n")
    return h.hexdigest()


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_json(path: str | Path, obj: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    tmp.replace(path)
    return path
