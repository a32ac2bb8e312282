"""The run directory: resolved configuration, append-only item records, resume, summary.

Layout of a run directory::

    config.json     the fully resolved configuration, versions, git commit, data hashes
    items.jsonl     one JSON record per finished item, append-only, flushed and fsynced per chunk
    summary.json    every metric with its 95 % interval (recomputed from items.jsonl)
    summary.md      the same, as readable tables
    run.lock        holds the pid of the process using the directory (the lock is on the open file)

Resuming: the identity of a run (everything that changes its results) is stored in
config.json; re-running the same command into the same directory skips the items already
in items.jsonl. A record cut short by a kill (the last line without its newline) is
dropped and rewritten. A directory holding a run with another identity is never
overwritten: the caller gets a RunDirError.

Exclusive use: ``lock_run_dir`` takes an exclusive ``fcntl.flock`` on ``run.lock`` for as long
as the run is open (the runner takes it before loading the model). A second process on the same
directory is refused at once ("run directory ... in use by pid N"). The kernel drops the lock
when its holder exits or is killed, so a kill never leaves a stale lock. (POSIX only: on a
system without fcntl the run directory cannot be opened.)

Symlinks: none of the files above may be a symbolic link (checked before anything is read,
truncated or written; files are opened with O_NOFOLLOW), so a run directory can never be used
to write to, or truncate, a file outside it. The run directory itself may be a link.

Crash windows: every write, what a kill (SIGKILL, power loss after the fsyncs) at that point
leaves, and what the next run of the same command does with it:

1. ``mkdir`` of the directory, then ``run.lock`` created: an empty directory, or one holding only
   ``run.lock``: a run that never started; the next run starts it.
2. ``config.json.tmp`` written and fsynced, then renamed to ``config.json``, then the directory
   fsynced. Killed before the rename: ``config.json.tmp`` without ``config.json``, and no
   items (items are written only once config.json exists): a run that never started; the next
   run removes the leftover and starts it. Killed after: an ordinary run with no items yet.
3. ``items.jsonl``: each chunk's records are appended in one write, then fsynced. Killed during
   the write: complete lines are kept, a last line without its newline is truncated away (after
   every complete line has been validated; nothing is truncated in a directory that fails
   validation), and the items not recorded are computed again, in the same chunk as before, so
   the records are byte-identical to those of an uninterrupted run.
4. ``summary.json`` then ``summary.md``, each through ``<name>.tmp`` + fsync + rename: killed
   in between, the summary files may be missing or stale, and ``*.tmp`` leftovers may exist;
   both are derived from items.jsonl and rewritten (leftovers removed) by the next run.

A narrower selection (``--limit 10`` on a directory recording 40 items) is refused by the
runner unless ``--summary-subset`` is given; then the summary covers exactly the selected items
and says so ("10 of 40 recorded items"): see jmedllm.run_identity.check_selection.
"""

from __future__ import annotations

import errno
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from jmedllm.errors import UserError

CONFIG_FILE = "config.json"
ITEMS_FILE = "items.jsonl"
SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"
LOCK_FILE = "run.lock"
TMP_SUFFIX = ".tmp"
#: Every name the runner writes in a run directory (with its .tmp twins): none may be a symlink.
RUN_FILES = (CONFIG_FILE, ITEMS_FILE, SUMMARY_JSON, SUMMARY_MD, LOCK_FILE)

class RunDirError(UserError, RuntimeError):
    """A run directory that cannot be used as asked (in use, another run, not a run directory, ...)."""


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def item_key(benchmark: str, item_id: str) -> str:
    return f"{benchmark}::{item_id}"


class RunLock:
    """An exclusive lock on a run directory (``fcntl.flock`` on run.lock), re-entrant within a process."""

    _held: dict[tuple[int, int], tuple[int, int]] = {}  # (st_dev, st_ino) of run.lock -> (fd, users)

    def __init__(self, path: Path, key: tuple[int, int], created: bool = False) -> None:
        self.path, self._key, self._open = path, key, True
        self._created = created  # this lock made the directory: removed again if no run started in it

    def release(self) -> None:
        if not self._open:
            return
        self._open = False
        fd, users = RunLock._held[self._key]
        if users > 1:
            RunLock._held[self._key] = (fd, users - 1)
            return
        del RunLock._held[self._key]
        if self._created and not (self.path / CONFIG_FILE).exists():
            # refused before the run started (bad input, unknown model): leave nothing behind
            (self.path / LOCK_FILE).unlink(missing_ok=True)
            try:
                self.path.rmdir()
            except OSError:
                pass  # something else was put there meanwhile: keep it
        os.close(fd)  # closing the last descriptor drops the flock

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _check_out_path(path: Path) -> None:
    """--out must be a directory or absent; the runner's files inside it must not be symlinks."""
    if path.exists() and not path.is_dir():
        raise RunDirError(f"--out {path} is an existing file, not a directory: give a directory (new or a run "
                          "directory to resume)")
    if not path.is_dir():
        return
    for name in RUN_FILES:
        for candidate in (path / name, path / (name + TMP_SUFFIX)):
            if candidate.is_symlink():
                raise RunDirError(f"{candidate} is a symbolic link; a run directory holds only its own files "
                                  "(refusing to read or write through it)")


def lock_run_dir(path: str | Path) -> RunLock:
    """Create ``path`` if needed and lock it for this process; RunDirError if another process holds it."""
    import fcntl

    path = Path(path)
    _check_out_path(path)
    if path.is_dir() and not (path / CONFIG_FILE).exists() and any(
            p.name not in (LOCK_FILE, CONFIG_FILE + TMP_SUFFIX) for p in path.iterdir()):
        raise RunDirError(f"{path} exists and is not a jmedllm run directory (no {CONFIG_FILE}); refusing to write there")
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RunDirError(f"{path / LOCK_FILE} is a symbolic link; refusing to use it") from None
        raise RunDirError(f"cannot use {path} as a run directory: {exc.strerror}") from None
    st = os.fstat(fd)
    key = (st.st_dev, st.st_ino)
    if key in RunLock._held:  # this process holds it already
        os.close(fd)
        held_fd, users = RunLock._held[key]
        RunLock._held[key] = (held_fd, users + 1)
        return RunLock(path, key)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise RunDirError(f"run directory {path} in use by pid {holder}; wait for it to finish, or choose "
                              "another --out") from None
        raise RunDirError(f"cannot lock {path / LOCK_FILE}: {exc.strerror}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    RunLock._held[key] = (fd, 1)
    return RunLock(path, key, created)


@dataclass
class RunDir:
    """An open (and locked) run directory. Use :func:`open_run` to create or resume one."""

    path: Path
    identity: dict[str, Any]
    done: dict[str, dict[str, Any]] = field(default_factory=dict)
    recovered_partial_line: bool = False
    lock: RunLock | None = None

    @property
    def items_path(self) -> Path:
        return self.path / ITEMS_FILE

    def close(self) -> None:
        """Release the directory's lock (also released when the process exits or is killed)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def is_done(self, key: str) -> bool:
        return key in self.done

    def append(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Append finished item records (each with a 'key') and make them durable."""
        records = list(records)
        lines = []
        for rec in records:
            key = rec["key"]
            if key in self.done:
                raise RunDirError(f"item {key} is already recorded in {self.items_path}")
            lines.append(canonical_json(rec) + "\n")
        if not lines:
            return
        fd = _open_nofollow(self.items_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
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


def _open_nofollow(path: Path, flags: int, mode: int = 0o644) -> int:
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RunDirError(f"{path} is a symbolic link; refusing to read or write through it") from None
        raise RunDirError(f"cannot open {path}: {exc.strerror}") from None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all: a fresh ``.tmp`` (never through a link), fsync, rename, fsync the folder."""
    tmp = path.with_name(path.name + TMP_SUFFIX)
    tmp.unlink(missing_ok=True)  # a leftover of a killed run (or a link: unlink removes the link itself)
    fd = _open_nofollow(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _read_items(path: Path) -> tuple[dict[str, dict[str, Any]], bool]:
    """Read items.jsonl; validate every complete line, then drop (truncate away) a last line cut short by a kill."""
    done: dict[str, dict[str, Any]] = {}
    if path.is_symlink():
        raise RunDirError(f"{path} is a symbolic link; refusing to read or truncate through it")
    if not path.exists():
        return done, False
    with os.fdopen(_open_nofollow(path, os.O_RDONLY), "rb") as f:
        data = f.read()
    cut = data.rfind(b"\n") + 1 if data and not data.endswith(b"\n") else len(data)
    for lineno, line in enumerate(data[:cut].splitlines(), start=1):
        try:
            rec = json.loads(line.decode("utf-8"))
            key = rec["key"]
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise RunDirError(f"{path}:{lineno}: not a valid item record ({exc}); "
                              "the run directory was modified by hand?") from exc
        if key in done:
            raise RunDirError(f"{path}:{lineno}: item {key} recorded twice")
        done[key] = rec
    recovered = cut < len(data)
    if recovered:  # only now that every complete line is valid
        with os.fdopen(_open_nofollow(path, os.O_WRONLY), "wb") as f:
            f.truncate(cut)
            f.flush()
            os.fsync(f.fileno())
    return done, recovered


def open_run(path: str | Path, identity: Mapping[str, Any], context: Mapping[str, Any], *,
             lock: RunLock | None = None,
             normalize: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> RunDir:
    """Create a run directory, or resume one written with the same identity; the directory stays
    locked (see lock_run_dir) until the RunDir is closed or the process ends.

    ``identity`` holds everything that changes results (model and adapter hashes, data
    hashes, benchmarks, mode, prompt, seed, ...); ``context`` the rest worth recording
    (versions, command line, host). Both go to config.json; only identity must match
    on resume. ``normalize`` is applied to a stored identity before comparing (settings that
    do not affect this mode). ``lock``: a lock the caller took already with lock_run_dir.
    """
    path = Path(path)
    identity = json.loads(canonical_json(identity))
    own_lock = lock is None
    lock = lock_run_dir(path) if lock is None else lock
    try:
        return _open_locked(path, identity, context, lock, normalize)
    except BaseException:
        if own_lock:
            lock.release()
        raise


def _open_locked(path: Path, identity: dict[str, Any], context: Mapping[str, Any], lock: RunLock,
                 normalize: Callable[[dict[str, Any]], dict[str, Any]] | None) -> RunDir:
    _check_out_path(path)  # again, under the lock
    config_path = path / CONFIG_FILE
    for name in (SUMMARY_JSON, SUMMARY_MD):  # leftovers of a run killed while writing its summary
        (path / (name + TMP_SUFFIX)).unlink(missing_ok=True)
    if config_path.exists():
        try:
            old = json.loads(config_path.read_text(encoding="utf-8"))
            stored = old["identity"]
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise RunDirError(f"{config_path}: not a jmedllm run configuration ({exc})") from None
        if normalize is not None and isinstance(stored, dict):
            stored = json.loads(canonical_json(normalize(stored)))
        if stored != identity:
            diff = _diff_keys(stored if isinstance(stored, Mapping) else {}, identity)
            raise RunDirError(
                f"{path} holds a different run (differs in: {', '.join(diff) or '?'}); "
                "choose another --out directory, or delete this one yourself"
            )
        done, recovered = _read_items(path / ITEMS_FILE)
        return RunDir(path, identity, done, recovered, lock)
    # No config.json: a run that never started (crash window 2). Items cannot exist yet.
    if (path / ITEMS_FILE).exists() or (path / ITEMS_FILE).is_symlink():
        raise RunDirError(f"{path} holds {ITEMS_FILE} but no {CONFIG_FILE}; not a run this version wrote, "
                          "refusing to touch it")
    (path / (CONFIG_FILE + TMP_SUFFIX)).unlink(missing_ok=True)
    config = {"identity": identity, "context": dict(context)}
    _atomic_write(config_path, json.dumps(config, ensure_ascii=False, indent=1, sort_keys=True) + "\n")
    return RunDir(path, identity, lock=lock)


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
