"""One record of a custom file -> one Question (or an exclusion with its reason).

Per record: the id, the question text, the choices (a list field, a list of fields, or
embedded in the text), the answer type (numeric when the record has no choices), what the
question asks for (``selection``: n / all / order), the gold answer (missing or marked as
no official key: excluded, counted and listed), the serial group and its shared context,
images, and the exam facts (block, number, section, points, forbidden choices).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jmedllm.benchmarks.custom.answers import parse_answer_list, parse_number
from jmedllm.benchmarks.custom.embedded import detect_selection, split_embedded, strip_labels
from jmedllm.benchmarks.custom.mapping import Field, Mapping, confined, is_file
from jmedllm.benchmarks.custom.records import describe, get, is_missing
from jmedllm.benchmarks.parsing import LoaderError, source_meta
from jmedllm.schema import SELECTIONS, Question
from jmedllm.text import nfkc, parse_n_select

_JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


@dataclass
class State:
    """What records of one file share: group contexts seen so far, warnings, exclusions."""

    group_context: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    answers: dict[str, tuple[int, Any]] | None = None  # answers_from: id -> (line, answer)
    answered: set[str] = field(default_factory=set)  # ids whose answer row was used


class Excluded(Exception):
    """The record is not an item to score (no official key); its reason is the message."""


def _value(record: Any, key: Field, m: Mapping, line: int, required: bool = True) -> Any:
    value = get(record, key)
    if is_missing(value):
        if required:
            if isinstance(record, list):
                raise LoaderError(m.data, line, f"column {key}", f"missing (the row has {len(record)} columns)")
            raise LoaderError(m.data, line, str(key), "missing")
        return None
    return value


def _text(record: Any, key: Field, m: Mapping, line: int, required: bool = True) -> str | None:
    value = _value(record, key, m, line, required)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise LoaderError(m.data, line, str(key), "empty")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise LoaderError(m.data, line, str(key), f"expected text, got {type(value).__name__} {describe(value)}")
    return str(value)


def _choice_list(record: Any, m: Mapping, line: int) -> list[str] | None:
    """The record's choices from a list field or list of fields; None when it has none."""
    if m.choices is None:
        return None
    if isinstance(m.choices, tuple):
        values = [_value(record, key, m, line, required=not isinstance(record, dict)) for key in m.choices]
        names = [str(k) for k in m.choices]
        # Trailing empty cells are dropped, so one file may mix 4- and 5-choice questions.
        while values and (values[-1] is None or (isinstance(values[-1], str) and not values[-1].strip())):
            values.pop()
        if not values:
            return None
    else:
        values = _value(record, m.choices, m, line, required=False)
        if values is None or values == [] or values == "":
            return None
        if not isinstance(values, list):
            raise LoaderError(m.data, line, str(m.choices), f"expected a list of choices, got {describe(values)}")
        names = [f"{m.choices}[{k}]" for k in range(len(values))]
    choices = []
    for name, value in zip(names, values):
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or not str(value).strip():
            raise LoaderError(m.data, line, name, f"empty or not text: {describe(value)}")
        choices.append(str(value).strip())
    if len(choices) < 2:
        raise LoaderError(m.data, line, str(m.choices), f"{len(choices)} choice(s); at least 2 needed")
    return choices


def _is_no_key(value: Any, m: Mapping) -> bool:
    if value is None or value == [] or (isinstance(value, str) and not value.strip()):
        return True
    return isinstance(value, (str, int)) and not isinstance(value, bool) and nfkc(str(value)).strip() in m.missing_answer


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    return isinstance(value, str) and re.fullmatch(r"-?\d+(?:\.\d+)?", nfkc(value).strip()) is not None


def _images(record: Any, m: Mapping, line: int, state: State) -> tuple[str, ...]:
    if m.images is None:
        return ()
    value = _value(record, m.images, m, line, required=False)
    if value is None or value == "" or value == []:
        return ()
    paths = value if isinstance(value, list) else [value]
    out = []
    for k, raw in enumerate(paths):
        name = str(m.images) if len(paths) == 1 else f"{m.images}[{k}]"
        if not isinstance(raw, str) or not raw.strip():
            raise LoaderError(m.data, line, name, f"expected an image path, got {describe(raw)}")
        path = confined(m.data.parent, raw.strip(), m.allow_outside_paths,
                        lambda msg, name=name: LoaderError(m.data, line, name, msg), root=m.path.parent)
        if not is_file(path):
            state.warnings.append(f"{m.data}:{line}: image {raw.strip()!r} not found ({path})")
        out.append(str(path))
    return tuple(out)


def _block_number(record: Any, qid: str, m: Mapping, line: int) -> tuple[str | None, int | None]:
    block = number = None
    if m.id_pattern is not None:
        found = m.id_pattern.search(qid)
        if found:
            groups = found.groupdict()
            block = groups.get("block")
            number = groups.get("number")
        elif m.block is None:
            raise LoaderError(m.data, line, str(m.id), f"id {qid!r} does not match id_pattern {m.id_pattern.pattern!r}")
    if m.block is not None:
        block = _text(record, m.block, m, line, required=False) or block
    if m.number is not None:
        number = _text(record, m.number, m, line, required=False) or number
    if number is not None:
        digits = nfkc(str(number)).strip()
        if not digits.isdigit():
            raise LoaderError(m.data, line, str(m.number or "id"), f"question number must be an integer, got {number!r}")
        number = int(digits)
    return (nfkc(block).strip().upper() if block else None), number


def _n_select(record: Any, m: Mapping, line: int, text: str) -> int | None:
    if m.n_select is None:
        return None
    value = _value(record, m.n_select, m, line, required=False)
    if value in (None, ""):
        return None
    raw = str(value).strip()
    if isinstance(value, bool) or not raw.isascii() or not raw.isdigit() or int(raw) < 1:
        raise LoaderError(m.data, line, str(m.n_select), f"expected a positive integer, got {value!r}")
    return int(raw)


def question(m: Mapping, line: int, number: int, record: Any, state: State) -> Question:
    """The Question of one record; raises :class:`Excluded` for a record without an official key."""
    path = m.data
    qid = _text(record, m.id, m, line) if m.id is not None else str(number)
    if isinstance(_value(record, m.question, m, line), str) and not _value(record, m.question, m, line).strip():
        # a real export may hold an item whose text is elsewhere (an image, the previous item): kept, said
        text = ""
        state.warnings.append(f"{path}:{line}: {qid}: empty question text")
    else:
        text = _text(record, m.question, m, line)
    assert text is not None and qid is not None
    choices = _choice_list(record, m, line)
    if choices is not None and m.strip_choice_labels:
        stripped = strip_labels(choices)
        if stripped is not None:
            choices = stripped
        else:
            state.warnings.append(f"{path}:{line}: {qid}: choices kept as written (not every choice "
                                  "opens with its own label)")
    written, embedded = text, False
    if choices is None and m.embedded_choices and m.answer_style != "number":
        split = split_embedded(text)
        if split is not None:
            (text, choices), embedded = split, True
    # where the answer stands: this record, or a row of the answers file
    apath, aline, aname = path, line, str(m.answer)
    if m.answers_from is not None and state.answers is not None:
        apath, aname = m.answers_from.data, m.answers_from.answer
        aline, raw_answer = state.answers.get(qid, (None, None))
        if aline is not None:
            state.answered.add(qid)
        if aline is None and m.answer is not None:
            apath, aline, aname = path, line, str(m.answer)
            raw_answer = _value(record, m.answer, m, line, required=False)
    else:
        raw_answer = _value(record, m.answer, m, line, required=False)
    if _is_no_key(raw_answer, m):
        where = ""
        if apath != path:  # the answers file
            where = f"; {apath.name}:{aline}" if aline is not None else f"; no row in {apath.name}"
        if m.on_missing_answer == "error":
            raise LoaderError(apath, aline, aname, f"no answer key for {qid} ({describe(raw_answer)})")
        raise Excluded(f"{qid} ({path.name}:{line}): no official answer key ({describe(raw_answer)}{where})")
    if embedded and m.answer_style == "letters" and _is_number(raw_answer):
        # a number can name no letter: a calculation item whose text happens to end in numbered lines
        text, choices = written, None

    selection = "n"
    if choices:
        if m.selection is not None:
            selection = (_text(record, m.selection, m, line, required=False) or "n").strip().lower()
            if selection not in SELECTIONS:
                raise LoaderError(path, line, str(m.selection), f"expected one of {', '.join(SELECTIONS)}, got {selection!r}")
        else:
            selection = detect_selection(text)
    numeric = None
    order: list[int] | None = None
    answer: set[int] = set()
    if not choices:
        if not _is_number(raw_answer):
            where = f" ({apath.name}:{aline})" if apath != path else ""
            raise LoaderError(path, line, str(m.choices or m.question),
                              f"{qid}: no choices (no list, none by the embedded-choice rule), but the answer "
                              f"{describe(raw_answer)}{where} is not a number")
        numeric = parse_number(raw_answer, apath, aline, aname)
    else:
        style = m.answer_style
        if style == "letters" and isinstance(raw_answer, int) and not isinstance(raw_answer, bool):
            raise LoaderError(apath, aline, aname, f"expected letters, got the number {raw_answer!r} "
                                                   "(set answer_style: index0 or index1)")
        order = parse_answer_list(raw_answer, style, m.answer_separator, choices, apath, aline, aname)
        answer = set(order)
        if selection == "order" and len(order) != len(answer):
            raise LoaderError(apath, aline, aname, f"an ordering answer names a choice twice: {raw_answer!r}")
    n_select = _n_select(record, m, line, text)
    if selection == "all":
        n_select = 0
    elif selection == "order":
        n_select = n_select or parse_n_select(text) or len(order or ())
    elif choices:
        n_select = n_select or parse_n_select(text) or 1
    else:
        n_select = 1

    context_parts = []
    meta: dict[str, Any] = {**source_meta(path, line)}
    if m.group is not None:
        group = _text(record, m.group, m, line, required=False)
        if group is not None:
            meta["group"] = group
            shared = _text(record, m.group_context, m, line, required=False) if m.group_context is not None else None
            if shared is not None:
                state.group_context[group] = shared
            elif group in state.group_context:
                shared = state.group_context[group]
            if shared is not None:
                context_parts.append(shared)
    if m.context is not None:
        own = _text(record, m.context, m, line, required=False)
        if own is not None:
            context_parts.append(own)
    images = _images(record, m, line, state)
    meta["text_only"] = not images
    if m.category is not None:
        category = _text(record, m.category, m, line, required=False)
        if category is not None:
            meta["category"] = category
    for key in m.meta:
        value = _value(record, key, m, line, required=False)
        if value is not None:
            meta[str(key)] = tuple(value) if isinstance(value, list) else value
    if m.answer_pattern is not None:
        meta["answer_pattern"] = m.answer_pattern
    block, qnumber = _block_number(record, qid, m, line) if (m.block or m.number or m.id_pattern) else (None, None)
    if block is not None:
        meta["block"] = block
    if qnumber is not None:
        meta["number"] = qnumber
    if m.exam_rules is not None:
        meta.update(_exam_meta(record, m, line, block, qnumber, choices or []))
    language = m.language or ("ja" if _JAPANESE.search(text) else "en")
    try:
        return Question(
            id=qid,
            benchmark=m.name,
            text=text,
            choices=tuple(choices or ()),
            answer=frozenset(answer),
            n_select=n_select,
            language=language,
            numeric_answer=numeric,
            context="\n\n".join(context_parts) if context_parts else None,
            explanation=_text(record, m.explanation, m, line, required=False) if m.explanation is not None else None,
            meta=meta,
            selection=selection,
            answer_order=tuple(order) if selection == "order" and order else None,
            images=images,
        )
    except ValueError as exc:  # the schema's own checks, e.g. an answer out of range
        raise LoaderError(path, line, None, str(exc)) from None


def _exam_meta(record: Any, m: Mapping, line: int, block: str | None, number: int | None,
               choices: list[str]) -> dict[str, Any]:
    rules = m.exam_rules
    assert rules is not None
    section = rules.section_for_block(block)
    if section is None:
        raise LoaderError(m.data, line, str(m.block or "id"),
                          f"block {block!r} belongs to no section of the exam rules "
                          "(" + "; ".join(s.name + ": " + ",".join(s.blocks) for s in rules.sections) + ")")
    points = None
    if rules.points_field is not None:
        raw = _value(record, rules.points_field, m, line, required=False)
        if raw not in (None, ""):
            text = nfkc(str(raw)).strip()
            if isinstance(raw, bool) or not (text.isdigit() or re.fullmatch(r"\d+\.0+", text)):
                raise LoaderError(m.data, line, rules.points_field, f"expected a non-negative integer, got {raw!r}")
            points = int(float(text))
    if points is None:
        points = rules.points_for(block, number)
    if points is None:
        raise LoaderError(m.data, line, rules.points_field or "exam_rules",
                          f"no points for this item (block {block!r}, number {number!r}): "
                          "add a points rule that covers it, or a default {points: N}")
    meta: dict[str, Any] = {"exam": rules.exam, "section": section.name, "points": points}
    if rules.kinki_field is not None and choices:
        raw = _value(record, rules.kinki_field, m, line, required=False)
        kinki: list[int] = []
        if raw not in (None, "", []) and not _is_no_key(raw, m):
            kinki = parse_answer_list(raw, m.answer_style, m.answer_separator, choices, m.data, line, rules.kinki_field)
        meta["kinki"] = tuple(sorted(set(kinki)))
    return meta
