"""Gold answers as written in a custom file: letters, 0- or 1-based numbers, choice texts, numbers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from jmedllm.benchmarks.parsing import LoaderError
from jmedllm.schema import LETTERS
from jmedllm.text import nfkc


def parse_answer_list(value: Any, style: str, separator: str | None, choices: list[str],
                      path: Path, line: int, name: str) -> list[int]:
    """Gold choice indices in the order written (ordering questions need it).

    A JSON list holds one answer per element; a string holds several when ``separator``
    is set, and in the ``letters`` style a run of letters (``"ce"``) is several answers.
    """
    if isinstance(value, list):
        parts = value
    elif isinstance(value, str) and separator is not None:
        parts = value.split(separator)
    else:
        parts = [value]
    if style == "letters" and separator is None and len(parts) == 1 and isinstance(parts[0], str):
        letters = nfkc(parts[0]).strip()
        if re.fullmatch(r"[A-Za-z]{2,}", letters):
            parts = list(letters)
        elif re.fullmatch(r"[A-Za-z](?:\s*[,、→\-]\s*[A-Za-z])+", letters):
            parts = re.findall(r"[A-Za-z]", letters)
    indices: list[int] = []
    for part in parts:
        if isinstance(part, str):
            part = nfkc(part).strip()
        if part in ("", None):
            raise LoaderError(path, line, name, f"empty answer in {value!r}")
        indices.append(_one_answer(part, style, choices, path, line, name))
    if not indices:
        raise LoaderError(path, line, name, "no answer")
    return indices


def parse_answers(value: Any, style: str, separator: str | None, choices: list[str],
                  path: Path, line: int, name: str) -> set[int]:
    """Gold choice indices as a set (see :func:`parse_answer_list`)."""
    return set(parse_answer_list(value, style, separator, choices, path, line, name))


def _one_answer(part: Any, style: str, choices: list[str], path: Path, line: int, name: str) -> int:
    n = len(choices)
    if style == "letters":
        if not (isinstance(part, str) and len(part) == 1 and part.lower() in LETTERS[:n]):
            raise LoaderError(path, line, name, f"unknown answer letter {part!r} (valid: {LETTERS[:n]})")
        return LETTERS.index(part.lower())
    if style in ("index0", "index1"):
        base = 0 if style == "index0" else 1
        if isinstance(part, bool) or not (isinstance(part, int) or (isinstance(part, str) and part.isdigit())):
            raise LoaderError(path, line, name, f"expected a {base}-based choice number, got {part!r}")
        index = int(part) - base
        if not 0 <= index < n:
            raise LoaderError(path, line, name, f"choice number {part!r} out of range {base}..{n - 1 + base}")
        return index
    # style == "text"
    if isinstance(part, (dict, list)):
        raise LoaderError(path, line, name, f"expected a choice text, got {part!r}")
    text = str(part)
    matches = [k for k, c in enumerate(choices) if c == text] or [k for k, c in enumerate(choices) if nfkc(c) == text]
    if len(matches) != 1:
        raise LoaderError(path, line, name, f"answer text {text!r} matches {len(matches)} choices (expected exactly one)")
    return matches[0]


_NUMBER = re.compile(r"[-−]?\d+(?:\.\d+)?")


def parse_number(value: Any, path: Path, line: int, name: str) -> str:
    """A numeric gold value as a normalised string ("62.5", "-3")."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)) or not str(value).strip():
        raise LoaderError(path, line, name, f"expected a number, got {value!r}")
    text = nfkc(str(value)).strip().replace("−", "-")
    if not _NUMBER.fullmatch(text):
        raise LoaderError(path, line, name, f"expected a number (the record has no choices), got {value!r}")
    return text
