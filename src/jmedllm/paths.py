"""Where data lives: a data root given by flag or the JMEDLLM_DATA_ROOT environment variable."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ROOT_ENV = "JMEDLLM_DATA_ROOT"


class DataRootError(FileNotFoundError):
    pass


def resolve_data_root(flag: str | os.PathLike[str] | None = None) -> Path:
    """Return the data root: the explicit flag, else $JMEDLLM_DATA_ROOT; it must exist."""
    value = flag if flag not in (None, "") else os.environ.get(DATA_ROOT_ENV)
    if not value:
        raise DataRootError(
            f"no data root given: pass --data-root DIR or set {DATA_ROOT_ENV} "
            "(the folder that holds igakuqa/, medqa/, ... in their original layouts)"
        )
    root = Path(value).expanduser()
    if not root.is_dir():
        raise DataRootError(f"data root {root} does not exist or is not a directory")
    return root


def cache_root() -> Path:
    """Where jmedllm keeps what it builds or fetches once (``$JMEDLLM_CACHE``, default ``~/.cache/jmedllm``)."""
    return Path(os.environ.get("JMEDLLM_CACHE", Path.home() / ".cache" / "jmedllm"))
