"""YakugakuQA (EQUES-Inc/pharma-LLM-eval): the Japanese national pharmacist exam, 97th-109th (2012-2024).

Layout: ``yakugakuqa/data/<year>/<exam>-<block>.jsonl`` (blocks A-F, numbered from 1 within
each block, ids like ``097A001``), ``<exam>.jsonl`` (the same 345 questions in one file,
numbered 1-345: not read, to avoid counting them twice) and ``metadata_<exam>.jsonl``
(``category`` and the examiners' ``note``, keyed by the exam-wide number, e.g. ``097091``).

Answers are option numbers ``"1"``..``"5"`` (several for "2つ選べ"). Quirks handled here:
- notes inside the answer: ``"2（いずれか一つを選択で正解とする）"`` (any one of the listed
  keys is accepted), ``"解なし"`` (no correct choice: the exam gave no key; ``answer`` is
  empty and ``meta["no_answer"]`` is True), a note split across list items by a comma;
  the text is kept in ``meta["answer_note"]``;
- 396 items whose ``choices`` is the string ``"IMAGES"`` (the choices are pictures, not
  distributed): placeholders ``（画像の選択肢1）``… stand in, as many as the larger of 5 and
  the highest key, and ``meta["image_choices"]`` is True (these are never ``text_only``);
- metadata files for 2012-2020 repeat every row four times: duplicates are dropped after
  checking that they agree;
- ``comment`` (a Japanese explanation, empty for 237 items) becomes ``explanation``.

``meta["section"]`` follows the exam's structure by question number: 1-90 ``hissu``
(必須), 91-195 ``riron`` (理論), 196-345 ``jissen`` (実践).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from jmedllm.benchmarks.parsing import LoaderError, field, int_field, read_jsonl, source_meta, string_list
from jmedllm.benchmarks.record import Loaded
from jmedllm.schema import Question
from jmedllm.text import parse_n_select

BLOCKS = "ABCDEF"
EXAM_YEAR_OFFSET = 1915  # the 97th exam was held in 2012
IMAGE_CHOICES = "IMAGES"
_FILE = re.compile(r"(?P<exam>\d{3})-(?P<block>[A-F])\.jsonl")


def section_of(number: int) -> str:
    """The exam section of question ``number`` (1-345)."""
    if number <= 90:
        return "hissu"
    if number <= 195:
        return "riron"
    return "jissen"


def load(data_root: Path, years: tuple[int, ...] | None = None) -> Loaded:
    folder = data_root / "yakugakuqa" / "data"
    if not folder.is_dir():
        raise LoaderError(folder, None, None, "YakugakuQA folder not found (expected <data-root>/yakugakuqa/data/<year>/)")
    available = sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())
    if years is not None and set(years) - set(available):
        missing = sorted(set(years) - set(available))
        raise ValueError(f"YakugakuQA has no year {', '.join(map(str, missing))} under {folder} "
                         f"(available: {', '.join(map(str, available))})")
    out = Loaded()
    for year in available:
        if years is None or year in years:
            _load_year(folder / str(year), year, data_root, out)
    return out


def _load_year(folder: Path, year: int, data_root: Path, out: Loaded) -> None:
    exam = year - EXAM_YEAR_OFFSET
    files = {m["block"]: p for p in sorted(folder.iterdir()) if (m := _FILE.fullmatch(p.name))}
    if sorted(files) != list(BLOCKS):
        raise LoaderError(folder, None, None, f"expected block files {exam:03d}-A.jsonl … {exam:03d}-F.jsonl, "
                          f"found blocks {''.join(sorted(files)) or 'none'}")
    metadata = _read_metadata(folder / f"metadata_{exam:03d}.jsonl", data_root, out)
    offset = 0  # questions are numbered 1-345 across the blocks, in block order
    for block in BLOCKS:
        path = files[block]
        out.files.append(path)
        count = 0
        for line, record in read_jsonl(path):
            count += 1
            q = _question(path, line, record, exam, year, block, offset + count, metadata, data_root, out.warnings)
            out.questions.append(q)
        offset += count


def _read_metadata(path: Path, data_root: Path, out: Loaded) -> dict[str, dict[str, Any]]:
    if not path.exists():
        out.warnings.append(f"{path}: metadata file missing (category and examiners' notes unknown)")
        return {}
    out.files.append(path)
    rows: dict[str, tuple[int, dict[str, Any]]] = {}
    repeats = 0
    for line, record in read_jsonl(path):
        pid = field(record, "problem_id", path, line)
        if pid in rows:
            first_line, first = rows[pid]
            if first != record:
                raise LoaderError(path, line, "problem_id",
                                  f"{pid} repeated with different content than at line {first_line}: {first} vs {record}")
            repeats += 1
            continue
        rows[pid] = (line, record)
    if repeats:
        out.warnings.append(f"{path}: {repeats} repeated rows (identical) dropped; {len(rows)} kept")
    return {pid: record for pid, (_, record) in rows.items()}


def parse_answer(items: list[str], path: Path, line: int) -> tuple[list[int], str | None]:
    """Option numbers (1-based, as written) and the note written with them, if any.

    ``["1", "3"]`` -> ([1, 3], None); ``["2", "4", "5（いずれか2つを選択で正解とする）"]`` ->
    ([2, 4, 5], that text); ``["解なし"]`` -> ([], "解なし"); a note split by commas across
    items is joined back.
    """
    raw = ",".join(item.strip() for item in items)
    m = re.fullmatch(r"([^（(]*)(?:[（(](.*)[）)])?", raw, re.S)
    if not m or not raw:
        raise LoaderError(path, line, "answer", f"cannot read {items!r}")
    keys = m.group(1).strip(" ,、")
    note = raw if raw != keys else None
    if keys.startswith("解なし"):
        return [], raw
    numbers = []
    for part in re.split(r"[,、\s]+", keys):
        if not part.isdigit():
            raise LoaderError(path, line, "answer", f"{part!r} is not an option number (in {items!r})")
        numbers.append(int(part))
    return numbers, note


def _question(path: Path, line: int, record: dict[str, Any], exam: int, year: int, block: str, number: int,
              metadata: dict[str, dict[str, Any]], data_root: Path, warnings: list[str]) -> Question:
    pid = field(record, "problem_id", path, line)
    if not re.fullmatch(rf"{exam:03d}{block}\d+", pid):
        raise LoaderError(path, line, "problem_id", f"{pid!r} does not belong to exam {exam} block {block}")
    text = field(record, "problem_text", path, line)
    numbers, note = parse_answer(string_list(record, "answer", path, line), path, line)
    meta: dict[str, Any] = {
        "exam": exam,
        "year": year,
        "block": block,
        "number": number,
        "section": section_of(number),
        "points": int_field(field(record, "points", path, line, (str, int, float)), path, line, "points"),
        "text_only": field(record, "text_only", path, line, bool),
        **source_meta(path, line, data_root),
    }
    raw_choices = field(record, "choices", path, line, (list, str))
    if raw_choices == IMAGE_CHOICES:
        choices = [f"（画像の選択肢{k}）" for k in range(1, max([5, *numbers]) + 1)]
        meta["image_choices"] = True
        meta["text_only"] = False
    elif isinstance(raw_choices, str):
        raise LoaderError(path, line, "choices", f"expected a list (or {IMAGE_CHOICES!r}), got {raw_choices!r}")
    else:
        choices = string_list(record, "choices", path, line)
    bad = [n for n in numbers if not 1 <= n <= len(choices)]
    if bad:
        raise LoaderError(path, line, "answer", f"option number(s) {bad} out of range 1..{len(choices)}")
    if note is not None:
        meta["answer_note"] = note
    if not numbers:
        meta["no_answer"] = True
    row = metadata.get(f"{exam:03d}{number:03d}")
    if row is None:
        if metadata:
            warnings.append(f"{path}:{line}: {pid}: no metadata row {exam:03d}{number:03d}")
    else:
        if isinstance(row.get("category"), str) and row["category"].strip():
            meta["category"] = row["category"]
        if isinstance(row.get("note"), str) and row["note"].strip():
            meta["note"] = row["note"]
    comment = record.get("comment")
    return Question(
        id=pid,
        benchmark="yakugakuqa",
        text=text,
        choices=tuple(choices),
        answer=frozenset(n - 1 for n in numbers),
        n_select=parse_n_select(text) or 1,
        language="ja",
        explanation=comment if isinstance(comment, str) and comment.strip() else None,
        meta=meta,
    )
