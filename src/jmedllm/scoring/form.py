"""Is a generated answer well-formed? What instruction tuning should change first, long before a
tiny model knows any medicine: the answer is found, it is one answer (as many choices as asked),
and nothing else is said.

``answer_form`` sorts a generated output into one of:

- ``well-formed``: parsed, exactly ``n_select`` choices, and the cleaned response is one line
  no longer than the longest choice text plus ``slack`` characters (a label such as
  "答え: c " or "Answer: " fits in the slack);
- ``unparsed``: no answer found;
- ``wrong number``: an answer, but not as many choices as the question asks for;
- ``rambling``: an answer, but with more text (more lines, or a longer line) around it.

Pure: the same output always gets the same form.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable

from jmedllm.schema import Question
from jmedllm.scoring.extract import clean_output

FORMS = ("well-formed", "unparsed", "wrong number", "rambling")
DEFAULT_SLACK = 16


def answer_form(question: Question, output: str, predicted: Iterable[int], parsed: bool,
                slack: int = DEFAULT_SLACK) -> str:
    if not parsed:
        return "unparsed"
    chosen = set(predicted)
    if question.selection == "n" and question.n_select and len(chosen) != question.n_select:
        return "wrong number"
    response = clean_output(output).strip()
    lines = [line for line in response.splitlines() if line.strip()]
    longest = max((len(c) for c in question.choices), default=0)
    if len(lines) > 1 or len(response) > longest + slack:
        return "rambling"
    return "well-formed"


def form_counts(forms: Iterable[str]) -> dict[str, int]:
    """Counts per form, every form present (0 when absent)."""
    counts = Counter(forms)
    unknown = set(counts) - set(FORMS)
    if unknown:
        raise ValueError(f"unknown answer form(s) {sorted(unknown)}")
    return {f: counts.get(f, 0) for f in FORMS}


__all__ = ["DEFAULT_SLACK", "FORMS", "answer_form", "form_counts"]
