"""Parsing helpers shared by every loader: reading files with line numbers, precise errors.

Each reader tolerates a UTF-8 byte-order mark and CRLF line ends, and reports every problem
as a :class:`LoaderError` naming the file, the line and the field, so a user can open the file
at the right place. Nothing is skipped silently: tolerated quirks go into a ``warnings`` list
that the loader passes on to the :class:`~jmedllm.benchmarks.record.Benchmark`.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import re
from pathlib import Path
from typing import Any, Iterator, Mapping

from jmedllm.schema import LETTERS
from jmedllm.text import nfkc

_BOM = "\ufeff"


class LoaderError(ValueError):
    """Bad input in a data file: names the file, the (1-based) line and the field."""

    def __init__(self, file: Path | str, line: int | None, field: str | None, message: str) -> None:
        self.file = Path(file)
        self.line = line
        self.field = field
        self.message = message
        where = str(self.file) + (f":{line}" if line is not None else "")
        what = f" field {field!r}:" if field else ""
        super().__init__(f"{where}:{what} {message}")


def read_text(path: Path) -> str:
    """The file's text as UTF-8, without a byte-order mark, with ``\\n`` line ends."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise LoaderError(path, None, None, "file not found") from None
    except IsADirectoryError:
        raise LoaderError(path, None, None, "is a folder, expected a file") from None
    except OSError as exc:
        raise LoaderError(path, None, None, f"cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:  # a file name the OS cannot encode
        raise LoaderError(repr(str(path)), None, None, f"cannot read: {exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise LoaderError(path, line, None, f"not valid UTF-8 ({exc.reason})") from None
    if text.startswith(_BOM):
        text = text[1:]
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSON-lines file."""
    for number, line in enumerate(read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LoaderError(path, number, None, f"invalid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise LoaderError(path, number, None, f"expected a JSON object, got {type(obj).__name__}")
        yield number, obj


def read_json_items(path: Path) -> list[tuple[int, str | int, Any]]:
    """Top-level items of a JSON array or object as ``(line, key_or_index, value)``.

    ``json.load`` forgets positions; decoding the top level one value at a time keeps the
    line on which each item starts, so errors and ``meta["source_line"]`` point into the file.
    """
    text = read_text(path)
    decoder = json.JSONDecoder()
    ws = re.compile(r"\s*")

    def skip(i: int) -> int:
        return ws.match(text, i).end()  # type: ignore[union-attr]

    counted = [0, 1]  # position up to which newlines are counted, line number there

    def line_of(i: int) -> int:
        # Positions only move forward, so count incrementally (a whole-prefix count per
        # item would be quadratic on a 2 MB file).
        pos, line = counted
        line = line + text.count("\n", pos, i) if i >= pos else text.count("\n", 0, i) + 1
        counted[:] = [i, line]
        return line

    def decode(i: int) -> tuple[Any, int]:
        try:
            return decoder.raw_decode(text, i)
        except json.JSONDecodeError as exc:
            raise LoaderError(path, exc.lineno, None, f"invalid JSON ({exc.msg} at column {exc.colno})") from None

    i = skip(0)
    if i >= len(text) or text[i] not in "[{":
        raise LoaderError(path, line_of(i), None, "expected a JSON array or object at the top level")
    is_object = text[i] == "{"
    close = "}" if is_object else "]"
    items: list[tuple[int, str | int, Any]] = []
    i = skip(i + 1)
    if text.startswith(close, i):
        return items
    while True:
        start = i
        if is_object:
            key, i = decode(i)
            i = skip(i)
            if not text.startswith(":", i):
                raise LoaderError(path, line_of(i), None, "invalid JSON (expected ':')")
            i = skip(i + 1)
        else:
            key = len(items)
        value, i = decode(i)
        items.append((line_of(start), key, value))
        i = skip(i)
        if text.startswith(",", i):
            i = skip(i + 1)
        elif text.startswith(close, i):
            return items
        else:
            raise LoaderError(path, line_of(i), None, f"invalid JSON (expected ',' or {close!r})")


def read_csv(path: Path, *, delimiter: str = ",") -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line_number, row)`` for each non-empty CSV record (line where the record starts)."""
    reader = csv.reader(io.StringIO(read_text(path), newline=""), delimiter=delimiter, strict=True)
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # An unclosed quote runs to the end of the file: report the record that opens it.
            if "unexpected end of data" in str(exc) or "EOF inside string" in str(exc):
                raise LoaderError(path, start, None, "invalid CSV: a quoted cell opened in the record starting "
                                  "on this line is never closed") from None
            raise LoaderError(path, reader.line_num, None, f"invalid CSV ({exc})") from None
        if any(cell.strip() for cell in row):
            yield start, row
        start = reader.line_num + 1


def field(record: Mapping[str, Any], name: str, path: Path, line: int, kind: type | tuple[type, ...] = str) -> Any:
    """``record[name]``, checked for presence and type; a LoaderError otherwise."""
    if name not in record:
        raise LoaderError(path, line, name, "missing")
    value = record[name]
    if not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise LoaderError(path, line, name, f"expected {expected}, got {type(value).__name__} {value!r}")
    return value


def string_list(record: Mapping[str, Any], name: str, path: Path, line: int) -> list[str]:
    """A list-of-strings field, checked element by element."""
    value = field(record, name, path, line, list)
    for k, item in enumerate(value):
        if not isinstance(item, str):
            raise LoaderError(path, line, name, f"element {k} is {type(item).__name__} {item!r}, expected a string")
    return value


def letters_to_indices(letters: str, n_choices: int, path: Path, line: int, name: str) -> set[int]:
    """'ce', 'C' or full-width 'ｃ' -> indices; every letter must name one of the choices."""
    indices = set()
    for ch in nfkc(letters).strip().lower():
        index = LETTERS.find(ch)
        if index < 0 or index >= n_choices:
            valid = LETTERS[:n_choices] if n_choices else "none (the item has no choices)"
            raise LoaderError(path, line, name, f"unknown answer letter {ch!r} (valid: {valid})")
        indices.add(index)
    if not indices:
        raise LoaderError(path, line, name, "empty answer")
    return indices


def int_field(value: Any, path: Path, line: int, name: str) -> int:
    """An integer written as int, integral float (1.0) or numeric string ("3")."""
    if isinstance(value, bool):
        raise LoaderError(path, line, name, f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    raise LoaderError(path, line, name, f"expected an integer, got {value!r}")


def float_or_none(value: Any, path: Path, line: int, name: str) -> float | None:
    """A number written as float or string; '' or None means absent."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise LoaderError(path, line, name, f"expected a number, got {value!r}") from None


def source_meta(path: Path, line: int, data_root: Path | None = None) -> dict[str, Any]:
    """``source_file`` (relative to the data root when possible) and ``source_line``."""
    return {"source_file": _display_name(path, data_root), "source_line": line}


@functools.lru_cache(maxsize=1024)
def _display_name(path: Path, data_root: Path | None) -> str:
    # Cached: Path.relative_to costs more than parsing a JSON line.
    if data_root is not None:
        try:
            return path.relative_to(data_root).as_posix()
        except ValueError:
            pass
    return str(path)
