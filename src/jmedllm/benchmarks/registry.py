"""Benchmark names -> loaders, and the spec syntax that selects and filters questions.

A spec is ``name[:selector…][:key=value…]``, for example::

    igakuqa                      all of IgakuQA 2018-2022 in Japanese
    igakuqa-en:2022              the 116th exam (2022) in English
    igakuqa:2018-2020:A          block A of three exams
    igakuqa:116:BE               the compulsory blocks of the 116th exam
    yakugakuqa:2024:text_only=true:limit=20
    mmlu-med:anatomy,virology    (subjects)      pubmedqa:all  (the 1000 labelled)
    custom:path/to/mapping.yaml

Selectors (bare words) are years (``2022``, ``2018-2020``), exam numbers (``116``), blocks
(``A``, ``BE``, ``A,B``), subjects or splits, each where the benchmark has them; ``key=value``
parts are :class:`~jmedllm.benchmarks.record.Filters`. The registry is a plain dict.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

from jmedllm.benchmarks import (
    custom,
    igakuqa,
    igakuqa119,
    jjsimqa,
    jmmlu,
    medmcqa,
    medqa,
    mmlu,
    pubmedqa,
    yakugakuqa,
)
from jmedllm.benchmarks.parsing import LoaderError
from jmedllm.benchmarks.record import Benchmark, Filters, Loaded, apply_filters, parse_filter_value
from jmedllm.paths import resolve_data_root


class BenchmarkSpecError(ValueError):
    """An unknown benchmark name, selector or filter."""


@dataclass(frozen=True)
class Entry:
    """How to load one named benchmark."""

    description: str
    language: str
    load: Callable[[Path, Filters], Loaded]
    selectors: tuple[str, ...] = ()  # which of "year", "exam", "block", "subject", "split" it accepts
    subjects: tuple[str, ...] = ()  # valid subject selectors
    splits: tuple[str, ...] = ()  # valid split selectors
    default: Filters = Filters()  # e.g. PubMedQA keeps its test split unless told otherwise


_ALL_JMMLU = jmmlu.MEDICAL_SUBJECTS + jmmlu.NEARBY_SUBJECTS

BENCHMARKS: dict[str, Entry] = {
    "igakuqa": Entry(
        "IgakuQA: Japanese national medical licensing exam 112-116 (2018-2022), 2000 questions",
        "ja", lambda root, f: igakuqa.load(root, "ja", _years(f, igakuqa.EXAM_YEAR_OFFSET), f.blocks), ("year", "exam", "block")),
    "igakuqa-en": Entry(
        "IgakuQA in English (machine translation), same ids, gold and metadata as igakuqa",
        "en", lambda root, f: igakuqa.load(root, "en", _years(f, igakuqa.EXAM_YEAR_OFFSET), f.blocks), ("year", "exam", "block")),
    "igakuqa119": Entry(
        "IgakuQA119: the 119th exam (2025), 400 questions, no points in the source",
        "ja", lambda root, f: igakuqa119.load(root, f.blocks), ("block",)),
    "jjsimqa": Entry(
        "JJSIMQA: internal-medicine questions (Journal of the Japanese Society of Internal Medicine), 460",
        "ja", lambda root, f: jjsimqa.load(root)),
    "medqa": Entry(
        "MedQA-USMLE test, 4 options, 1273 questions", "en", lambda root, f: medqa.load(root)),
    "medmcqa": Entry(
        "MedMCQA dev split (Indian medical entrance exams), 4183 questions", "en", lambda root, f: medmcqa.load(root)),
    "mmlu-med": Entry(
        "MMLU medical subjects (6), test split, 1089 questions", "en",
        lambda root, f: mmlu.load(root, _subjects(f, mmlu.MEDICAL_SUBJECTS)), ("subject",),
        subjects=mmlu.MEDICAL_SUBJECTS),
    "jmmlu-med": Entry(
        "JMMLU (Japanese MMLU), the same 6 medical subjects as mmlu-med", "ja",
        lambda root, f: jmmlu.load(root, _subjects(f, jmmlu.MEDICAL_SUBJECTS)), ("subject",),
        subjects=jmmlu.MEDICAL_SUBJECTS),
    "jmmlu-med-ext": Entry(
        "JMMLU medical subjects plus human_aging, nutrition, virology (9 subjects)", "ja",
        lambda root, f: jmmlu.load(root, _subjects(f, _ALL_JMMLU), "jmmlu-med-ext"), ("subject",),
        subjects=_ALL_JMMLU),
    "pubmedqa": Entry(
        "PubMedQA PQA-L yes/no/maybe with abstracts; test split (500) by default, 'all' for 1000", "en",
        lambda root, f: pubmedqa.load(root), ("split",), splits=("test", "train", "all"),
        default=Filters(split="test")),
    "yakugakuqa": Entry(
        "YakugakuQA: Japanese national pharmacist exam 97-109 (2012-2024), 4485 questions",
        "ja", lambda root, f: yakugakuqa.load(root, _years(f, yakugakuqa.EXAM_YEAR_OFFSET)), ("year", "exam", "block")),
}
CUSTOM_PREFIX = "custom:"
CUSTOM_DESCRIPTION = "your own JSONL, JSON array or CSV described by a YAML mapping: custom:path/to/mapping.yaml"


def _years(filters: Filters, exam_to_year: int) -> tuple[int, ...] | None:
    """The years whose files a loader must read: the year filter, else the exams' years."""
    if filters.years is not None:
        return filters.years
    if filters.exams is not None:
        return tuple(exam + exam_to_year for exam in filters.exams)
    return None


def _subjects(filters: Filters, allowed: tuple[str, ...]) -> tuple[str, ...]:
    if filters.subjects is None:
        return allowed
    unknown = [s for s in filters.subjects if s not in allowed]
    if unknown:
        raise BenchmarkSpecError(f"unknown subject {', '.join(unknown)} (valid: {', '.join(allowed)})")
    return tuple(filters.subjects)


def benchmark_names() -> list[str]:
    """Every name a spec may start with (``custom`` takes a mapping path)."""
    return [*BENCHMARKS, "custom"]


def list_benchmarks() -> dict[str, Entry]:
    """Name -> entry (description, language, accepted selectors), in a stable order."""
    return dict(BENCHMARKS)


def parse_spec(spec: str) -> tuple[str, Filters, Path | None]:
    """``"igakuqa:2022:A:limit=5"`` -> ``("igakuqa", Filters(years=(2022,), blocks=("A",), limit=5), None)``.

    For ``custom:<mapping>`` the third element is the mapping path.
    """
    spec = spec.strip()
    if spec.startswith(CUSTOM_PREFIX):
        parts = spec[len(CUSTOM_PREFIX):].split(":")
        filters: dict[str, Any] = {}
        while len(parts) > 1 and re.fullmatch(r"\w+=.*", parts[-1]):
            key, value = parts.pop().split("=", 1)
            filters[key] = _filter_value(key, value, spec)
        mapping = ":".join(parts)
        if not mapping:
            raise BenchmarkSpecError("custom: give the mapping file, e.g. custom:my_exam.yaml")
        return "custom", Filters(**filters), Path(mapping)
    name, *parts = spec.split(":")
    if name not in BENCHMARKS:
        raise BenchmarkSpecError(f"unknown benchmark {name!r} (valid: {', '.join(benchmark_names())})")
    entry = BENCHMARKS[name]
    values: dict[str, Any] = {}
    for part in parts:
        if "=" in part:
            key, value = part.split("=", 1)
            found = {key.strip(): _filter_value(key.strip(), value, spec)}
        else:
            found = _selector(name, entry, part.strip())
        for key, value in found.items():
            if key in values:
                raise BenchmarkSpecError(f"{spec}: {key} given twice")
            values[key] = value
    return name, Filters(**values), None


def _filter_value(key: str, value: str, spec: str) -> Any:
    try:
        return parse_filter_value(key, value)
    except ValueError as exc:
        raise BenchmarkSpecError(f"{spec}: {exc}") from None


def _selector(name: str, entry: Entry, part: str) -> dict[str, Any]:
    """Classify one bare selector by its shape and the kinds the benchmark accepts."""
    kinds = entry.selectors
    numbers = r"\d+(?:-\d+)?(?:,\d+(?:-\d+)?)*"
    if "year" in kinds and re.fullmatch(numbers.replace(r"\d+", r"\d{4}"), part):
        return {"years": parse_filter_value("years", part)}
    if "exam" in kinds and re.fullmatch(numbers.replace(r"\d+", r"\d{2,3}"), part):
        return {"exams": parse_filter_value("exams", part)}
    if "block" in kinds and re.fullmatch(r"[A-Z]+|[A-Z](?:,[A-Z])+", part):
        return {"blocks": parse_filter_value("blocks", part)}
    if "split" in kinds and part in entry.splits:
        return {"split": part}
    if "subject" in kinds and all(s in entry.subjects for s in part.split(",")):
        return {"subjects": parse_filter_value("subjects", part)}
    help_ = {
        "year": "a year or range (2022, 2018-2020)",
        "exam": "an exam number (116)",
        "block": "blocks (A, BE, A,B)",
        "split": f"a split ({', '.join(entry.splits)})",
        "subject": f"subjects ({', '.join(entry.subjects)})",
    }
    if not kinds:
        raise BenchmarkSpecError(f"{name} takes no selectors, got {part!r} (filters key=value still apply)")
    raise BenchmarkSpecError(f"{name}: cannot read selector {part!r}; valid: "
                             + "; ".join(help_[k] for k in kinds) + "; or key=value filters")


def _kwarg_filters(kwargs: dict[str, Any]) -> tuple[Filters, str]:
    """Keyword filters (Python values or strings as on a command line) and their spec suffix."""
    names = {f.name for f in fields(Filters)}
    values: dict[str, Any] = {}
    suffix = ""
    for key, value in kwargs.items():
        if value is None:
            continue
        if key not in names:
            raise BenchmarkSpecError(f"unknown filter {key!r} (valid: {', '.join(sorted(names))})")
        if isinstance(value, (list, tuple, set, frozenset)):
            text = ",".join(str(v) for v in value)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        values[key] = _filter_value(key, text, key)
        suffix += f":{key}={text}"
    return Filters(**values), suffix


def load_benchmark(spec: str, data_root: str | os.PathLike[str] | None = None, *,
                   allow_outside_paths: bool = False, **filters: Any) -> Benchmark:
    """Load the benchmark a spec names, selected and filtered.

    ``data_root`` defaults to ``$JMEDLLM_DATA_ROOT`` (not needed for ``custom:``, whose
    mapping path is taken as given). Keyword ``filters`` are those of
    :class:`~jmedllm.benchmarks.record.Filters` (``years=(2022,)``, ``text_only=True``,
    ``limit=5`` …) and override the spec's; they are appended to the returned
    ``Benchmark.name`` so that the name alone reproduces the selection.
    ``allow_outside_paths`` lets a custom mapping name files outside its own folder.
    """
    name, spec_filters, mapping_path = parse_spec(spec)
    kw_filters, suffix = _kwarg_filters(filters)
    if name == "custom":
        assert mapping_path is not None
        selected = spec_filters.merged(kw_filters)
        loaded, mapping = custom.load(mapping_path, allow_outside_paths=allow_outside_paths)
        languages = sorted({q.language for q in loaded.questions})
        language = mapping.language or (languages[0] if len(languages) == 1 else "mixed")
        description = mapping.description
    else:
        entry = BENCHMARKS[name]
        selected = entry.default.merged(spec_filters).merged(kw_filters)
        root = resolve_data_root(data_root)
        try:
            loaded = entry.load(root, selected)
        except LoaderError:
            raise
        except ValueError as exc:  # a selection the data does not hold, e.g. igakuqa:2031
            raise BenchmarkSpecError(f"{spec.strip()}: {exc}") from None
        language, description = entry.language, entry.description
    full_name = spec.strip() + suffix
    try:
        questions = apply_filters(full_name, loaded.questions, selected)
    except ValueError as exc:
        raise BenchmarkSpecError(str(exc)) from None
    return Benchmark(
        name=full_name,
        questions=tuple(questions),
        files=tuple(loaded.files),
        language=language,
        description=description,
        warnings=tuple(loaded.warnings),
        excluded=tuple(loaded.excluded),
    )
