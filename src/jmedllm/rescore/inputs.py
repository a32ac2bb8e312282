"""Reading another tool's outputs: rows of (item id, raw response[, reference]) from JSONL, CSV or JSON,
and matching their ids to a benchmark's items.

Field names are dotted paths into each record (``answers.0.answer``: key ``answers``, first list
element, key ``answer``); a key that itself contains dots is found first. A JSON file is an array
of records, or an object holding one (``records: results``). Every problem names the file, the
line (or the record's position) and the field.

Ids: ``exact`` (default) matches the item id as jmedllm writes it (``116A1``), or the item key
``BENCHMARK::ID`` from a jmedllm items.jsonl. ``loose`` compares ids after NFKC, case folding,
dropping every character but letters and digits and leading zeros of each number, keeping where
a run of digits or letters ends: ``116-A-001``, ``116a1`` and ``116A1`` are the same id,
``1-11`` and ``11-1`` are not.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from jmedllm.benchmarks.parsing import LoaderError, read_csv, read_json_items, read_jsonl, read_text
from jmedllm.text import nfkc

FORMATS = ("jsonl", "csv", "json")
ID_NORMALIZATIONS = ("exact", "loose")
_MISSING = object()


class InputError(ValueError):
    """A problem with the file of responses (or a reference value in it); names the place."""


@dataclass(frozen=True)
class Row:
    """One response of the input file."""

    where: str  # "file:line" or "file: records[3]"
    raw_id: str
    response: str
    response_missing: bool  # the field held null (an API error, a timeout): scored as an empty answer
    reference_verdict: Any = None
    reference_answer: Any = None
    benchmark: str | None = None  # the benchmark the row names (a --benchmark-field), if any


def format_of(path: Path, given: str | None) -> str:
    if given:
        if given not in FORMATS:
            raise LoaderError(path, None, None, f"unknown format {given!r}; valid: {', '.join(FORMATS)}")
        return given
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("jsonl", "ndjson"):
        return "jsonl"
    if suffix in ("csv", "tsv"):
        return "csv"
    if suffix == "json":
        return "json"
    raise LoaderError(path, None, None, f"cannot tell the format from the extension {path.suffix!r}: "
                                        f"give --format ({', '.join(FORMATS)})")


def get_field(record: Any, dotted: str) -> Any:
    """The value at a dotted path (``a.0.b``), or ``_MISSING``; a key containing dots wins."""
    if isinstance(record, Mapping) and dotted in record:
        return record[dotted]
    head, dot, rest = dotted.partition(".")
    if isinstance(record, Mapping):
        if head not in record:
            return _MISSING
        value = record[head]
    elif isinstance(record, list) and head.lstrip("-").isdigit():
        index = int(head)
        if not -len(record) <= index < len(record):
            return _MISSING
        value = record[index]
    else:
        return _MISSING
    return get_field(value, rest) if dot else value


def read_records(path: Path, fmt: str, *, records: str | None = None,
                 delimiter: str | None = None) -> list[tuple[str, Mapping[str, Any]]]:
    """``(where, record)`` for every record of the file, in order."""
    if not path.is_file():
        raise LoaderError(path, None, None, "file not found")
    if records and fmt != "json":
        raise LoaderError(path, None, None, f"--records applies to JSON input, and this file is {fmt}")
    if delimiter and fmt != "csv":
        raise LoaderError(path, None, None, f"--delimiter applies to CSV input, and this file is {fmt}")
    out: list[tuple[str, Mapping[str, Any]]] = []
    if fmt == "jsonl":
        out = [(f"{path}:{line}", obj) for line, obj in read_jsonl(path)]
    elif fmt == "csv":
        sep = delimiter or ("\t" if path.suffix.lower() == ".tsv" else ",")
        rows = list(read_csv(path, delimiter=sep))
        if not rows:
            return []
        (_, header), body = rows[0], rows[1:]
        header = [h.strip() for h in header]
        for line, row in body:
            if len(row) != len(header):
                raise LoaderError(path, line, None, f"{len(row)} columns where the header has {len(header)}")
            out.append((f"{path}:{line}", dict(zip(header, row))))
    elif records:
        try:
            top = json.loads(read_text(path))
        except json.JSONDecodeError as exc:
            raise LoaderError(path, exc.lineno, None, f"invalid JSON ({exc.msg} at column {exc.colno})") from None
        array = get_field(top, records)
        if not isinstance(array, list):
            raise LoaderError(path, None, records, "is not a list of records" if array is not _MISSING
                              else "not found in the top-level object")
        out = [(f"{path}: {records}[{i}]", obj) for i, obj in enumerate(array)]
    else:
        items = read_json_items(path)
        if read_text(path).lstrip().startswith("{"):
            keys = ", ".join(str(k) for _, k, _ in items[:10])
            raise LoaderError(path, None, None, "is a JSON object, not an array of records: give the key that "
                                                f"holds the records (--records KEY; its keys: {keys})")
        out = [(f"{path}:{line}", obj) for line, _, obj in items]
    for where, obj in out:
        if not isinstance(obj, Mapping):
            raise InputError(f"{where}: expected a record (an object), got {type(obj).__name__}")
    return out


def _text(value: Any, where: str, name: str) -> str:
    if isinstance(value, bool) or isinstance(value, (dict, list)):
        raise InputError(f"{where}: field {name!r} holds {type(value).__name__} {str(value)[:60]!r}, "
                         "not a text or number")
    return value if isinstance(value, str) else str(value)


def read_rows(path: Path, fmt: str, *, id_field: str, response_field: str, records: str | None = None,
              delimiter: str | None = None, reference_verdict_field: str | None = None,
              reference_answer_field: str | None = None, benchmark_field: str | None = None) -> list[Row]:
    """Every record as a Row; a record without the id or response field is an error naming it."""
    rows = []
    for where, rec in read_records(path, fmt, records=records, delimiter=delimiter):
        raw_id = get_field(rec, id_field)
        if raw_id is _MISSING or raw_id in (None, ""):
            raise InputError(f"{where}: field {id_field!r} (the item id) is missing or empty; "
                             f"fields here: {', '.join(map(str, rec))}")
        response = get_field(rec, response_field)
        if response is _MISSING:
            raise InputError(f"{where}: field {response_field!r} (the response) is missing; "
                             f"fields here: {', '.join(map(str, rec))}")
        refs = {}
        if benchmark_field:
            bench = get_field(rec, benchmark_field)
            if bench is _MISSING or bench in (None, ""):
                raise InputError(f"{where}: field {benchmark_field!r} (the benchmark) is missing or empty")
            refs["benchmark"] = _text(bench, where, benchmark_field).strip()
        for key, name in (("reference_verdict", reference_verdict_field), ("reference_answer", reference_answer_field)):
            if name:
                value = get_field(rec, name)
                if value is _MISSING:
                    raise InputError(f"{where}: field {name!r} (the {key.replace('_', ' ')}) is missing")
                refs[key] = value
        rows.append(Row(where, _text(raw_id, where, id_field).strip(),
                        "" if response is None else _text(response, where, response_field),
                        response is None, **refs))
    return rows


def normalize_id(raw: str, how: str) -> str:
    if how == "exact":
        return raw.strip()
    tokens = re.findall(r"\d+|[^\W\d_]+", nfkc(raw).lower())
    return ".".join(t.lstrip("0") or "0" if t.isdigit() else t for t in tokens)


@dataclass
class Matched:
    """How the input's rows map to the benchmark's items."""

    by_key: dict[str, Row] = field(default_factory=dict)  # item key -> its row
    unknown: list[Row] = field(default_factory=list)  # rows whose id names no item of the benchmark(s)
    missing: list[str] = field(default_factory=list)  # item keys with no row


def _same_benchmark(key: str, bench: str) -> bool:
    """Whether item ``key`` belongs to ``bench``: its spec, or the same benchmark name
    (``igakuqa-en`` and ``igakuqa-en:2022:A`` name the items of ``igakuqa-en:2022``)."""
    spec = key.rpartition("::")[0]
    return spec == bench or spec.split(":")[0] == bench.split(":")[0]


def match_rows(rows: Sequence[Row], keys: Iterable[tuple[str, str]], how: str = "exact") -> Matched:
    """Match rows to items given as ``(key, id)``; ambiguities and duplicates are errors."""
    if how not in ID_NORMALIZATIONS:
        raise InputError(f"unknown id normalisation {how!r}; valid: {', '.join(ID_NORMALIZATIONS)}")
    keys = list(keys)
    by_id: dict[str, list[str]] = {}
    for key, item_id in keys:
        by_id.setdefault(normalize_id(item_id, how), []).append(key)
    known_keys = {k for k, _ in keys}
    out = Matched()
    first_row: dict[str, Row] = {}
    for row in rows:
        if row.raw_id in known_keys:
            candidates = [row.raw_id]
        else:  # a bare id, or a key written under another spec of the same benchmark
            prefix, _, bare = row.raw_id.rpartition("::")
            candidates = by_id.get(normalize_id(bare, how), [])
            for bench in (prefix, row.benchmark):
                if bench:
                    candidates = [k for k in candidates if _same_benchmark(k, bench)]
        if not candidates:
            out.unknown.append(row)
            continue
        if len(candidates) > 1:
            raise InputError(f"{row.where}: id {row.raw_id!r} matches several items ({', '.join(candidates[:4])}): "
                             "give ids as BENCHMARK::ID (the key jmedllm writes), name the benchmark per row "
                             "(--benchmark-field), or score one benchmark at a time"
                             + (", or use --id-normalize exact" if how != "exact" else ""))
        key = candidates[0]
        if key in first_row:
            raise InputError(f"{row.where}: a second response for item {key} (the first is at {first_row[key].where})")
        first_row[key] = row
        out.by_key[key] = row
    out.missing = [k for k, _ in keys if k not in out.by_key]
    return out


__all__ = ["FORMATS", "ID_NORMALIZATIONS", "InputError", "Matched", "Row", "format_of", "get_field", "match_rows",
           "normalize_id", "read_records", "read_rows"]
