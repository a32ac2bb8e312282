"""The mapping file of a custom benchmark: its keys, their validation, confined paths.

Every error names the mapping file, the line of the key and the key. Paths in a mapping
(the data file, an exam-rules file, image files) must lie inside the mapping's folder unless
the caller passes ``allow_outside_paths=True`` (``--allow-outside-paths``): a mapping is
data someone may hand you, and ``data: ../../../etc/passwd`` must not put a file of your
machine into a run's records.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from jmedllm.benchmarks.examrules import ExamRules, parse_exam_rules
from jmedllm.benchmarks.parsing import LoaderError, read_text

ANSWER_STYLES = ("letters", "index0", "index1", "text", "number")
FORMATS = ("jsonl", "json", "csv")
DEFAULT_MISSING = ("NA", "N/A", "n/a", "-")

Field = str | int  # a field name (a dotted path into nested JSON) or a CSV column number

# key -> (required, what it is); docs/custom-benchmarks.md follows this table (a test checks it).
MAPPING_KEYS: dict[str, tuple[bool, str]] = {
    "data": (True, "data file, relative to the mapping file (inside its folder)"),
    "question": (True, "field holding the question text"),
    "answer": (True, "field holding the answer (unless answers_from is given)"),
    "answers_from": (False, "answers in another file: {data: FILE, id: FIELD, answer: FIELD} joined on the id"),
    "choices": (False, "a field holding a list of choices, or a list of fields (one per choice)"),
    "embedded_choices": (False, "true: a record without a choices list has its choices split from the question text"),
    "strip_choice_labels": (False, "true: choices written with their own label ('a. text') lose it"),
    "answer_style": (False, f"how answers are written: {', '.join(ANSWER_STYLES)} (default letters)"),
    "answer_separator": (False, "separator between several answers in one string, e.g. ','"),
    "missing_answer": (False, "answer values meaning 'no official key' (default NA, N/A, n/a, -; empty always)"),
    "on_missing_answer": (False, "exclude (default: counted and listed) or error"),
    "id": (False, "field holding a unique id (default: the record number, 1, 2, ...)"),
    "name": (False, "benchmark name (default: the mapping file name without extension)"),
    "description": (False, "one line shown by `jmedllm data list`"),
    "language": (False, "ja or en (default: detected per question from its script)"),
    "format": (False, "jsonl, json (an array) or csv (default: from the data file extension)"),
    "records": (False, "json only: dotted path to the array of records inside a top-level object"),
    "header": (False, "csv only: whether the first row names the columns (default true)"),
    "delimiter": (False, "csv only: column delimiter (default ',', or tab for .tsv)"),
    "n_select": (False, "field holding how many choices to select (default: read from the question, else 1)"),
    "selection": (False, "field holding n, all or order (default: read from the question text)"),
    "explanation": (False, "field holding an explanation"),
    "context": (False, "field holding a context passage shown before the question"),
    "group": (False, "field holding a serial-group id (questions sharing a case)"),
    "group_context": (False, "field holding the group's shared text, shown before each question of the group"),
    "images": (False, "field holding an image path or a list of paths (relative to the data file)"),
    "category": (False, "field holding a category, kept in meta['category']"),
    "meta": (False, "list of further fields copied into meta under their own names"),
    "answer_pattern": (False, "regex with a named group 'answer' for this exam's answer style"),
    "block": (False, "field holding the exam block (A, B, ...)"),
    "number": (False, "field holding the question number within its block"),
    "id_pattern": (False, "regex with named groups block and/or number, read from the id"),
    "exam_rules": (False, "exam rules: a YAML file (relative to the mapping) or the rules inline"),
}


@dataclass(frozen=True)
class Mapping:
    """A validated mapping file."""

    path: Path
    data: Path
    format: str
    question: Field
    answer: Field
    choices: Field | tuple[Field, ...] | None
    embedded_choices: bool
    strip_choice_labels: bool
    answer_style: str
    answer_separator: str | None
    missing_answer: tuple[str, ...]
    on_missing_answer: str
    id: Field | None
    name: str
    description: str
    language: str | None
    records: str | None
    header: bool
    delimiter: str
    n_select: Field | None
    selection: Field | None
    explanation: Field | None
    context: Field | None
    group: Field | None
    group_context: Field | None
    images: Field | None
    category: Field | None
    meta: tuple[Field, ...]
    answer_pattern: str | None
    block: Field | None
    number: Field | None
    id_pattern: re.Pattern[str] | None
    exam_rules: ExamRules | None
    allow_outside_paths: bool = False
    answers_from: "AnswersFrom | None" = None


@dataclass(frozen=True)
class AnswersFrom:
    """Gold answers kept in a file of their own (a CSV with header, JSON lines or a JSON
    array), joined to the questions on the id."""

    data: Path
    format: str
    id: str
    answer: str


def confined(base: Path, value: str, allow_outside: bool, fail: Callable[[str], Exception],
             root: Path | None = None) -> Path:
    """``value`` resolved against ``base`` (symlinks followed); outside ``root`` (default
    ``base``) is an error unless ``allow_outside``."""
    path = (base / value)
    try:
        resolved = path.resolve()
        root = (root or base).resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # ValueError: a name the OS cannot encode
        raise fail(f"cannot resolve {value!r}: {exc}") from None
    if not allow_outside and resolved != root and root not in resolved.parents:
        raise fail(f"{value!r} lies outside the mapping's folder {root}; "
                   "move it there, or pass --allow-outside-paths if you trust this mapping")
    return path


def is_dir(path: Path) -> bool:
    """``path.is_dir()``, False where the OS cannot even stat it (a name too long, ...)."""
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _load_yaml(path: Path, what: str = "data, question, choices, answer, ...") -> tuple[dict[str, Any], dict[str, int]]:
    text = read_text(path)
    try:
        node = yaml.compose(text)
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise LoaderError(path, mark.line + 1 if mark else None, None, f"invalid YAML: {exc}") from None
    if not isinstance(values, dict) or node is None or not isinstance(node, yaml.MappingNode):
        raise LoaderError(path, 1, None, f"expected a mapping of keys ({what})")
    lines: dict[str, int] = {}
    for k, _ in node.value:
        if k.value in lines:
            raise LoaderError(path, k.start_mark.line + 1, str(k.value),
                              f"key given twice (first at line {lines[k.value]})")
        lines[k.value] = k.start_mark.line + 1
    return values, lines


def read_mapping(path: Path, *, allow_outside_paths: bool = False) -> Mapping:
    """Parse and validate a mapping file; errors name the mapping file, the line and the key."""
    if is_dir(path):
        raise LoaderError(path, None, None, "is a folder; custom: needs the mapping YAML file")
    values, lines = _load_yaml(path)

    def fail(key: str, message: str) -> LoaderError:
        return LoaderError(path, lines.get(key, 1), key, message)

    for key in values:
        if key not in MAPPING_KEYS:
            raise fail(str(key), f"unknown key (valid: {', '.join(MAPPING_KEYS)})")
    for key, (required, _) in MAPPING_KEYS.items():
        if required and values.get(key) in (None, "") and not (key == "answer" and values.get("answers_from")):
            raise LoaderError(path, None, key, "required key missing")

    if not isinstance(values["data"], str):
        raise fail("data", f"expected a file name, got {values['data']!r}")
    data = confined(path.parent, values["data"], allow_outside_paths, lambda m: fail("data", m))
    if is_dir(data):
        raise fail("data", f"{values['data']!r} is a folder; name the data file")
    suffix = data.suffix.lower()
    fmt = values.get("format") or {".csv": "csv", ".tsv": "csv", ".json": "json"}.get(suffix, "jsonl")
    if fmt not in FORMATS:
        raise fail("format", f"{fmt!r} is not one of {', '.join(FORMATS)}")
    header = values.get("header", True)
    if not isinstance(header, bool):
        raise fail("header", f"expected true or false, got {header!r}")
    if fmt != "csv" and ("header" in values or "delimiter" in values):
        raise fail("header" if "header" in values else "delimiter", "only meaningful for csv data")
    records = values.get("records")
    if records is not None and (fmt != "json" or not isinstance(records, str) or not records):
        raise fail("records", "json only: a dotted path to the array of records, e.g. questions")
    style = values.get("answer_style", "letters")
    if style not in ANSWER_STYLES:
        raise fail("answer_style", f"{style!r} is not one of {', '.join(ANSWER_STYLES)}")
    language = values.get("language")
    if language is not None and language not in ("ja", "en"):
        raise fail("language", f"{language!r} is not ja or en")

    def column(key: str) -> Field | None:
        value = values.get(key)
        if value is None:
            return None
        return _field(value, fmt, header, lambda m: fail(key, m))

    raw_choices = values.get("choices")
    if isinstance(raw_choices, list):
        if not raw_choices:
            raise fail("choices", "empty list")
        choices: Any = tuple(_field(v, fmt, header, lambda m: fail("choices", m)) for v in raw_choices)
    else:
        choices = column("choices")
        if fmt == "csv" and choices is not None:
            raise fail("choices", "in a csv file, list the choice columns, e.g. [A, B, C, D]")
    embedded = values.get("embedded_choices", False)
    if not isinstance(embedded, bool):
        raise fail("embedded_choices", f"expected true or false, got {embedded!r}")
    strip_labels = values.get("strip_choice_labels", False)
    if not isinstance(strip_labels, bool):
        raise fail("strip_choice_labels", f"expected true or false, got {strip_labels!r}")
    answers_from = _answers_from(values.get("answers_from"), path, allow_outside_paths,
                                 lambda m: fail("answers_from", m))
    if answers_from is not None and values.get("id") is None:
        raise fail("answers_from", "joining answers needs the questions' ids: set 'id'")
    if choices is not None and style == "number":
        raise fail("answer_style", "number answers are for questions without choices; remove 'choices'")
    extra = values.get("meta") or []
    if not isinstance(extra, list):
        raise fail("meta", f"expected a list of fields, got {extra!r}")
    separator = values.get("answer_separator")
    if separator is not None and (not isinstance(separator, str) or not separator):
        raise fail("answer_separator", f"expected a non-empty string, got {separator!r}")
    delimiter = values.get("delimiter", "\t" if suffix == ".tsv" else ",")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise fail("delimiter", f"expected one character, got {delimiter!r}")
    missing = values.get("missing_answer", list(DEFAULT_MISSING))
    if isinstance(missing, str):
        missing = [missing]
    if not isinstance(missing, list) or not all(isinstance(m, (str, int)) for m in missing):
        raise fail("missing_answer", f"expected a list of values, got {missing!r}")
    on_missing = values.get("on_missing_answer", "exclude")
    if on_missing not in ("exclude", "error"):
        raise fail("on_missing_answer", f"expected exclude or error, got {on_missing!r}")
    pattern = values.get("answer_pattern")
    if pattern is not None:
        _regex(pattern, ("answer",), lambda m: fail("answer_pattern", m), need_all=True)
    id_pattern = values.get("id_pattern")
    compiled_id = _regex(id_pattern, ("block", "number"), lambda m: fail("id_pattern", m)) if id_pattern else None
    rules = _exam_rules(values.get("exam_rules"), path, allow_outside_paths, lambda m: fail("exam_rules", m))
    if rules is not None and values.get("block") is None and (compiled_id is None or "block" not in compiled_id.groupindex):
        if any(s.blocks for s in rules.sections) or any(r.blocks for r in rules.points_rules):
            raise fail("exam_rules", "sections or points by block need the block of each item: "
                                     "set 'block' (a field) or 'id_pattern' (with a group named block)")
    return Mapping(
        path=path,
        data=data,
        format=fmt,
        question=column("question"),  # type: ignore[arg-type]
        answer=column("answer"),  # type: ignore[arg-type]
        choices=choices,
        embedded_choices=embedded,
        strip_choice_labels=strip_labels,
        answer_style=style,
        answer_separator=separator,
        missing_answer=tuple(str(m) for m in missing),
        on_missing_answer=on_missing,
        id=column("id"),
        name=str(values.get("name") or path.stem),
        description=str(values.get("description") or f"custom benchmark from {path.name}"),
        language=language,
        records=records,
        header=header,
        delimiter=delimiter,
        n_select=column("n_select"),
        selection=column("selection"),
        explanation=column("explanation"),
        context=column("context"),
        group=column("group"),
        group_context=column("group_context"),
        images=column("images"),
        category=column("category"),
        meta=tuple(_field(v, fmt, header, lambda m: fail("meta", m)) for v in extra),
        answer_pattern=pattern,
        block=column("block"),
        number=column("number"),
        id_pattern=compiled_id,
        exam_rules=rules,
        allow_outside_paths=allow_outside_paths,
        answers_from=answers_from,
    )


def _answers_from(value: Any, mapping_path: Path, allow_outside: bool,
                  fail: Callable[[str], Exception]) -> AnswersFrom | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"data", "id", "answer", "format"}:
        raise fail(f"expected {{data: FILE, id: FIELD, answer: FIELD}}, got {value!r}")
    for key in ("data", "id", "answer"):
        if not isinstance(value.get(key), str) or not value[key]:
            raise fail(f"'{key}' must be a non-empty string, got {value.get(key)!r}")
    data = confined(mapping_path.parent, value["data"], allow_outside, fail)
    if is_dir(data):
        raise fail(f"{value['data']!r} is a folder; name the answers file")
    suffix = data.suffix.lower()
    fmt = value.get("format") or {".csv": "csv", ".tsv": "csv", ".json": "json"}.get(suffix, "jsonl")
    if fmt not in FORMATS:
        raise fail(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    return AnswersFrom(data, fmt, value["id"], value["answer"])


def _field(value: Any, fmt: str, header: bool, fail: Callable[[str], Exception]) -> Field:
    if fmt == "csv" and not header:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        raise fail(f"a csv file without header is addressed by column numbers (0, 1, ...), got {value!r}")
    if isinstance(value, str) and value:
        return value
    if isinstance(value, bool):
        raise fail(f"expected a field name, got {value!r} (YAML reads no / yes / on / off unquoted as booleans: "
                   "quote the field name, e.g. 'no')")
    raise fail(f"expected a field name, got {value!r}")


def _regex(value: Any, groups: tuple[str, ...], fail: Callable[[str], Exception],
           need_all: bool = False) -> re.Pattern[str]:
    if not isinstance(value, str) or not value:
        raise fail(f"expected a regular expression, got {value!r}")
    try:
        compiled = re.compile(value)
    except re.error as exc:
        raise fail(f"invalid regular expression: {exc}") from None
    have = [g for g in groups if g in compiled.groupindex]
    if (need_all and len(have) != len(groups)) or not have:
        raise fail(f"the regular expression needs a named group {' or '.join(repr(g) for g in groups)}, "
                   f"e.g. (?P<{groups[0]}>...)")
    return compiled


def _exam_rules(value: Any, mapping_path: Path, allow_outside: bool,
                fail: Callable[[str], Exception]) -> ExamRules | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return parse_exam_rules(value, lambda key, m: fail(f"{key}: {m}"))
    if not isinstance(value, str) or not value:
        raise fail(f"expected a YAML file name or the rules inline, got {value!r}")
    rules_path = confined(mapping_path.parent, value, allow_outside, fail)
    if is_dir(rules_path):
        raise fail(f"{value!r} is a folder; name the exam-rules YAML file")
    values, lines = _load_yaml(rules_path, "exam, points, sections, ...")
    return parse_exam_rules(values, lambda key, m: LoaderError(rules_path, lines.get(key, 1), key, m))
