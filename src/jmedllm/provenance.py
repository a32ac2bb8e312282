"""What produced a result: file hashes, local model fingerprints, library versions, the git commit.

Used by run directories (``runs``, ``run_identity``), rescoring, judges and training records
(``train.provenance``), so that every record names its inputs the same way.
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

#: the libraries whose versions an evaluation run records
EVAL_PACKAGES = ("jmedllm", "torch", "transformers", "tokenizers", "peft", "trl", "accelerate", "datasets",
                 "numpy", "rapidfuzz", "vllm", "bitsandbytes")


def sha256_file(path: str | Path, _cache: dict[tuple[str, int, int], str] = {}) -> str:
    """sha256 of a file's bytes (memoised on path, size and mtime)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _cache:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _cache[key] = h.hexdigest()
    return _cache[key]


def data_hashes(files: Iterable[str | Path], root: str | Path | None = None) -> dict[str, str]:
    """{path relative to root (or as given): sha256} for every data file read."""
    out: dict[str, str] = {}
    for f in sorted({Path(x) for x in files}):
        name = str(f.relative_to(root)) if root is not None and f.is_relative_to(root) else str(f)
        out[name] = sha256_file(f)
    return out


def model_fingerprint(model_dir: Path) -> dict[str, str]:
    """A cheap fingerprint of local weights: config files hashed whole; each weight file by its
    size and the sha256 of its first and last MiB (a full hash of 15 GB would take minutes)."""
    out: dict[str, str] = {}
    for f in sorted(model_dir.iterdir()) if model_dir.is_dir() else [model_dir]:
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


def library_versions(packages: Iterable[str] = EVAL_PACKAGES) -> dict[str, str]:
    """Python, platform and the installed version of each of ``packages`` (absent ones omitted)."""
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_state(path: str | Path | None = None) -> tuple[str, bool | None] | None:
    """(commit, whether tracked files are modified) of the jmedllm checkout; None outside git.
    The second field is None when the commit is known but ``git status`` fails (the commit is
    still worth recording)."""
    where = Path(path) if path else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    try:
        dirty: bool | None = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                                 cwd=where, capture_output=True, text=True, timeout=10,
                                                 check=True).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        dirty = None
    return commit, dirty


def git_commit(path: str | Path | None = None) -> str | None:
    """The commit of the jmedllm checkout (with '+dirty' when modified, '+dirty?' when that could
    not be read), or None outside git."""
    state = git_state(path)
    if state is None:
        return None
    return state[0] + {True: "+dirty", False: "", None: "+dirty?"}[state[1]]


def run_context(argv: list[str] | None = None) -> dict[str, Any]:
    """Versions, commit, command line and host of this process: recorded beside a run's results."""
    return {
        "versions": library_versions(),
        "git_commit": git_commit(),
        "argv": list(argv if argv is not None else sys.argv),
        "host": platform.node(),
    }
