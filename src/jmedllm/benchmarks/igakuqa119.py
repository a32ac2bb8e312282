"""IgakuQA119 (docto-rin/IgakuQA119): the 119th Japanese national medical licensing exam (2025).

Layout: ``igakuqa119/questions/119<block>_json.json`` (a JSON array of ``number``,
``question``, ``choices``, ``has_image``) and ``igakuqa119/results/correct_answers.csv``
(``問題番号,解答``: letter strings such as ``ce``, or a number for numeric items).

Quirks handled here: choices carry an ``a. `` prefix (once without the space); three items
(119A22, 119C5, 119C19) have two choices merged into one, split back (see ``_MERGED_CHOICES``); two items
(119E45, 119E48) have an empty choice list and their choices written at the end of the
question (``… a「…」 b「…」 …`` / ``… aアトロピン bジアゼパム Cフロセミド …``), recovered
from the text and marked ``meta["choices_from_text"]``. The source gives no points, so
``meta`` has no ``points`` (unlike IgakuQA 2018-2022).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from jmedllm.benchmarks.igakuqa import SECTIONS, mark_incomplete_exams
from jmedllm.benchmarks.parsing import (
    LoaderError,
    field,
    letters_to_indices,
    read_csv,
    read_json_items,
    source_meta,
    string_list,
)
from jmedllm.benchmarks.record import Loaded
from jmedllm.schema import LETTERS, Question
from jmedllm.text import parse_n_select

EXAM = 119
YEAR = 2025
_FILE = re.compile(r"119(?P<block>[A-Z])_json\.json")

# Three source choices swallow the next one (an OCR slip: the label became "d", "0" or
# vanished), leaving four labelled a, b, d, e. Each is split back into the two labelled
# choices it came from — only when the source text is exactly this, so a corrected
# upstream file is read as it is — and the item is marked ``meta["choices_repaired"]``.
_MERGED_CHOICES: dict[tuple[str, str], tuple[str, str]] = {
    ("119A22", "d. 全身性強皮症d結節性多発動脈炎"): ("c. 全身性強皮症", "d. 結節性多発動脈炎"),
    ("119C5", "d. 心理的虐待ネグレクト"): ("d. 心理的虐待", "e. ネグレクト"),
    ("119C19", "b. 児童虐待に係る通告0人工妊娠中絶の要件"): ("b. 児童虐待に係る通告", "c. 人工妊娠中絶の要件"),
}


def load(data_root: Path, blocks: tuple[str, ...] | None = None) -> Loaded:
    """Questions of the chosen blocks (all by default) with gold answers from the CSV."""
    folder = data_root / "igakuqa119"
    answers_path = folder / "results" / "correct_answers.csv"
    out = Loaded(files=[answers_path])
    answers = _read_answers(answers_path)
    files = sorted(p for p in (folder / "questions").glob("119*_json.json") if _FILE.fullmatch(p.name))
    if not files:
        raise LoaderError(folder / "questions", None, None, "no 119<block>_json.json files found")
    used = set()
    for path in files:
        block = _FILE.fullmatch(path.name)["block"]  # type: ignore[index]
        if blocks is not None and block not in blocks:
            continue
        out.files.append(path)
        for line, _, record in read_json_items(path):
            if not isinstance(record, dict):
                raise LoaderError(path, line, None, f"expected a JSON object, got {type(record).__name__}")
            q = _question(path, line, record, block, answers, data_root, out.warnings)
            used.add(q.id)
            out.questions.append(q)
    if blocks is None:
        for pid in sorted(set(answers) - used):
            out.warnings.append(f"{answers_path}:{answers[pid][0]}: {pid}: answer for an unknown question")
        mark_incomplete_exams(out)
    return out


def _read_answers(path: Path) -> dict[str, tuple[int, str]]:
    rows = read_csv(path)
    try:
        _, header = next(rows)
    except StopIteration:
        raise LoaderError(path, 1, None, "empty file") from None
    if [h.strip() for h in header[:2]] != ["問題番号", "解答"]:
        raise LoaderError(path, 1, None, f"expected the header 問題番号,解答, got {header!r}")
    answers: dict[str, tuple[int, str]] = {}
    for line, row in rows:
        if len(row) < 2 or not row[1].strip():
            raise LoaderError(path, line, "解答", f"missing in {row!r}")
        pid = row[0].strip()
        if pid in answers:
            raise LoaderError(path, line, "問題番号", f"{pid} appears twice (first at line {answers[pid][0]})")
        answers[pid] = (line, row[1].strip())
    return answers


def _question(path: Path, line: int, record: dict[str, Any], block: str,
              answers: dict[str, tuple[int, str]], data_root: Path, warnings: list[str]) -> Question:
    pid = field(record, "number", path, line)
    if not re.fullmatch(rf"{EXAM}{block}\d+", pid):
        raise LoaderError(path, line, "number", f"{pid!r} does not belong to block {block}")
    text = field(record, "question", path, line).strip()
    raw_choices = string_list(record, "choices", path, line)
    repaired = [c for c in raw_choices if (pid, c) in _MERGED_CHOICES]
    for merged in repaired:
        warnings.append(f"{path}:{line}: {pid}: choice {merged!r} split into {list(_MERGED_CHOICES[pid, merged])}")
        at = raw_choices.index(merged)
        raw_choices = raw_choices[:at] + list(_MERGED_CHOICES[pid, merged]) + raw_choices[at + 1:]
    choices = [_strip_label(c, k, path, line) for k, c in enumerate(raw_choices)]
    has_image = field(record, "has_image", path, line, bool)
    if pid not in answers:
        raise LoaderError(path, line, "number", f"{pid} has no row in correct_answers.csv")
    answer_line, key = answers[pid]
    answers_path = path.parent.parent / "results" / "correct_answers.csv"
    meta: dict[str, Any] = {
        "exam": EXAM,
        "year": YEAR,
        "block": block,
        "section": SECTIONS[block],
        "text_only": not has_image,
        **source_meta(path, line, data_root),
    }
    if repaired:
        meta["choices_repaired"] = True
    numeric = None
    answer: set[int] = set()
    if re.fullmatch(r"[A-Za-z]+", key):
        if not choices:
            text, choices = choices_from_text(text, path, line)
            meta["choices_from_text"] = True
            warnings.append(f"{path}:{line}: {pid}: empty 'choices'; {len(choices)} choices read from the question text")
        answer = letters_to_indices(key, len(choices), answers_path, answer_line, "解答")
    elif re.fullmatch(r"-?\d+(\.\d+)?", key):
        if choices:
            raise LoaderError(path, line, "choices", f"{pid} has choices but a numeric answer {key!r}")
        numeric = key
    else:
        raise LoaderError(answers_path, answer_line, "解答",
                          f"{key!r} is neither choice letters nor a number")
    return Question(
        id=pid,
        benchmark="igakuqa119",
        text=text,
        choices=tuple(choices),
        answer=frozenset(answer),
        n_select=parse_n_select(text) or 1,
        language="ja",
        numeric_answer=numeric,
        meta=meta,
    )


def _strip_label(choice: str, k: int, path: Path, line: int) -> str:
    """'a. 膵の萎縮を認める。' -> '膵の萎縮を認める。' (also 'e.細胞…' without the space)."""
    m = re.match(r"\s*([A-Za-z])\s*[.．]\s*", choice)
    if not m:
        raise LoaderError(path, line, "choices", f"choice {k + 1} {choice!r} lacks its 'a. ' label")
    if m.group(1).lower() != LETTERS[k]:
        raise LoaderError(path, line, "choices", f"choice {k + 1} is labelled {m.group(1)!r}, expected {LETTERS[k]!r}")
    return choice[m.end():].strip()


def choices_from_text(text: str, path: Path, line: int) -> tuple[str, list[str]]:
    """Split ``'…はどれか。 a「…」 b「…」 c… d… e…'`` into the stem and five choices.

    Labels are the letters a-e in order (case-insensitive: the source has a stray ``C``),
    each preceded by a space.
    """
    # A greedy stem takes the last " a" that is followed by " b", " c", " d", " e" labels.
    m = re.fullmatch(r"(.*)\s+[aA](.+?)\s+[bB](.+?)\s+[cC](.+?)\s+[dD](.+?)\s+[eE](.+?)\s*", text, re.S)
    if not m:
        raise LoaderError(path, line, "choices", "empty, and no choices a-e found at the end of the question")
    stem, *choices = (g.strip() for g in m.groups())
    if any(not c for c in choices):
        raise LoaderError(path, line, "choices", "empty, and the choices at the end of the question are incomplete")
    return stem, choices
