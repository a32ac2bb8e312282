"""Records of a custom data file (JSON lines, a JSON array, CSV) and the fields inside them.

A field is a name, or a dotted path into nested objects and lists: ``group.context``
reads ``record["group"]["context"]``, ``choices.0`` the first element of a list. A name
that exists as it is (``"group.context"`` as one key) wins over the path.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

from jmedllm.benchmarks.custom.mapping import AnswersFrom, Field, Mapping
from jmedllm.benchmarks.parsing import LoaderError, read_csv, read_json_items, read_jsonl, read_text

_MISSING = object()


def records(mapping: Mapping) -> Iterator[tuple[int, Any]]:
    """Yield ``(line, record)``: a dict (JSON, CSV with header) or a list (CSV without)."""
    if mapping.format == "jsonl":
        yield from read_jsonl(mapping.data)
        return
    if mapping.format == "json":
        yield from _json_records(mapping)
        return
    rows = read_csv(mapping.data, delimiter=mapping.delimiter)
    if not mapping.header:
        yield from rows
        return
    try:
        header_line, names = next(rows)
    except StopIteration:
        raise LoaderError(mapping.data, 1, None, "empty file (expected a header row)") from None
    names = [n.strip() for n in names]
    for line, row in rows:
        if len(row) != len(names):
            raise LoaderError(mapping.data, line, None,
                              f"{len(row)} columns, the header (line {header_line}) has {len(names)}")
        yield line, dict(zip(names, row))


def _json_records(mapping: Mapping) -> Iterator[tuple[int, Any]]:
    path = mapping.data
    if mapping.records is None:
        text = read_text(path).lstrip()
        if text.startswith("{"):
            raise LoaderError(path, 1, None, "the top level is an object; name the array of records "
                                             "with 'records: <key>' in the mapping")
        for line, _, value in read_json_items(path):
            if not isinstance(value, dict):
                raise LoaderError(path, line, None, f"expected a JSON object per record, got {type(value).__name__}")
            yield line, value
        return
    # A nested array: positions are those of the top-level key holding it.
    top = {key: (line, value) for line, key, value in read_json_items(path)}
    head = mapping.records.split(".")[0]
    if head not in top:
        raise LoaderError(path, None, "records", f"no top-level key {head!r} (found: {', '.join(map(str, top))})")
    line, value = top[head]
    found = get(value, ".".join(mapping.records.split(".")[1:])) if "." in mapping.records else value
    if not isinstance(found, list):
        raise LoaderError(path, line, mapping.records, f"expected an array of records, got {type(found).__name__}")
    for k, item in enumerate(found):
        if not isinstance(item, dict):
            raise LoaderError(path, line, f"{mapping.records}.{k}", f"expected a JSON object, got {item!r}")
        yield line, item


def get(record: Any, key: Field | str) -> Any:
    """The value at ``key`` (a column number, a name, or a dotted path), or ``_MISSING``."""
    if isinstance(record, list) and isinstance(key, int):
        return record[key] if 0 <= key < len(record) else _MISSING
    if isinstance(key, int):
        return _MISSING
    if key == "":
        return record
    if isinstance(record, dict) and key in record:
        return record[key]
    value = record
    for part in key.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def is_missing(value: Any) -> bool:
    return value is _MISSING


def describe(value: Any) -> str:
    """A short rendering of a value for an error message."""
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def answer_table(source: AnswersFrom) -> dict[str, tuple[int, Any]]:
    """id -> (line, answer) from an answers file; a repeated or missing id is an error."""
    path = source.data
    if source.format == "csv":
        rows = read_csv(path, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        try:
            _, names = next(rows)
        except StopIteration:
            raise LoaderError(path, 1, None, "empty file (expected a header row)") from None
        names = [n.strip() for n in names]
        items: Iterator[tuple[int, Any]] = ((line, dict(zip(names, row))) for line, row in rows)
    elif source.format == "json":
        items = ((line, value) for line, _, value in read_json_items(path))
    else:
        items = read_jsonl(path)
    table: dict[str, tuple[int, Any]] = {}
    for line, record in items:
        if not isinstance(record, dict):
            raise LoaderError(path, line, None, f"expected a record with fields, got {describe(record)}")
        qid = get(record, source.id)
        if is_missing(qid) or qid in (None, "") or isinstance(qid, (dict, list, bool)):
            raise LoaderError(path, line, source.id, f"missing or not an id: {describe(None if is_missing(qid) else qid)}")
        qid = str(qid).strip()
        if qid in table:
            raise LoaderError(path, line, source.id, f"duplicate id {qid!r} (first at line {table[qid][0]})")
        value = get(record, source.answer)
        table[qid] = (line, None if is_missing(value) else value)
    return table
