"""User-declared answer patterns: a regex with a named group ``answer`` for a house answer style.

A pattern can be declared in three places; for each item the most specific *run-level*
declaration wins (precedence, highest first):

1. the run: ``jmedllm eval|score --answer-pattern REGEX`` (``EvalConfig.answer_pattern``);
2. the prompt file: a Jinja2 template may declare the pattern its answers follow in a
   comment of its own, anywhere in the file::

       {# answer_pattern: '【解答】\\s*(?P<answer>[a-e]+)' #}

   (the value is read as YAML, so quote it; the comment renders as nothing);
3. the benchmark: a custom mapping's ``answer_pattern`` key, which the loader puts into each
   question's ``meta["answer_pattern"]``.

The extractor tries the pattern in force first and falls back to its own steps when it
does not match (``jmedllm.scoring.extract.pattern``). Every pattern in force is recorded in
the run's config.json (identity: a changed pattern is another run), and each item record
names the source of its pattern (``answer_pattern_source``). A pattern is data, never code:
it is only compiled as a regular expression.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import yaml

GROUP = "answer"
SOURCES = ("run", "prompt_file", "mapping")  # precedence, highest first

_DECLARATION = re.compile(r"\{#-?\s*answer_pattern\s*:(?P<value>.*?)-?#\}", re.DOTALL)


class AnswerPatternError(ValueError):
    """An answer pattern that is not a regex with a named group ``answer``; the message names where."""


def check(pattern: str, where: str) -> str:
    """Return ``pattern`` if it compiles and has the named group ``answer``; else AnswerPatternError
    (the extractor's own validation, with the place of the declaration in front)."""
    from jmedllm.scoring.extract import compile_answer_pattern

    try:
        compile_answer_pattern(pattern)
    except ValueError as exc:
        raise AnswerPatternError(f"{where}: {exc}") from None
    return pattern


def from_template(template_file: str | Path) -> str | None:
    """The pattern a prompt template declares (``{# answer_pattern: '...' #}``), or None."""
    path = Path(template_file)
    text = path.read_text(encoding="utf-8")
    found = list(_DECLARATION.finditer(text))
    if not found:
        return None
    if len(found) > 1:
        lines = ", ".join(str(text.count("\n", 0, m.start()) + 1) for m in found)
        raise AnswerPatternError(f"{path}: answer_pattern declared more than once (lines {lines})")
    m = found[0]
    line = text.count("\n", 0, m.start()) + 1
    try:
        value = yaml.safe_load(m.group("value"))
    except yaml.YAMLError as exc:
        raise AnswerPatternError(f"{path}, line {line}: answer_pattern is not a YAML value ({exc}); "
                                 "quote the regex in single quotes") from None
    return check(value, f"{path}, line {line}")


def resolve(run: str | None, prompt_file: str | None, meta: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(pattern, source) in force for one question: run > prompt file > mapping; (None, None) if none."""
    for source, pattern in zip(SOURCES, (run, prompt_file, meta.get("answer_pattern"))):
        if pattern:
            return pattern, source
    return None, None


__all__ = ["AnswerPatternError", "GROUP", "SOURCES", "check", "from_template", "resolve"]
