"""Your own benchmark: a JSONL, JSON-array or CSV file plus a small YAML mapping
(see docs/custom-benchmarks.md).

The mapping names the data file (relative to the mapping, inside its folder), its format,
and which field holds the id, the question, the choices (a list, a list of fields, or
embedded in the question text), the answer (and how answers are written), and optionally
serial groups, images, exam blocks and numbers, and the exam's rules (points, sections,
pass lines, forbidden choices). Every error names the file, the line and the field.

Modules: ``mapping`` (the keys and their checks), ``records`` (reading files, dotted
paths), ``embedded`` (choices inside the question text; select-all and ordering
questions), ``answers`` (gold answers), ``build`` (one record -> one Question).
"""

from __future__ import annotations

from pathlib import Path

from jmedllm.benchmarks.custom.answers import parse_answer_list, parse_answers
from jmedllm.benchmarks.custom.build import Excluded, State, question
from jmedllm.benchmarks.custom.embedded import detect_selection, split_embedded
from jmedllm.benchmarks.custom.mapping import ANSWER_STYLES, FORMATS, MAPPING_KEYS, Mapping, read_mapping
from jmedllm.benchmarks.custom.records import answer_table, records
from jmedllm.benchmarks.parsing import LoaderError
from jmedllm.benchmarks.record import Loaded


def load(mapping_path: Path, *, allow_outside_paths: bool = False) -> tuple[Loaded, Mapping]:
    """Questions described by the mapping at ``mapping_path``, and the mapping itself.

    Records without an official answer key are excluded (``on_missing_answer: exclude``,
    the default) and listed in ``Loaded.excluded``; with exam rules, each section's maximum
    is the points of the items loaded here (before any filter), unless the rules declare it.
    """
    mapping = read_mapping(Path(mapping_path), allow_outside_paths=allow_outside_paths)
    out = Loaded(files=[mapping.path, mapping.data])
    state = State()
    if mapping.answers_from is not None:
        state.answers = answer_table(mapping.answers_from)
        out.files.append(mapping.answers_from.data)
    seen: dict[str, int] = {}
    for number, (line, record) in enumerate(records(mapping), start=1):
        try:
            q = question(mapping, line, number, record, state)
        except Excluded as exc:
            out.excluded.append(str(exc))
            continue
        if q.id in seen:
            raise LoaderError(mapping.data, line, str(mapping.id), f"duplicate id {q.id!r} (first at line {seen[q.id]})")
        seen[q.id] = line
        out.questions.append(q)
    if not out.questions:
        what = f" ({len(out.excluded)} record(s) without an answer key)" if out.excluded else ""
        raise LoaderError(mapping.data, None, None, f"no questions{what}")
    out.warnings.extend(state.warnings)
    if state.answers is not None:
        source = mapping.answers_from
        assert source is not None
        for qid in sorted(set(state.answers) - state.answered - {q.id for q in out.questions}):
            if not any(e.startswith(f"{qid} (") for e in out.excluded):
                out.warnings.append(f"{source.data}:{state.answers[qid][0]}: answer for an unknown id {qid!r}")
    if mapping.exam_rules is not None:
        maxima: dict[str, int] = {}
        for q in out.questions:
            maxima[q.meta["section"]] = maxima.get(q.meta["section"], 0) + q.meta["points"]
        rules = mapping.exam_rules.with_maxima(maxima)
        for q in out.questions:
            q.meta["exam_rules"] = rules  # type: ignore[index]  # meta is the dict built above
    return out, mapping


__all__ = [
    "ANSWER_STYLES",
    "FORMATS",
    "MAPPING_KEYS",
    "Mapping",
    "detect_selection",
    "load",
    "parse_answer_list",
    "parse_answers",
    "read_mapping",
    "split_embedded",
]
