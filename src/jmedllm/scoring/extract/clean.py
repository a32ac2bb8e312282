"""Cleaning steps: from a raw model output to text the pick steps read.

Every step keeps the length of ``nfkc(output)``: characters are blanked with spaces
(newlines kept), never deleted, so a match offset is an offset into ``nfkc(output)``.

1. ``normalize_output``   NFKC (full-width letters, digits, brackets and colons fold to
                          ASCII); mark-sheet slot markers ①..⑳ become ``§`` (NFKC would
                          turn them into digits); fenced program code (```python …```;
                          JSON and untagged blocks stay) blanked; markdown emphasis (``*``, backticks),
                          heading marks (``#`` opening a line) and LaTeX wrappers
                          (``$``, ``\\(``, ``\\text{…}``, ``\\mathrm{…}``, ``\\textbf{…}``) blanked,
                          their content kept; ``\\boxed{…}`` is kept (an answer marker).
2. ``strip_think``        reasoning blocks blanked: ``<think>…</think>`` (also ``thinking``,
                          ``thought(s)``, ``reasoning``), an unclosed block to the end, all
                          before a stray closing tag, and a harmony-format analysis channel.
   ``strip_control_tokens`` chat-template tokens (``<|im_end|>``, ``<end_of_turn>``, …)
                          blanked; the first end-of-turn token after the answer cuts the rest.
3. ``first_line``         only with ``first_line_only=True``.
4. ``cut_next_question``  a follow-on exam item written by a base model is cut (the
                          extractors keep the cut only when an answer stands before it: a
                          chat model that restates the question ("### 問題：…") is not cut).
5. ``drop_echoed_choices`` a copied choice list (or per-choice analysis) is blanked.
"""

from __future__ import annotations

import re

from jmedllm.schema import LETTERS
from jmedllm.scoring.extract.labels import CLOSE, OPEN, label_class
from jmedllm.text import nfkc

SLOT = "§"
_CIRCLED = {chr(c): SLOT for c in range(0x2460, 0x2474)}  # ① .. ⑳


def blank(text: str, start: int, end: int) -> str:
    """Replace text[start:end] with spaces, keeping newlines (offsets and lines survive)."""
    return text[:start] + re.sub(r"[^\n]", " ", text[start:end]) + text[end:]


def _blank_match(m: re.Match[str]) -> str:
    return re.sub(r"[^\n]", " ", m.group(0))


_LATEX_WRAPPER = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mathit|operatorname|mathtt)\s*\{([^{}]*)\}")
_LATEX_DELIMS = re.compile(r"\$+|\\[()\[\]]")
_HEADING = re.compile(r"^[ \t]*#{1,6}(?=[ \t])", re.MULTILINE)


def _unwrap_latex(text: str) -> str:
    for _ in range(3):  # nested wrappers: \textbf{\text{C}}
        new = _LATEX_WRAPPER.sub(lambda m: " " * (m.start(1) - m.start()) + m.group(1) + " ", text)
        if new == text:
            break
        text = new
    return _LATEX_DELIMS.sub(_blank_match, text)


# A fenced block of program code (```python …```) is no answer: a run-on model writing
# `answer = "C"` in code has not answered. JSON and untagged blocks are kept (an answer format).
_CODE_FENCE = re.compile(
    r"```[ \t]*(?:python|py|javascript|js|typescript|ts|bash|sh|shell|c|cpp|c\+\+|java|r|sql|go|rust)[ \t]*\n.*?(?:```|\Z)",
    re.DOTALL | re.IGNORECASE,
)


def blank_code(text: str) -> str:
    """Blank fenced blocks of program code (an unclosed one to the end)."""
    return _CODE_FENCE.sub(_blank_match, text) if "```" in text else text


def normalize_output(text: str) -> str:
    """NFKC with slot markers kept, markdown emphasis / heading marks and LaTeX wrappers blanked."""
    text = nfkc(text.translate(str.maketrans(_CIRCLED)))
    text = blank_code(text).replace("\r", " ").replace("*", " ").replace("`", " ")
    text = _HEADING.sub(_blank_match, text)
    return _unwrap_latex(text) if ("\\" in text or "$" in text) else text


_TAG = r"(?:think|thinking|thoughts?|reasoning)"
_THINK_BLOCK = re.compile(rf"<{_TAG}>.*?</{_TAG}>", re.DOTALL | re.IGNORECASE)
_OPEN_TAG = re.compile(rf"<{_TAG}>", re.IGNORECASE)
_CLOSE_TAG = re.compile(rf"</{_TAG}>", re.IGNORECASE)
_HARMONY_FINAL = re.compile(r"<\|channel\|>\s*final\s*<\|message\|>")


def strip_think(text: str) -> str:
    """Blank reasoning: ``<think>…</think>`` blocks, an unclosed ``<think>…`` to the end,
    everything before a stray ``</think>``, and everything before a harmony final channel."""
    text = _THINK_BLOCK.sub(_blank_match, text)
    last_close = None
    for m in _CLOSE_TAG.finditer(text):
        last_close = m
    if last_close is not None:
        text = blank(text, 0, last_close.end())
    opened = _OPEN_TAG.search(text)
    if opened:
        text = blank(text, opened.start(), len(text))
    final = None
    for m in _HARMONY_FINAL.finditer(text):
        final = m
    if final is not None:
        text = blank(text, 0, final.end())
    return text


# Chat-template control tokens a model (or a server that did not strip them) leaves in the text.
_CONTROL = re.compile(r"<\|[^|<>\n]{1,40}\|>|<[｜|][^<>\n]{1,40}[｜|]>|</?s>|<(?:start|end)_of_turn>|<\|?im_(?:start|end|sep)\|?>")
_END_OF_TURN = re.compile(
    r"<\|(?:end|eot_id|im_end|endoftext|END_RESPONSE|END_OF_TURN_TOKEN|return|user)\|?>?|<end_of_turn>|</s>|<[｜|]end[▁_ ]of[▁_ ]sentence[｜|]>",
    re.IGNORECASE,
)


def strip_control_tokens(text: str) -> str:
    """Blank chat-template control tokens; the first end-of-turn token after the answer has begun
    ends it (a model that goes on to write the next user turn is cut there)."""
    start = 0
    for m in _END_OF_TURN.finditer(text):
        if text[start:m.start()].strip():
            text = blank(text, m.start(), len(text))
            break
        start = m.end()
    return _CONTROL.sub(_blank_match, text)


def first_line(text: str) -> str:
    """Keep the first non-empty line only (later lines blanked).

    Compatibility with the reference harness (Sukeda 2024 / JMedLoRA), which scores
    only the first non-empty line of a generation. Off by default.
    """
    m = re.search(r"\S[^\n]*", text)
    if not m:
        return text
    return blank(text, m.end(), len(text))


_NEXT_QUESTION = re.compile(
    r"\n\s*(?:(?:問題|設問|質問|Question|Q\s*\d+)\s*\d*\s*[:.)]|(?:Medical\s+|Next\s+|New\s+)?Question\s*\d*[ \t]*\n)",
    re.IGNORECASE,
)


def cut_next_question(text: str) -> str:
    """Blank a follow-on exam item that a base model wrote after its answer."""
    start = re.search(r"\S", text)
    if not start:
        return text
    m = _NEXT_QUESTION.search(text, start.start())
    return blank(text, m.start(), len(text)) if m else text


_LINE_LABEL_CACHE: dict[int, re.Pattern[str]] = {}


def _line_label_re(n_choices: int) -> re.Pattern[str]:
    if n_choices not in _LINE_LABEL_CACHE:
        L = label_class(n_choices)
        _LINE_LABEL_CACHE[n_choices] = re.compile(
            rf"^[ \t]*(?:[-・•+][ \t]*)?(?:(?:選択肢|option|choice)[ \t]*)?{OPEN}?[ \t]*({L}){CLOSE}?[ \t]*[.:)、,]",
            re.IGNORECASE,
        )
    return _LINE_LABEL_CACHE[n_choices]


def drop_echoed_choices(text: str, n_choices: int, n_select: int) -> str:
    """Blank a copied choice list: >= 3 consecutive lettered lines, letters increasing,
    more lines than answers asked for. Blank lines inside the run are allowed."""
    if n_choices < 1:
        return text
    pattern = _line_label_re(n_choices)
    lines = text.split("\n")
    offsets, pos = [], 0
    for line in lines:
        offsets.append(pos)
        pos += len(line) + 1
    runs: list[list[int]] = []
    current: list[int] = []
    last_letter = -1
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        m = pattern.match(line)
        letter = LETTERS.index(m.group(1).lower()) if m else -1
        if m and letter > last_letter and current:
            current.append(i)
        else:
            if current:
                runs.append(current)
            current = [i] if m else []
        last_letter = letter if m else -1
    if current:
        runs.append(current)
    for run in runs:
        if len(run) >= 3 and len(run) > max(n_select, 1):
            for i in run:
                text = blank(text, offsets[i], offsets[i] + len(lines[i]))
    return text


def clean_output(
    output: str, *, n_choices: int = 0, n_select: int = 1, first_line_only: bool = False, cut_next: bool = True
) -> str:
    """Run the cleaning steps; the result has the same length as ``nfkc(output)``."""
    text = strip_control_tokens(strip_think(normalize_output(output)))
    if first_line_only:
        text = first_line(text)
    if cut_next:
        text = cut_next_question(text)
    if n_choices:
        text = drop_echoed_choices(text, n_choices, n_select)
    return text
