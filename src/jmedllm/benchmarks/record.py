"""The Benchmark record and the filters that select questions from it."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Iterable

from jmedllm.schema import Question


@dataclass(frozen=True)
class Benchmark:
    """A loaded benchmark: its questions in source order and every file read to build them.

    ``name`` is the spec it was loaded from (e.g. ``"igakuqa:2022:A"``), so that a run
    records exactly what it evaluated; ``files`` lets the runner hash the inputs.
    ``warnings`` lists quirks of the source that the loader tolerated (each naming file and
    line), so that nothing is skipped or repaired silently; ``excluded`` lists the records
    left out on purpose (e.g. no official answer key), each with its id, place and reason.
    """

    name: str
    questions: tuple[Question, ...]
    files: tuple[Path, ...]
    language: str
    description: str
    warnings: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "questions", tuple(self.questions))
        object.__setattr__(self, "files", tuple(self.files))
        object.__setattr__(self, "warnings", tuple(self.warnings))
        object.__setattr__(self, "excluded", tuple(self.excluded))
        seen: dict[str, Question] = {}
        for q in self.questions:
            if q.id in seen:
                first, again = seen[q.id].meta, q.meta
                raise ValueError(
                    f"{self.name}: duplicate question id {q.id!r} "
                    f"({first.get('source_file')}:{first.get('source_line')} and "
                    f"{again.get('source_file')}:{again.get('source_line')})"
                )
            seen[q.id] = q

    def __len__(self) -> int:
        return len(self.questions)

    def __iter__(self):
        return iter(self.questions)


@dataclass(frozen=True)
class Filters:
    """Which questions to keep; ``None`` means no restriction.

    ``years``, ``exams``, ``blocks``, ``subjects`` and ``split`` match ``meta`` keys of the
    same (singular) name; ``text_only`` matches ``meta["text_only"]``; ``n_choices`` and
    ``n_answers`` match ``len(choices)`` (0 for numeric items) and ``len(answer)``.
    ``limit`` keeps the first N questions (in source order) after the other filters.
    ``split="all"`` lifts a benchmark's default split.
    """

    years: tuple[int, ...] | None = None
    exams: tuple[int, ...] | None = None
    blocks: tuple[str, ...] | None = None
    subjects: tuple[str, ...] | None = None
    split: str | None = None
    text_only: bool | None = None
    n_choices: tuple[int, ...] | None = None
    n_answers: tuple[int, ...] | None = None
    limit: int | None = None

    def merged(self, other: "Filters") -> "Filters":
        """These filters with every field that ``other`` sets taken from ``other``."""
        changes = {f.name: getattr(other, f.name) for f in fields(other) if getattr(other, f.name) is not None}
        return replace(self, **changes)

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))


# filter field -> meta key it reads
_META_KEYS = {"years": "year", "exams": "exam", "blocks": "block", "subjects": "subject"}


def apply_filters(name: str, questions: Iterable[Question], filters: Filters) -> list[Question]:
    """Keep the questions that pass every filter; a filter on a key no question has is an error."""
    kept = list(questions)
    for attr, key in _META_KEYS.items():
        wanted = getattr(filters, attr)
        if wanted is None:
            continue
        present = {q.meta.get(key) for q in kept} - {None}
        if kept and not present:
            raise ValueError(f"{name}: cannot filter by {attr}: its questions have no {key!r}")
        missing = sorted(set(wanted) - present, key=str)
        if missing:
            raise ValueError(f"{name}: no questions with {key} {', '.join(map(str, missing))} "
                             f"(available: {', '.join(map(str, sorted(present, key=str)))})")
        kept = [q for q in kept if q.meta.get(key) in wanted]
    if filters.split is not None and filters.split != "all":
        splits = {q.meta.get("split") for q in kept}
        if filters.split not in splits:
            raise ValueError(f"{name}: no split {filters.split!r} (available: {', '.join(sorted(map(str, splits)))}, all)")
        kept = [q for q in kept if q.meta.get("split") == filters.split]
    if filters.text_only is not None:
        kept = [q for q in kept if bool(q.meta.get("text_only", True)) == filters.text_only]
    if filters.n_choices is not None:
        kept = [q for q in kept if len(q.choices) in filters.n_choices]
    if filters.n_answers is not None:
        kept = [q for q in kept if len(q.answer) in filters.n_answers]
    if filters.limit is not None:
        kept = kept[: filters.limit]
    return kept


def parse_filter_value(key: str, value: str) -> Any:
    """Turn ``value`` written on a command line or in a spec into the type of ``Filters.key``.

    ``years=2018-2020`` or ``2018,2020``; ``blocks=A,B`` or ``BE``; ``text_only=true``;
    ``n_choices=5``; ``n_answers=2,3``; ``limit=10``; ``subjects=anatomy,virology``; ``split=test``.
    """
    names = {f.name for f in fields(Filters)}
    if key not in names:
        raise ValueError(f"unknown filter {key!r} (valid: {', '.join(sorted(names))})")
    value = value.strip()
    try:
        if key in ("years", "exams", "n_choices", "n_answers"):
            return tuple(_int_list(value))
        if key == "blocks":
            parts = value.split(",") if "," in value else list(value)
            return tuple(p.strip().upper() for p in parts if p.strip())
        if key == "subjects":
            return tuple(p.strip() for p in value.split(",") if p.strip())
        if key == "split":
            return value
        if key == "text_only":
            lowered = value.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if key == "limit":
            n = int(value)
            if n < 0:
                raise ValueError("must be >= 0")
            return n
    except ValueError as exc:
        raise ValueError(f"bad value {value!r} for filter {key!r}: {exc}") from None
    raise AssertionError(key)  # pragma: no cover


def _int_list(value: str) -> list[int]:
    """'2018-2020' -> [2018, 2019, 2020]; '1,2' -> [1, 2]."""
    out: list[int] = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part[1:]:
            lo, hi = part.split("-", 1)
            a, b = int(lo), int(hi)
            if b < a:
                raise ValueError(f"empty range {part}")
            out.extend(range(a, b + 1))
        else:
            out.append(int(part))
    if not out:
        raise ValueError("no values")
    return out


@dataclass
class Loaded:
    """What one loader returns: questions in source order, files read, tolerated quirks,
    records excluded on purpose (with their reasons)."""

    questions: list[Question] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
