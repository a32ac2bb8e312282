"""Your own benchmark: any JSONL or CSV file plus a small YAML mapping (see docs/custom-benchmarks.md).

The mapping names the data file (relative to the mapping), its format, and which field holds
the id, the question, the choices, the answer (and how answers are written), and optionally
the number of choices to select, an explanation, a context, a category and extra metadata.
Every error names the file, the line and the field (a mapping key or a data field).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from jmedllm.benchmarks.parsing import LoaderError, read_csv, read_jsonl, read_text, source_meta
from jmedllm.benchmarks.record import Loaded
from jmedllm.schema import LETTERS, Question
from jmedllm.text import nfkc, parse_n_select

ANSWER_STYLES = ("letters", "index0", "index1", "text", "number")
FORMATS = ("jsonl", "csv")

# key -> (required, what it is); the documentation in docs/custom-benchmarks.md follows this table.
MAPPING_KEYS: dict[str, tuple[bool, str]] = {
    "data": (True, "data file, relative to the mapping file"),
    "question": (True, "field holding the question text"),
    "answer": (True, "field holding the answer"),
    "choices": (False, "a field holding a list of choices, or a list of fields (one per choice)"),
    "answer_style": (False, f"how answers are written: {', '.join(ANSWER_STYLES)} (default letters)"),
    "answer_separator": (False, "separator between several answers in one string, e.g. ','"),
    "id": (False, "field holding a unique id (default: the record number, 1, 2, ...)"),
    "name": (False, "benchmark name (default: the mapping file name without extension)"),
    "description": (False, "one line shown by `jmedllm data list`"),
    "language": (False, "ja or en (default: detected per question from its script)"),
    "format": (False, "jsonl or csv (default: from the data file extension)"),
    "header": (False, "csv only: whether the first row names the columns (default true)"),
    "delimiter": (False, "csv only: column delimiter (default ',', or tab for .tsv)"),
    "n_select": (False, "field holding how many choices to select (default: read from the question, else 1)"),
    "explanation": (False, "field holding an explanation"),
    "context": (False, "field holding a context passage shown before the question"),
    "category": (False, "field holding a category, kept in meta['category']"),
    "meta": (False, "list of further fields copied into meta under their own names"),
}


@dataclass(frozen=True)
class Mapping:
    """A validated mapping file."""

    path: Path
    data: Path
    format: str
    question: str | int
    answer: str | int
    choices: str | int | tuple[str | int, ...] | None
    answer_style: str
    answer_separator: str | None
    id: str | int | None
    name: str
    description: str
    language: str | None
    header: bool
    delimiter: str
    n_select: str | int | None
    explanation: str | int | None
    context: str | int | None
    category: str | int | None
    meta: tuple[str | int, ...]


def read_mapping(path: Path) -> Mapping:
    """Parse and validate a mapping file; errors name the mapping file, the line and the key."""
    text = read_text(path)
    try:
        node = yaml.compose(text)
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise LoaderError(path, mark.line + 1 if mark else None, None, f"invalid YAML: {exc}") from None
    if not isinstance(values, dict) or node is None:
        raise LoaderError(path, 1, None, "expected a mapping of keys (data, question, choices, answer, ...)")
    lines = {k.value: k.start_mark.line + 1 for k, _ in node.value}

    def fail(key: str, message: str) -> LoaderError:
        return LoaderError(path, lines.get(key, 1), key, message)

    for key in values:
        if key not in MAPPING_KEYS:
            raise fail(key, f"unknown key (valid: {', '.join(MAPPING_KEYS)})")
    for key, (required, _) in MAPPING_KEYS.items():
        if required and values.get(key) in (None, ""):
            raise LoaderError(path, None, key, "required key missing")

    data = path.parent / str(values["data"])
    fmt = values.get("format") or {".csv": "csv", ".tsv": "csv"}.get(data.suffix.lower(), "jsonl")
    if fmt not in FORMATS:
        raise fail("format", f"{fmt!r} is not one of {', '.join(FORMATS)}")
    header = values.get("header", True)
    if not isinstance(header, bool):
        raise fail("header", f"expected true or false, got {header!r}")
    if fmt == "jsonl" and ("header" in values or "delimiter" in values):
        raise fail("header" if "header" in values else "delimiter", "only meaningful for csv data")
    style = values.get("answer_style", "letters")
    if style not in ANSWER_STYLES:
        raise fail("answer_style", f"{style!r} is not one of {', '.join(ANSWER_STYLES)}")
    language = values.get("language")
    if language is not None and language not in ("ja", "en"):
        raise fail("language", f"{language!r} is not ja or en")

    def column(key: str) -> str | int | None:
        value = values.get(key)
        if value is None:
            return None
        if fmt == "csv" and not header:
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise fail(key, f"a csv file without header is addressed by column numbers (0, 1, ...), got {value!r}")
            return value
        if not isinstance(value, str) or not value:
            raise fail(key, f"expected a field name, got {value!r}")
        return value

    raw_choices = values.get("choices")
    if isinstance(raw_choices, list):
        choices: Any = tuple(_choice_column(v, fmt, header, fail) for v in raw_choices)
        if not choices:
            raise fail("choices", "empty list")
    else:
        choices = column("choices")
        if fmt == "csv" and choices is not None:
            raise fail("choices", "in a csv file, list the choice columns, e.g. [A, B, C, D]")
    if choices is None and style != "number":
        raise fail("choices", f"required unless answer_style is number (got answer_style {style})")
    if choices is not None and style == "number":
        raise fail("answer_style", "number answers are for questions without choices; remove 'choices'")
    extra = values.get("meta") or []
    if not isinstance(extra, list):
        raise fail("meta", f"expected a list of fields, got {extra!r}")
    separator = values.get("answer_separator")
    if separator is not None and (not isinstance(separator, str) or not separator):
        raise fail("answer_separator", f"expected a non-empty string, got {separator!r}")
    delimiter = values.get("delimiter", "\t" if data.suffix.lower() == ".tsv" else ",")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise fail("delimiter", f"expected one character, got {delimiter!r}")
    return Mapping(
        path=path,
        data=data,
        format=fmt,
        question=column("question"),  # type: ignore[arg-type]
        answer=column("answer"),  # type: ignore[arg-type]
        choices=choices,
        answer_style=style,
        answer_separator=separator,
        id=column("id"),
        name=str(values.get("name") or path.stem),
        description=str(values.get("description") or f"custom benchmark from {path.name}"),
        language=language,
        header=header,
        delimiter=delimiter,
        n_select=column("n_select"),
        explanation=column("explanation"),
        context=column("context"),
        category=column("category"),
        meta=tuple(_choice_column(v, fmt, header, lambda k, m: fail("meta", m)) for v in extra),
    )


def _choice_column(value: Any, fmt: str, header: bool, fail) -> str | int:
    if fmt == "csv" and not header:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        raise fail("choices", f"a csv file without header is addressed by column numbers, got {value!r}")
    if isinstance(value, str) and value:
        return value
    raise fail("choices", f"expected field names, got {value!r}")


def load(mapping_path: Path) -> tuple[Loaded, Mapping]:
    """Questions described by the mapping at ``mapping_path``, and the mapping itself."""
    mapping = read_mapping(mapping_path)
    out = Loaded(files=[mapping_path, mapping.data])
    seen: dict[str, int] = {}
    for number, (line, record) in enumerate(_records(mapping), start=1):
        q = _question(mapping, line, number, record)
        if q.id in seen:
            raise LoaderError(mapping.data, line, str(mapping.id), f"duplicate id {q.id!r} (first at line {seen[q.id]})")
        seen[q.id] = line
        out.questions.append(q)
    if not out.questions:
        raise LoaderError(mapping.data, None, None, "no questions")
    return out, mapping


def _records(mapping: Mapping):
    """Yield ``(line, record)``: a dict for JSONL and CSV with header, a list for CSV without."""
    if mapping.format == "jsonl":
        yield from read_jsonl(mapping.data)
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


def _get(record: Any, key: str | int, mapping: Mapping, line: int, required: bool = True) -> Any:
    if isinstance(record, list):
        if key >= len(record):  # type: ignore[operator]
            if not required:
                return None
            raise LoaderError(mapping.data, line, f"column {key}", f"missing (the row has {len(record)} columns)")
        return record[key]  # type: ignore[index]
    if key not in record:
        if not required:
            return None
        raise LoaderError(mapping.data, line, str(key), "missing")
    return record[key]


def _text(record: Any, key: str | int, mapping: Mapping, line: int, required: bool = True) -> str | None:
    value = _get(record, key, mapping, line, required)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise LoaderError(mapping.data, line, str(key), "empty")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise LoaderError(mapping.data, line, str(key), f"expected text, got {type(value).__name__} {value!r}")
    return str(value)


def _choices(record: Any, mapping: Mapping, line: int) -> list[str]:
    if mapping.choices is None:
        return []
    if isinstance(mapping.choices, tuple):
        values = [_get(record, key, mapping, line) for key in mapping.choices]
        names = [str(k) for k in mapping.choices]
        # Trailing empty cells are dropped, so one file may mix 4- and 5-choice questions.
        while values and (values[-1] is None or (isinstance(values[-1], str) and not values[-1].strip())):
            values.pop()
    else:
        values = _get(record, mapping.choices, mapping, line)
        if not isinstance(values, list):
            raise LoaderError(mapping.data, line, str(mapping.choices), f"expected a list of choices, got {values!r}")
        names = [f"{mapping.choices}[{k}]" for k in range(len(values))]
    choices = []
    for name, value in zip(names, values):
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or not str(value).strip():
            raise LoaderError(mapping.data, line, name, f"empty or not text: {value!r}")
        choices.append(str(value).strip())
    if len(choices) < 2:
        raise LoaderError(mapping.data, line, str(mapping.choices), f"{len(choices)} choice(s); at least 2 needed")
    return choices


def parse_answers(value: Any, style: str, separator: str | None, choices: list[str],
                  path: Path, line: int, name: str) -> set[int]:
    """Gold choice indices from an answer written in ``style`` (see ``ANSWER_STYLES``).

    A JSON list holds one answer per element; a string holds several when ``separator``
    is set, and in the ``letters`` style a run of letters (``"ce"``) is several answers.
    """
    if isinstance(value, list):
        parts = value
    elif isinstance(value, str) and separator is not None:
        parts = value.split(separator)
    else:
        parts = [value]
    if style == "letters" and separator is None and len(parts) == 1 and isinstance(parts[0], str):
        letters = nfkc(parts[0]).strip()
        if re.fullmatch(r"[A-Za-z]{2,}", letters):
            parts = list(letters)
    indices: set[int] = set()
    for part in parts:
        if isinstance(part, str):
            part = nfkc(part).strip()
        if part in ("", None):
            raise LoaderError(path, line, name, f"empty answer in {value!r}")
        indices.add(_one_answer(part, style, choices, path, line, name))
    if not indices:
        raise LoaderError(path, line, name, "no answer")
    return indices


def _one_answer(part: Any, style: str, choices: list[str], path: Path, line: int, name: str) -> int:
    n = len(choices)
    if style == "letters":
        if not (isinstance(part, str) and len(part) == 1 and part.lower() in LETTERS[:n]):
            raise LoaderError(path, line, name, f"unknown answer letter {part!r} (valid: {LETTERS[:n]})")
        return LETTERS.index(part.lower())
    if style in ("index0", "index1"):
        base = 0 if style == "index0" else 1
        if isinstance(part, bool) or not (isinstance(part, int) or (isinstance(part, str) and part.isdigit())):
            raise LoaderError(path, line, name, f"expected a {base}-based choice number, got {part!r}")
        index = int(part) - base
        if not 0 <= index < n:
            raise LoaderError(path, line, name, f"choice number {part!r} out of range {base}..{n - 1 + base}")
        return index
    # style == "text"
    text = str(part)
    matches = [k for k, c in enumerate(choices) if c == text] or [k for k, c in enumerate(choices) if nfkc(c) == text]
    if len(matches) != 1:
        raise LoaderError(path, line, name, f"answer text {text!r} matches {len(matches)} choices (expected exactly one)")
    return matches[0]


_JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


def _question(mapping: Mapping, line: int, number: int, record: Any) -> Question:
    path = mapping.data
    if mapping.format == "jsonl" and not isinstance(record, dict):  # pragma: no cover - read_jsonl checks
        raise LoaderError(path, line, None, "expected a JSON object")
    qid = _text(record, mapping.id, mapping, line) if mapping.id is not None else str(number)
    text = _text(record, mapping.question, mapping, line)
    assert text is not None and qid is not None
    choices = _choices(record, mapping, line)
    raw_answer = _get(record, mapping.answer, mapping, line)
    numeric = None
    answer: set[int] = set()
    if mapping.answer_style == "number":
        if isinstance(raw_answer, bool) or not isinstance(raw_answer, (str, int, float)) or not str(raw_answer).strip():
            raise LoaderError(path, line, str(mapping.answer), f"expected a number, got {raw_answer!r}")
        numeric = nfkc(str(raw_answer)).strip()
        if not re.fullmatch(r"-?\d+(?:\.\d+)?", numeric):
            raise LoaderError(path, line, str(mapping.answer), f"expected a number, got {raw_answer!r}")
    else:
        answer = parse_answers(raw_answer, mapping.answer_style, mapping.answer_separator, choices,
                               path, line, str(mapping.answer))
    n_select = None
    if mapping.n_select is not None:
        value = _get(record, mapping.n_select, mapping, line, required=False)
        if value not in (None, ""):
            if isinstance(value, bool) or not str(value).strip().isdigit() or int(value) < 1:
                raise LoaderError(path, line, str(mapping.n_select), f"expected a positive integer, got {value!r}")
            n_select = int(value)
    meta: dict[str, Any] = {"text_only": True, **source_meta(path, line)}
    if mapping.category is not None:
        category = _text(record, mapping.category, mapping, line, required=False)
        if category is not None:
            meta["category"] = category
    for key in mapping.meta:
        value = _get(record, key, mapping, line, required=False)
        if value is not None:
            meta[str(key)] = tuple(value) if isinstance(value, list) else value
    language = mapping.language or ("ja" if _JAPANESE.search(text) else "en")
    return Question(
        id=qid,
        benchmark=mapping.name,
        text=text,
        choices=tuple(choices),
        answer=frozenset(answer),
        n_select=n_select or parse_n_select(text) or 1,
        language=language,
        numeric_answer=numeric,
        context=_text(record, mapping.context, mapping, line, required=False) if mapping.context is not None else None,
        explanation=(_text(record, mapping.explanation, mapping, line, required=False)
                     if mapping.explanation is not None else None),
        meta=meta,
    )
