"""A user-declared answer pattern: a regex with a named group ``answer``, tried first.

The pattern is searched in the output as written (reasoning blocks removed) and, when
it does not match there, in the normalised text (NFKC: full-width letters, digits and
colons folded), so "答え：(?P<answer>.+)" matches whether the model wrote "：" or ":".
The last match wins. Its capture is then read like a whole answer: a label list, a
label opening a line, or choice text (a number for numeric items); a capture that
reads as none of these falls through to the built-in chain.
"""

from __future__ import annotations

import re
from functools import lru_cache

from jmedllm.scoring.extract.clean import clean_output, first_line, strip_think
from jmedllm.text import nfkc


@lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str]:
    try:
        rx = re.compile(pattern, re.MULTILINE)
    except re.error as exc:
        raise ValueError(f"answer_pattern {pattern!r} is not a valid regular expression: {exc}") from None
    if "answer" not in rx.groupindex:
        raise ValueError(
            f"answer_pattern {pattern!r} has no named group 'answer': mark what to read as the answer "
            "with (?P<answer>...), e.g. '【回答】(?P<answer>.+)'"
        )
    return rx


def compile_answer_pattern(pattern: str | re.Pattern[str]) -> re.Pattern[str]:
    """Validate and compile a user answer pattern (ValueError with a clear message when bad)."""
    if isinstance(pattern, re.Pattern):
        if "answer" not in pattern.groupindex:
            raise ValueError(f"answer_pattern {pattern.pattern!r} has no named group 'answer'")
        return pattern
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"answer_pattern must be a non-empty string, got {pattern!r}")
    return _compile(pattern)


def find_answer(output: str, pattern: str | re.Pattern[str], *, first_line_only: bool = False) -> tuple[str, tuple[int, int]] | None:
    """The last capture of ``answer`` in the output, with its span in ``nfkc(output)``."""
    rx = compile_answer_pattern(pattern)
    raw = strip_think(output)
    if first_line_only:
        raw = first_line(raw)
    last = None
    for m in rx.finditer(raw):
        if m.group("answer") is not None and m.group("answer").strip():
            last = m
    if last is not None:
        start = len(nfkc(output[: last.start("answer")]))
        end = start + len(nfkc(last.group("answer")))
        return last.group("answer"), (start, end)
    cleaned = clean_output(output, first_line_only=first_line_only)
    for m in rx.finditer(cleaned):
        if m.group("answer") is not None and m.group("answer").strip():
            last = m
    if last is not None:
        return last.group("answer"), last.span("answer")
    return None
