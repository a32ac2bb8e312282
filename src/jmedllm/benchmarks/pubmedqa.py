"""PubMedQA PQA-L (pubmedqa/pubmedqa): 1000 expert-labelled yes / no / maybe questions on abstracts.

Layout: ``pubmedqa/data/ori_pqal.json`` (an object from PubMed id to ``QUESTION``,
``CONTEXTS``, ``LABELS``, ``LONG_ANSWER``, ``MESHES``, ``YEAR``, ``final_decision``) and
``pubmedqa/data/test_ground_truth.json`` (id -> decision for the 500 test questions).
The other 500 are the official train/dev pool; ``meta["split"]`` says which. Each question
gets the three choices yes, no, maybe; ``context`` is the abstract's context paragraphs
joined by newlines (their section labels in ``meta["context_labels"]``); ``explanation`` is
the abstract's conclusion (``LONG_ANSWER``), which a reasoning-required prompt must not show.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jmedllm.benchmarks.parsing import LoaderError, field, read_json_items, source_meta, string_list
from jmedllm.benchmarks.record import Loaded
from jmedllm.schema import Question

FOLDER = Path("pubmedqa/data")
CHOICES = ("yes", "no", "maybe")


def load(data_root: Path) -> Loaded:
    """All 1000 labelled questions; the registry keeps the test split by default."""
    path = data_root / FOLDER / "ori_pqal.json"
    truth_path = data_root / FOLDER / "test_ground_truth.json"
    out = Loaded(files=[path, truth_path])
    test = {}
    for line, pmid, decision in read_json_items(truth_path):
        if decision not in CHOICES:
            raise LoaderError(truth_path, line, str(pmid), f"{decision!r} is not one of {', '.join(CHOICES)}")
        test[pmid] = (line, decision)
    seen = set()
    for line, pmid, record in read_json_items(path):
        if not isinstance(record, dict):
            raise LoaderError(path, line, str(pmid), f"expected an object, got {type(record).__name__}")
        q = _question(path, line, str(pmid), record, test, data_root)
        seen.add(q.id)
        out.questions.append(q)
    unknown = sorted(set(test) - seen, key=lambda pmid: test[pmid][0])
    if unknown:
        raise LoaderError(truth_path, test[unknown[0]][0], unknown[0],
                          f"test id not found in ori_pqal.json ({len(unknown)} such ids)")
    return out


def _question(path: Path, line: int, pmid: str, record: dict[str, Any],
              test: dict[str, tuple[int, str]], data_root: Path) -> Question:
    decision = field(record, "final_decision", path, line)
    if decision not in CHOICES:
        raise LoaderError(path, line, "final_decision", f"{decision!r} is not one of {', '.join(CHOICES)}")
    if pmid in test and test[pmid][1] != decision:
        raise LoaderError(path, line, "final_decision",
                          f"{decision!r} disagrees with test_ground_truth.json ({test[pmid][1]!r}) for {pmid}")
    contexts = string_list(record, "CONTEXTS", path, line)
    meta: dict[str, Any] = {
        "split": "test" if pmid in test else "train",
        "text_only": True,
        **source_meta(path, line, data_root),
    }
    if isinstance(record.get("LABELS"), list):
        meta["context_labels"] = tuple(record["LABELS"])
    if isinstance(record.get("MESHES"), list):
        meta["meshes"] = tuple(record["MESHES"])
    if isinstance(record.get("YEAR"), str) and record["YEAR"].isdigit():
        meta["pub_year"] = int(record["YEAR"])
    long_answer = record.get("LONG_ANSWER")
    return Question(
        id=pmid,
        benchmark="pubmedqa",
        text=field(record, "QUESTION", path, line),
        choices=CHOICES,
        answer=frozenset({CHOICES.index(decision)}),
        n_select=1,
        language="en",
        context="\n".join(contexts),
        explanation=long_answer if isinstance(long_answer, str) and long_answer.strip() else None,
        meta=meta,
    )
