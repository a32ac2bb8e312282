"""The run directory: resolved configuration, append-only item records, resume, summary.

Layout of a run directory::

    config.json     the fully resolved configuration, versions, git commit, data hashes
    items.jsonl     one JSON record per finished item, append-only, flushed and fsynced per chunk
    summary.json    every metric with its 95 % interval (recomputed from items.jsonl)
    summary.md      the same, as readable tables

Resuming: the identity of a run (everything that changes its results) is stored in
config.json; re-running the same command into the same directory skips the items already
in items.jsonl. A record cut short by a kill (the last line without its newline) is
dropped and rewritten. A directory holding a run with another identity is never
overwritten: the caller gets a RunDirError.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

CONFIG_FILE = "config.json"
ITEMS_FILE = "items.jsonl"
SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"

_VERSIONED = ("jmedllm", "torch", "transformers", "tokenizers", "peft", "trl", "accelerate", "datasets",
              "numpy", "rapidfuzz", "vllm", "bitsandbytes")


class RunDirError(RuntimeError):
    pass


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


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_commit(path: str | Path | None = None) -> str | None:
    """The commit of the jmedllm checkout (with '+dirty' when modified), or None outside git."""
    where = Path(path) if path else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def item_key(benchmark: str, item_id: str) -> str:
    return f"{benchmark}::{item_id}"


@dataclass
class RunDir:
    """An open run directory. Use :func:`open_run` to create or resume one."""

    path: Path
    identity: dict[str, Any]
    done: dict[str, dict[str, Any]] = field(default_factory=dict)
    recovered_partial_line: bool = False

    @property
    def items_path(self) -> Path:
        return self.path / ITEMS_FILE

    def is_done(self, key: str) -> bool:
        return key in self.done

    def append(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Append finished item records (each with a 'key') and make them durable."""
        lines = []
        for rec in records:
            key = rec["key"]
            if key in self.done:
                raise RunDirError(f"item {key} is already recorded in {self.items_path}")
            lines.append(canonical_json(rec) + "\n")
        if not lines:
            return
        with open(self.items_path, "a", encoding="utf-8") as f:
            f.write("".join(lines))
            f.flush()
            os.fsync(f.fileno())
        for rec in records:
            self.done[rec["key"]] = json.loads(canonical_json(rec))

    def records(self) -> list[dict[str, Any]]:
        return list(self.done.values())

    def write_summary(self, summary: Mapping[str, Any], markdown: str) -> None:
        _atomic_write(self.path / SUMMARY_JSON, json.dumps(summary, ensure_ascii=False, indent=1, sort_keys=True) + "\n")
        _atomic_write(self.path / SUMMARY_MD, markdown)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _read_items(path: Path) -> tuple[dict[str, dict[str, Any]], bool]:
    """Read items.jsonl; drop (and truncate away) a last line cut short by a kill."""
    done: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return done, False
    data = path.read_bytes()
    recovered = False
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with open(path, "r+b") as f:
            f.truncate(cut)
        data = data[:cut]
        recovered = True
    for lineno, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        try:
            rec = json.loads(line)
            key = rec["key"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise RunDirError(f"{path}:{lineno}: not a valid item record ({exc}); "
                              "the run directory was modified by hand?") from exc
        if key in done:
            raise RunDirError(f"{path}:{lineno}: item {key} recorded twice")
        done[key] = rec
    return done, recovered


def open_run(path: str | Path, identity: Mapping[str, Any], context: Mapping[str, Any]) -> RunDir:
    """Create a run directory, or resume one written with the same identity.

    ``identity`` holds everything that changes results (model and adapter hashes, data
    hashes, benchmarks, mode, prompt, seed, ...); ``context`` the rest worth recording
    (versions, command line, host). Both go to config.json; only identity must match
    on resume.
    """
    path = Path(path)
    identity = json.loads(canonical_json(identity))
    config_path = path / CONFIG_FILE
    if config_path.exists():
        old = json.loads(config_path.read_text(encoding="utf-8"))
        if old.get("identity") != identity:
            diff = _diff_keys(old.get("identity", {}), identity)
            raise RunDirError(
                f"{path} holds a different run (differs in: {', '.join(diff) or '?'}); "
                "choose another --out directory, or delete this one yourself"
            )
        done, recovered = _read_items(path / ITEMS_FILE)
        return RunDir(path, identity, done, recovered)
    if path.exists() and any(path.iterdir()):
        raise RunDirError(f"{path} exists and is not a jmedllm run directory (no {CONFIG_FILE}); refusing to write there")
    path.mkdir(parents=True, exist_ok=True)
    config = {"identity": identity, "context": dict(context)}
    _atomic_write(config_path, json.dumps(config, ensure_ascii=False, indent=1, sort_keys=True) + "\n")
    return RunDir(path, identity)


def _diff_keys(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            keys += _diff_keys(va, vb, f"{prefix}{k}.")
        elif va != vb:
            keys.append(prefix + k)
    return keys


def load_run(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read a finished or partial run: (config, item records)."""
    path = Path(path)
    config_path = path / CONFIG_FILE
    if not config_path.exists():
        raise RunDirError(f"{path} is not a jmedllm run directory (no {CONFIG_FILE})")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    records: list[dict[str, Any]] = []
    items = path / ITEMS_FILE
    if items.exists():
        text = items.read_text(encoding="utf-8")
        complete = text if text.endswith("\n") or not text else text[: text.rfind("\n") + 1]
        for lineno, line in enumerate(complete.splitlines(), start=1):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise RunDirError(f"{items}:{lineno}: not a valid item record ({exc})") from exc
    return config, records


def chunked(seq: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


def run_context(argv: list[str] | None = None) -> dict[str, Any]:
    return {
        "versions": library_versions(),
        "git_commit": git_commit(),
        "argv": list(argv if argv is not None else sys.argv),
        "host": platform.node(),
    }
