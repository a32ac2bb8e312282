"""IgakuQA (jungokasai/IgakuQA): the Japanese national medical licensing exam, 112th-116th (2018-2022).

Layout: ``igakuqa/data/<year>/<exam>-<block>.jsonl`` (Japanese originals),
``..._translate.jsonl`` (English machine translation) and ``..._metadata.jsonl``
(category, forbidden choices ``kinki`` with their ``reason``, human accuracy, per-choice
answer breakdown), joined on ``problem_id``.

Quirks handled here (each has a test): translation rows that spell the key ``asnwer``;
``kinki`` entries of concatenated letters (``["cde"]``), with stray spaces (``" e"``) or in
full-width letters (``"ｂ"``);
``points`` as strings (``"0"`` marks an item excluded from scoring); 6 or 8 choices;
an answer ``"a or d"`` (112B30: either is accepted; kept in ``meta["answer_note"]``);
12 numeric-answer items without choices, whose gold is written either with or without
the decimal point of the answer template (``解答：①.②`` with ``"21"`` means 2.1).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from jmedllm.benchmarks.parsing import (
    LoaderError,
    field,
    float_or_none,
    int_field,
    letters_to_indices,
    read_jsonl,
    source_meta,
    string_list,
)
from jmedllm.benchmarks.record import Loaded
from jmedllm.schema import LETTERS, Question
from jmedllm.text import nfkc, parse_n_select

# The one place that says which block belongs to which section of the exam:
# B and E are 必修 (compulsory), A, C, D and F are 一般 + 臨床 (general + clinical).
SECTIONS: dict[str, str] = {
    "A": "ippan_rinsho",
    "B": "hisshu",
    "C": "ippan_rinsho",
    "D": "ippan_rinsho",
    "E": "hisshu",
    "F": "ippan_rinsho",
}

# Section maxima published with each exam (sum of ``points``; items worth "0" were excluded
# from scoring). `jmedllm data check` verifies that the loaded points add up to these, and the
# exam rules (jmedllm.scoring.exam) judge against them. The 119th exam's source has no points.
OFFICIAL_SECTION_MAXIMA: dict[int, dict[str, int]] = {
    112: {"hisshu": 200, "ippan_rinsho": 299},
    113: {"hisshu": 200, "ippan_rinsho": 296},
    114: {"hisshu": 197, "ippan_rinsho": 299},
    115: {"hisshu": 200, "ippan_rinsho": 300},
    116: {"hisshu": 197, "ippan_rinsho": 297},
    118: {"hisshu": 200, "ippan_rinsho": 300},  # MHLW announcement (see scoring.exam.PASS_LINES)
    119: {"hisshu": 200, "ippan_rinsho": 300},
}

EXAM_YEAR_OFFSET = 1906  # the 112th exam was held in 2018
_FILE = re.compile(r"(?P<exam>\d{3})-(?P<block>[A-Z])\.jsonl")
_SLOTS = "①②③④⑤⑥⑦⑧⑨"


def load(
    data_root: Path,
    language: str = "ja",
    years: tuple[int, ...] | None = None,
    blocks: tuple[str, ...] | None = None,
) -> Loaded:
    """Questions of the chosen years and blocks, in Japanese (``"ja"``) or English (``"en"``).

    English items keep the Japanese ids, gold answers and metadata; their ``n_select`` is
    read from the English text, else from the Japanese original, else 1.
    """
    if language not in ("ja", "en"):
        raise ValueError(f"IgakuQA language must be 'ja' or 'en', got {language!r}")
    out = Loaded()
    for path in _question_files(data_root / "igakuqa" / "data", years, blocks):
        m = _FILE.fullmatch(path.name)
        assert m is not None
        exam, block, year = int(m["exam"]), m["block"], int(path.parent.name)
        if year - exam != EXAM_YEAR_OFFSET:
            raise LoaderError(path, None, None, f"exam {exam} is not held in {year} (the {exam}th exam "
                              f"was in {exam + EXAM_YEAR_OFFSET}): misplaced file?")
        out.files.append(path)
        originals = [
            _question(path, line, record, exam, year, block, data_root, out.warnings)
            for line, record in read_jsonl(path)
        ]
        metadata = _read_metadata(path.with_name(f"{path.stem}_metadata.jsonl"), out)
        for q in originals:
            if q.id not in metadata:
                out.warnings.append(f"{q.meta['source_file']}:{q.meta['source_line']}: {q.id}: no metadata row "
                                    "(category, kinki, human accuracy unknown)")
        for pid in sorted(set(metadata) - {q.id for q in originals}):
            out.warnings.append(f"{path.stem}_metadata.jsonl: {pid}: metadata row for an unknown question")
        originals = [_with_metadata(q, metadata.get(q.id), out.warnings) for q in originals]
        if language == "ja":
            out.questions.extend(originals)
        else:
            out.questions.extend(_translations(path.with_name(f"{path.stem}_translate.jsonl"), originals,
                                               out, data_root))
    if blocks is None:
        mark_incomplete_exams(out)
    return out


#: items per exam from the 112th on (A 75, B 50, C 75, D 75, E 50, F 75), as the sources hold them
EXAM_ITEMS = 400


def mark_incomplete_exams(out: Loaded, expected: int = EXAM_ITEMS) -> None:
    """An exam of which the data root holds fewer than ``expected`` items (a block missing)
    cannot be judged as the exam: each of its items gets ``meta["exam_incomplete"]`` ("75 of
    400 items found"), which `data check` reports as an error and the eval summary as
    "no verdict", and a warning names it."""
    counts: dict[int, int] = {}
    for q in out.questions:
        counts[q.meta["exam"]] = counts.get(q.meta["exam"], 0) + 1
    short = {exam: n for exam, n in counts.items() if n < expected}
    for exam, n in sorted(short.items()):
        out.warnings.append(f"exam {exam}: {n} of {expected} items found in the data root; no exam verdict")
    if short:
        out.questions[:] = [replace(q, meta={**q.meta, "exam_incomplete": f"{short[q.meta['exam']]} of {expected} "
                                             "items found"}) if q.meta["exam"] in short else q
                            for q in out.questions]


def _question_files(folder: Path, years: tuple[int, ...] | None, blocks: tuple[str, ...] | None) -> list[Path]:
    if not folder.is_dir():
        raise LoaderError(folder, None, None, "IgakuQA folder not found (expected <data-root>/igakuqa/data/<year>/)")
    available = sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())
    if years is not None:
        missing = sorted(set(years) - set(available))
        if missing:
            raise ValueError(f"IgakuQA has no year {', '.join(map(str, missing))} under {folder} "
                             f"(available: {', '.join(map(str, available))})")
    files = []
    for year in available:
        if years is not None and year not in years:
            continue
        for path in sorted((folder / str(year)).iterdir()):
            m = _FILE.fullmatch(path.name)
            if m and (blocks is None or m["block"] in blocks):
                files.append(path)
    return files


def _question(path: Path, line: int, record: dict[str, Any], exam: int, year: int, block: str,
              data_root: Path, warnings: list[str]) -> Question:
    pid = field(record, "problem_id", path, line)
    if not re.fullmatch(rf"{exam}{block}\d+", pid):
        raise LoaderError(path, line, "problem_id", f"{pid!r} does not belong to exam {exam} block {block}")
    text = field(record, "problem_text", path, line)
    choices = string_list(record, "choices", path, line)
    answers = string_list(record, "answer", path, line)
    meta: dict[str, Any] = {
        "exam": exam,
        "year": year,
        "block": block,
        "section": SECTIONS[block],
        "points": int_field(field(record, "points", path, line, (str, int, float)), path, line, "points"),
        "text_only": field(record, "text_only", path, line, bool),
        **source_meta(path, line, data_root),
    }
    numeric = None
    answer: set[int] = set()
    if choices:
        answer, note = answer_indices(answers, len(choices), path, line, "answer")
        if note:
            meta["answer_note"] = note
    else:
        if len(answers) != 1 or not answers[0].strip():
            raise LoaderError(path, line, "answer", f"a question without choices needs one numeric answer, got {answers!r}")
        numeric, template, fitted = numeric_gold(answers[0].strip(), text)
        meta["numeric_answer_raw"] = answers[0].strip()
        if template is not None:
            meta["answer_template"] = template
            if not fitted:
                warnings.append(f"{path}:{line}: {pid}: numeric answer {numeric!r} does not fit the answer "
                                f"template {template!r}; kept as written")
    return Question(
        id=pid,
        benchmark="igakuqa",
        text=text,
        choices=tuple(choices),
        answer=frozenset(answer),
        n_select=parse_n_select(text) or 1,
        language="ja",
        numeric_answer=numeric,
        meta=meta,
    )


def answer_indices(answers: list[str], n_choices: int, path: Path, line: int, name: str) -> tuple[set[int], str | None]:
    """Gold letters (``["a", "c"]``) as indices, and the raw text of an ``"a or d"`` key.

    ``"a or d"`` (112B30) means either choice is accepted: both become gold, the question
    still asks for one, and the note keeps the original wording.
    """
    indices: set[int] = set()
    note = None
    for letters in answers:
        if re.fullmatch(r"\s*[a-z](?:\s+or\s+[a-z])+\s*", letters):
            note = letters.strip()
            letters = re.sub(r"\s+or\s+", "", note)
        indices |= letters_to_indices(letters, n_choices, path, line, name)
    if not indices:
        raise LoaderError(path, line, name, "no answer letter")
    return indices, note


def numeric_gold(raw: str, text: str) -> tuple[str, str | None, bool]:
    """The numeric gold value with the decimal point the answer template asks for.

    The exam writes a numeric answer as digit slots, e.g. ``解答：①.②g/日``; IgakuQA keys
    sometimes give the value (``"1.2"``), sometimes only the slot digits (``"21"`` for 2.1,
    ``"04"`` for 0.4, ``"100"`` in ``①②.③`` for 10.0, ``"130"`` in ``1, ①②③ kcal`` for 1130).
    Returns ``(value, template, fitted)``: without a template, or when the key does not fit
    it, the raw key is returned and ``fitted`` tells which.
    """
    m = re.search(r"解答\s*[:：]\s*(.+?)\s*$", text)
    if not m:
        return raw, None, True
    template = m.group(1)
    span = re.search(r"(\d+\s*,\s*)?[①-⑨](?:\s*[.．]?\s*[①-⑨])*", template)
    digits = raw.replace(".", "")
    if span is None:
        return raw, template, True  # a template without digit slots says nothing about the key
    slots = [c for c in span.group(0) if c in _SLOTS]
    if not digits.isdigit() or len(slots) != len(digits):
        return raw, template, False
    it = iter(digits)
    filled = "".join(
        next(it) if c in _SLOTS else "." if c in ".．" else c
        for c in span.group(0)
        if not c.isspace()
    )
    value = filled.replace(",", "")
    if "." in raw and value != raw:
        return raw, template, False
    return value, template, True


def parse_kinki(entries: list[str], n_choices: int, path: Path, line: int) -> tuple[tuple[int, ...], list[str]]:
    """Forbidden choices as sorted 0-based indices, and notes on tolerated quirks.

    Accepts ``["c"]``, concatenated letters ``["cde"]``, stray spaces ``["d", " e"]`` and
    full-width letters ``["ｂ"]``.
    """
    indices: set[int] = set()
    notes = []
    for entry in entries:
        letters = nfkc(entry).strip()
        if letters != entry.strip():
            notes.append(f"kinki entry {entry!r} is written in full-width letters")
        if letters != nfkc(entry):
            notes.append(f"kinki entry {entry!r} has surrounding spaces")
        if len(letters) > 1:
            notes.append(f"kinki entry {entry!r} concatenates letters: read as {', '.join(letters)}")
        for letter in letters:
            index = LETTERS.find(letter.lower())
            if index < 0 or index >= n_choices:
                raise LoaderError(path, line, "kinki", f"unknown choice letter {letter!r} (valid: {LETTERS[:n_choices]})")
            indices.add(index)
    return tuple(sorted(indices)), notes


def _read_metadata(path: Path, out: Loaded) -> dict[str, tuple[Path, int, dict[str, Any]]]:
    if not path.exists():
        out.warnings.append(f"{path}: metadata file missing (category, kinki, human accuracy unknown)")
        return {}
    out.files.append(path)
    rows = {}
    for line, record in read_jsonl(path):
        pid = field(record, "problem_id", path, line)
        if pid in rows:
            raise LoaderError(path, line, "problem_id", f"{pid} appears twice (first at line {rows[pid][1]})")
        rows[pid] = (path, line, record)
    return rows


def _with_metadata(q: Question, row: tuple[Path, int, dict[str, Any]] | None, warnings: list[str]) -> Question:
    if row is None:
        return q
    path, line, record = row
    meta = dict(q.meta)
    category = field(record, "category", path, line)
    if category:
        meta["category"] = category
    kinki, notes = parse_kinki(string_list(record, "kinki", path, line), len(q.choices), path, line)
    meta["kinki"] = kinki
    warnings.extend(f"{path}:{line}: {q.id}: {note}" for note in notes)
    reason = record.get("reason")
    if isinstance(reason, str) and reason.strip():
        meta["kinki_reason"] = reason
    accuracy = float_or_none(record.get("human_accuracy"), path, line, "human_accuracy")
    if accuracy is not None:
        meta["human_accuracy"] = accuracy
    breakdown = record.get("breakdown") or []
    if not isinstance(breakdown, list):
        raise LoaderError(path, line, "breakdown", f"expected a list, got {breakdown!r}")
    if breakdown:
        values = tuple(float_or_none(v, path, line, "breakdown") for v in breakdown)
        if len(values) != len(q.choices) or any(v is None for v in values):
            raise LoaderError(path, line, "breakdown",
                              f"{len(values)} values for {len(q.choices)} choices: {breakdown!r}")
        meta["breakdown"] = values
    return replace(q, meta=meta)


def _translations(path: Path, originals: list[Question], out: Loaded, data_root: Path) -> list[Question]:
    """English versions of ``originals`` (same ids, gold and metadata)."""
    out.files.append(path)
    rows: dict[str, tuple[int, dict[str, Any]]] = {}
    for line, record in read_jsonl(path):
        pid = field(record, "problem_id", path, line)
        if pid in rows:
            raise LoaderError(path, line, "problem_id", f"{pid} appears twice (first at line {rows[pid][0]})")
        rows[pid] = (line, record)
    questions = []
    for q in originals:
        if q.id not in rows:
            out.warnings.append(f"{path}: {q.id}: no English translation; left out of igakuqa-en")
            continue
        line, record = rows[q.id]
        text = field(record, "problem_text_en", path, line)
        choices = string_list(record, "choices_en", path, line)
        if len(choices) != len(q.choices):
            raise LoaderError(path, line, "choices_en",
                              f"{len(choices)} choices, the Japanese original {q.id} has {len(q.choices)}")
        keys = [k for k in ("answer", "asnwer") if k in record]  # the source misspells some keys
        if not keys:
            raise LoaderError(path, line, "answer", "missing (nor 'asnwer')")
        given = {k: string_list(record, k, path, line) for k in keys}
        if len({tuple(v) for v in given.values()}) > 1:
            raise LoaderError(path, line, "asnwer", f"disagrees with 'answer': {given}")
        answer = next(iter(given.values()))
        if q.choices:
            same = answer_indices(answer, len(choices), path, line, keys[0])[0] == q.answer
        else:
            same = [a.strip() for a in answer] == [q.meta["numeric_answer_raw"]]
        if not same:
            raise LoaderError(path, line, keys[0], f"{answer} differs from the Japanese original {q.id}'s gold "
                              f"{q.answer_letters or q.meta.get('numeric_answer_raw')!r}")
        meta = {**q.meta, **source_meta(path, line, data_root)}
        questions.append(Question(
            id=q.id,
            benchmark="igakuqa-en",
            text=text,
            choices=tuple(choices),
            answer=q.answer,
            n_select=parse_n_select(text) or q.n_select,  # English, else the original's (itself else 1)
            language="en",
            numeric_answer=q.numeric_answer,
            meta=meta,
        ))
    return questions
