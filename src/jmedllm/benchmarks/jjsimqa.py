"""JJSIMQA (aistairc/medLLM_QA_benchmark): questions from the Journal of the Japanese Society
of Internal Medicine, in Japanese; 205 of 460 ask for two choices ("2つ選べ.").

Layout: ``jjsimqa/data/ja/JJSIMQA/jjsimqa.jsonl`` with the IgakuQA keys (``problem_id``,
``problem_text``, ``choices``, ``answer`` letters, ``points``, ``text_only``) plus
``choices_orig`` (the choices as one string, ignored). Quirk: one answer list holds a stray
separator (``["d", ",", "e"]``), read as d, e with a warning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jmedllm.benchmarks.parsing import (
    LoaderError,
    field,
    int_field,
    letters_to_indices,
    read_jsonl,
    source_meta,
    string_list,
)
from jmedllm.benchmarks.record import Loaded
from jmedllm.schema import Question
from jmedllm.text import parse_n_select

RELATIVE_PATH = Path("jjsimqa/data/ja/JJSIMQA/jjsimqa.jsonl")


def load(data_root: Path) -> Loaded:
    path = data_root / RELATIVE_PATH
    out = Loaded(files=[path])
    for line, record in read_jsonl(path):
        out.questions.append(_question(path, line, record, data_root, out.warnings))
    return out


def _question(path: Path, line: int, record: dict[str, Any], data_root: Path, warnings: list[str]) -> Question:
    pid = field(record, "problem_id", path, line)
    text = field(record, "problem_text", path, line)
    choices = string_list(record, "choices", path, line)
    answer: set[int] = set()
    for letters in string_list(record, "answer", path, line):
        if letters.strip() in (",", "、", ""):
            warnings.append(f"{path}:{line}: {pid}: stray separator {letters!r} in 'answer' ignored")
            continue
        answer |= letters_to_indices(letters, len(choices), path, line, "answer")
    if not answer:
        raise LoaderError(path, line, "answer", "no answer letter")
    meta: dict[str, Any] = {
        "points": int_field(field(record, "points", path, line, (int, float, str)), path, line, "points"),
        "text_only": field(record, "text_only", path, line, bool),
        **source_meta(path, line, data_root),
    }
    return Question(
        id=pid,
        benchmark="jjsimqa",
        text=text,
        choices=tuple(choices),
        answer=frozenset(answer),
        n_select=parse_n_select(text) or 1,
        language="ja",
        meta=meta,
    )
