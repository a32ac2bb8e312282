"""MedMCQA dev split (as redistributed by Teddy-XiongGZ/MIRAGE), in English.

Layout: ``medmcqa/rawdata/medmcqa/data/dev.json`` — JSON lines, despite the name — with
``id``, ``question``, ``opa``..``opd``, ``cop`` (the 1-based correct option), ``exp``
(explanation, may be null), ``subject_name``, ``topic_name`` and ``choice_type``.

``choice_type`` is ``"single"`` or ``"multi"``, but every item, "multi" included, has exactly
one correct option (``cop`` is one number): in this file "multi" marks the question's style
(statement sets, "all of the following except", "A and B" options), not several answers.
It is kept verbatim in ``meta["choice_type"]``; ``n_select`` is read from the text (else 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jmedllm.benchmarks.parsing import LoaderError, field, int_field, read_jsonl, source_meta
from jmedllm.benchmarks.record import Loaded
from jmedllm.schema import Question
from jmedllm.text import parse_n_select

RELATIVE_PATH = Path("medmcqa/rawdata/medmcqa/data/dev.json")
_OPTIONS = ("opa", "opb", "opc", "opd")


def load(data_root: Path) -> Loaded:
    path = data_root / RELATIVE_PATH
    out = Loaded(files=[path])
    for line, record in read_jsonl(path):
        out.questions.append(_question(path, line, record, data_root))
    return out


def _question(path: Path, line: int, record: dict[str, Any], data_root: Path) -> Question:
    text = field(record, "question", path, line)
    choices = [field(record, key, path, line) for key in _OPTIONS]
    cop = int_field(field(record, "cop", path, line, (int, str)), path, line, "cop")
    if not 1 <= cop <= len(choices):
        raise LoaderError(path, line, "cop", f"{cop} is not a 1-based option number 1..{len(choices)}")
    meta: dict[str, Any] = {"split": "dev", "text_only": True, **source_meta(path, line, data_root)}
    for source, key in (("subject_name", "subject"), ("topic_name", "topic"), ("choice_type", "choice_type")):
        if isinstance(record.get(source), str) and record[source].strip():
            meta[key] = record[source]
    explanation = record.get("exp")
    return Question(
        id=field(record, "id", path, line),
        benchmark="medmcqa",
        text=text,
        choices=tuple(choices),
        answer=frozenset({cop - 1}),
        n_select=parse_n_select(text) or 1,
        language="en",
        explanation=explanation if isinstance(explanation, str) and explanation.strip() else None,
        meta=meta,
    )
