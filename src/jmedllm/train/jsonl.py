"""JSONL files of training records (instructions, preference pairs): read with file and line in
every error and in each record's provenance, written one UTF-8 object per line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, TypeVar

T = TypeVar("T")


def read_records(path: str | Path, parse: Callable[[Any, str, str, dict[str, Any]], T], *,
                 error: type[Exception], what: str, limit: int | None = None) -> list[T]:
    """Each non-blank line of ``path`` as JSON, given to ``parse(obj, where, example_id, source)``
    (``where`` = "file:line", ``example_id`` = "name:line", ``source`` = {"file", "line"}).
    Problems raise ``error`` naming the file (and line); a file with no record is one."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such file")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    out: list[T] = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if limit is not None and len(out) >= limit:
            break
        where = f"{path}:{i}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise error(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        out.append(parse(obj, where, f"{path.name}:{i}", {"file": str(path), "line": i}))
    if not out:
        raise error(f"{path}: no {what} records")
    return out


def record_location(source: Mapping[str, Any], record_id: str) -> str:
    """Where a record comes from, for reports: file:line, else benchmark item, else its id."""
    if source.get("file"):
        return f"{source['file']}:{source.get('line', '?')}"
    if source.get("benchmark"):
        return f"{source['benchmark']}:{source.get('item_id', record_id)}"
    return record_id


def write_records(examples: Iterable[Any], path: str | Path) -> Path:
    """Write records (anything with ``to_json()``) as JSONL, UTF-8, one object per line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for ex in examples:
            f.write(json.dumps(ex.to_json(), ensure_ascii=False) + "\n")
    return path
