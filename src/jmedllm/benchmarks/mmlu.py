"""MMLU medical subjects, test split (as redistributed by Teddy-XiongGZ/MIRAGE), in English.

Layout: ``mmlu/rawdata/mmlu/data/test/<subject>_test.csv``, CSV without header:
question, A, B, C, D, answer letter. Rows have no id: ids are ``<subject>-000`` … by
position. Single-answer format: ``n_select`` is 1 (a few stems say "What three factors …"
with combined options, which is still one choice).
"""

from __future__ import annotations

from pathlib import Path

from jmedllm.benchmarks.parsing import LoaderError, read_csv, source_meta
from jmedllm.benchmarks.record import Loaded
from jmedllm.schema import Question

# The six subjects of the medical MMLU subset used by MIRAGE, Med-PaLM and others.
MEDICAL_SUBJECTS = (
    "anatomy",
    "clinical_knowledge",
    "college_biology",
    "college_medicine",
    "medical_genetics",
    "professional_medicine",
)
FOLDER = Path("mmlu/rawdata/mmlu/data/test")


def load(data_root: Path, subjects: tuple[str, ...] = MEDICAL_SUBJECTS) -> Loaded:
    out = Loaded()
    for subject in subjects:
        path = data_root / FOLDER / f"{subject}_test.csv"
        read_mmlu_csv(path, subject, "mmlu-med", "en", "test", data_root, out)
    return out


def read_mmlu_csv(path: Path, subject: str, benchmark: str, language: str, split: str,
                  data_root: Path, out: Loaded) -> None:
    """Append the questions of one headerless MMLU-style CSV (question, A-D, letter) to ``out``."""
    out.files.append(path)
    columns = ("question", "A", "B", "C", "D", "answer")
    for index, (line, row) in enumerate(read_csv(path)):
        if len(row) != len(columns):
            raise LoaderError(path, line, None, f"expected {len(columns)} columns ({', '.join(columns)}), got {len(row)}")
        question, *choices, letter = (cell.strip() for cell in row)
        if letter.upper() not in ("A", "B", "C", "D"):
            raise LoaderError(path, line, "answer", f"unknown answer letter {letter!r} (valid: A, B, C, D)")
        for name, choice in zip("ABCD", choices):
            if not choice:
                raise LoaderError(path, line, name, "empty choice")
        out.questions.append(Question(
            id=f"{subject}-{index:03d}",
            benchmark=benchmark,
            text=question,
            choices=tuple(choices),
            answer=frozenset({"ABCD".index(letter.upper())}),
            n_select=1,
            language=language,
            meta={"subject": subject, "split": split, "text_only": True, **source_meta(path, line, data_root)},
        ))
