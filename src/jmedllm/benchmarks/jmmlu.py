"""JMMLU (nlp-waseda/JMMLU): MMLU translated into Japanese, medical and nearby subjects.

Layout: ``jmmlu/JMMLU/<subject>.csv``, UTF-8 with a byte-order mark, no header:
question, A, B, C, D, answer letter (choices often padded with spaces, stripped here).
JMMLU dropped and reordered some MMLU rows, so its ids (``<subject>-000`` … by position)
do not align with ``mmlu-med`` ids. Single-answer format: ``n_select`` is 1.
"""

from __future__ import annotations

from pathlib import Path

from jmedllm.benchmarks.mmlu import MEDICAL_SUBJECTS, read_mmlu_csv
from jmedllm.benchmarks.record import Loaded

# Nearby subjects JMMLU also translates; ``jmmlu-med-ext`` adds them to the six medical ones.
NEARBY_SUBJECTS = ("human_aging", "nutrition", "virology")
FOLDER = Path("jmmlu/JMMLU")


def load(data_root: Path, subjects: tuple[str, ...] = MEDICAL_SUBJECTS, benchmark: str = "jmmlu-med") -> Loaded:
    out = Loaded()
    for subject in subjects:
        read_mmlu_csv(data_root / FOLDER / f"{subject}.csv", subject, benchmark, "ja", "test", data_root, out)
    return out
