"""MedQA-USMLE, 4 options, test split (as redistributed by Teddy-XiongGZ/MIRAGE), in English.

Layout: ``medqa/rawdata/medqa/data_clean/questions/US/4_options/phrases_no_exclude_test.jsonl``;
each line has ``question``, ``options`` (``{"A": ..., "D": ...}``), ``answer`` (the text of the
correct option), ``answer_idx`` (its letter) and ``meta_info`` (``step1`` / ``step2&3``).
The gold index comes from the answer text and must agree with ``answer_idx``. Lines have no id:
ids are ``test-0000`` … by position. Single-answer format: ``n_select`` is 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jmedllm.benchmarks.parsing import LoaderError, field, read_jsonl, source_meta
from jmedllm.benchmarks.record import Loaded
from jmedllm.schema import LETTERS, Question

RELATIVE_PATH = Path("medqa/rawdata/medqa/data_clean/questions/US/4_options/phrases_no_exclude_test.jsonl")


def load(data_root: Path) -> Loaded:
    path = data_root / RELATIVE_PATH
    out = Loaded(files=[path])
    for index, (line, record) in enumerate(read_jsonl(path)):
        out.questions.append(_question(path, line, index, record, data_root))
    return out


def _question(path: Path, line: int, index: int, record: dict[str, Any], data_root: Path) -> Question:
    text = field(record, "question", path, line)
    options = field(record, "options", path, line, dict)
    labels = sorted(options)
    if labels != list(LETTERS[: len(labels)].upper()) or not labels:
        raise LoaderError(path, line, "options", f"expected keys A, B, C, …, got {labels}")
    choices = [options[k] for k in labels]
    if not all(isinstance(c, str) for c in choices):
        raise LoaderError(path, line, "options", "every option must be a string")
    answer_text = field(record, "answer", path, line)
    matches = [k for k, c in enumerate(choices) if c == answer_text]
    if len(matches) != 1:
        raise LoaderError(path, line, "answer",
                          f"{answer_text!r} matches {len(matches)} options (expected exactly one)")
    gold = matches[0]
    if "answer_idx" in record:
        letter = field(record, "answer_idx", path, line)
        if letter.strip().upper() != labels[gold]:
            raise LoaderError(path, line, "answer_idx",
                              f"{letter!r} disagrees with 'answer', which is option {labels[gold]}")
    meta: dict[str, Any] = {"split": "test", "text_only": True, **source_meta(path, line, data_root)}
    if isinstance(record.get("meta_info"), str):
        meta["step"] = record["meta_info"]
    return Question(
        id=f"test-{index:04d}",
        benchmark="medqa",
        text=text,
        choices=tuple(choices),
        answer=frozenset({gold}),
        n_select=1,
        language="en",
        meta=meta,
    )
