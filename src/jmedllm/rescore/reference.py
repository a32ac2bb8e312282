"""Comparing jmedllm's reading of each response with another tool's: a reference verdict
(correct or not) and / or a reference parsed answer (the letters or number it read). Pure.

A reference verdict is read from ``true/false``, ``1/0``, ``yes/no``, ``correct/incorrect``,
``○/×`` (``◯ 〇 ✓ ✔`` / ``✗ ✘ x``), ``正解/不正解``, ``正/誤``; an empty cell or null means
"no reference for this item" (counted, not compared). Anything else is an error naming the place.

A reference answer is read as letters for a choice item (``c``, ``C``, ``a,c``, ``a と c``,
``ＡＣ``: case, width, order and separators do not matter), as a number for a numeric item
(``0.40`` = ``0.4``); empty or null is "no answer". A value that is neither (a template
placeholder the model echoed, ``a or c``, a letter beyond the item's choices such as ``af``
for a–e) counts as "no valid answer", as does jmedllm's "unparsed"; the listing shows it as
written.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any, Sequence

from jmedllm.rescore.inputs import InputError
from jmedllm.schema import Question
from jmedllm.text import nfkc

TRUE = frozenset({"true", "t", "1", "1.0", "yes", "y", "correct", "right", "ok", "○", "◯", "〇", "o", "✓", "✔",
                  "正", "正解"})
FALSE = frozenset({"false", "f", "0", "0.0", "no", "n", "incorrect", "wrong", "ng", "×", "✗", "✘", "x",
                   "誤", "不正解"})
_SEPARATORS = re.compile(r"[\s,、，・/&;+]+|\band\b|および|及び|と")
EXCERPT_CHARS = 160


def parse_verdict(value: Any, where: str, field: str) -> bool | None:
    """A reference verdict as a bool; None when the cell is empty (no reference for this item)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    text = nfkc(str(value)).strip().lower()
    if not text:
        return None
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise InputError(f"{where}: field {field!r} holds {value!r}, not a verdict "
                     "(true/false, 1/0, yes/no, correct/incorrect, ○/×, 正解/不正解)")


def _number(text: str) -> str | None:
    try:
        value = Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None
    return format(value.normalize(), "f") if value.is_finite() else None


def answer_reading(value: Any, question: Question) -> str | None:
    """The reference's answer in canonical form: sorted letters (``"ce"``) or a number
    (``"0.4"``); None for no (valid) answer."""
    if value is None:
        return None
    text = nfkc(str(value)).strip().lower()
    if question.is_numeric:
        return _number(re.sub(r"\s+", "", text)) if text else None
    letters = _SEPARATORS.sub("", text)
    if letters and all(c in question.letters for c in letters):
        return "".join(sorted(set(letters)))
    return None


def jmedllm_reading(question: Question, verdict) -> str | None:
    """jmedllm's answer in the same canonical form (None when unparsed)."""
    if not verdict.parsed:
        return None
    if question.is_numeric:
        return _number(nfkc(verdict.numeric_predicted or "")) if verdict.numeric_predicted else None
    return verdict.predicted_letters or None


def _excerpt(text: str) -> str:
    flat = " ⏎ ".join(line.strip() for line in text.strip().splitlines() if line.strip())
    return flat if len(flat) <= EXCERPT_CHARS else "…" + flat[-EXCERPT_CHARS:]


def compare(items: Sequence[tuple[Question, Any, dict[str, Any]]], *, verdict_field: str | None,
            answer_field: str | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Agreement counts and the disagreements, for ``(question, jmedllm verdict, record)`` triples whose
    record holds ``reference`` (``{"verdict": bool|None, "answer": raw}``) and ``output``."""
    counts: dict[str, dict[str, Any]] = {}
    if verdict_field:
        counts["verdict"] = {"field": verdict_field, "compared": 0, "agree": 0, "no_reference": 0}
    if answer_field:
        counts["answer"] = {"field": answer_field, "compared": 0, "agree": 0, "no_reference": 0}
    disagreements = []
    for question, verdict, record in items:
        ref = record.get("reference", {})
        ours = jmedllm_reading(question, verdict)
        kinds = []
        if verdict_field:
            c = counts["verdict"]
            if ref.get("verdict") is None:
                c["no_reference"] += 1
            else:
                c["compared"] += 1
                if ref["verdict"] == verdict.correct:
                    c["agree"] += 1
                else:
                    kinds.append("verdict")
        theirs = None
        if answer_field:
            c = counts["answer"]
            theirs = answer_reading(ref.get("answer"), question)
            if ref.get("answer") in (None, ""):
                c["no_reference"] += 1
            else:
                c["compared"] += 1
                if theirs == ours:
                    c["agree"] += 1
                else:
                    kinds.append("answer")
        if kinds:
            disagreements.append({
                "key": record["key"], "id": record["id"], "where": record.get("source", {}).get("where"),
                "on": kinds,
                "jmedllm": {"answer": ours, "method": verdict.method, "correct": verdict.correct,
                            "matched": verdict.matched},
                "reference": ({"verdict": ref.get("verdict")} if verdict_field else {})
                | ({"answer": ref.get("answer"), "reading": theirs} if answer_field else {}),
                "response": _excerpt(record.get("output", "")),
            })
    for c in counts.values():
        c["rate"] = c["agree"] / c["compared"] if c["compared"] else None
    return counts, disagreements


def describe(entry: dict[str, Any]) -> tuple[str, str]:
    """(jmedllm's reading, the reference's) of one disagreement, for a terminal line or a table cell."""
    ours = entry["jmedllm"]
    mine = f"{ours['answer'] or 'unparsed'} ({ours['method']}, {'correct' if ours['correct'] else 'wrong'})"
    ref = entry["reference"]
    parts = []
    if "answer" in ref:
        parts.append(f"{ref['answer']!r}" + ("" if ref.get("reading") else " (no valid answer)"))
    if "verdict" in ref:
        parts.append("correct" if ref["verdict"] else "wrong" if ref["verdict"] is not None else "no verdict")
    return mine, ", ".join(parts)


def markdown(counts: dict[str, Any], disagreements: Sequence[dict[str, Any]]) -> str:
    lines = ["", "## Agreement with the reference", "",
             "| reference | field | compared | agree | rate | no reference value |", "|---|---|---|---|---|---|"]
    for kind, c in counts.items():
        rate = "–" if c["rate"] is None else f"{100 * c['rate']:.1f} %"
        lines.append(f"| {kind} | `{c['field']}` | {c['compared']} | {c['agree']} | {rate} | {c['no_reference']} |")
    lines += ["", f"{len(disagreements)} item(s) where jmedllm disagrees (all listed; also in disagreements.jsonl):"]
    if disagreements:
        lines += ["", "| item | on | jmedllm reads | reference | response (tail) |", "|---|---|---|---|---|"]
        for d in disagreements:
            mine, theirs = describe(d)
            cells = [d["key"], "+".join(d["on"]), mine, theirs, d["response"]]
            lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


__all__ = ["answer_reading", "compare", "describe", "jmedllm_reading", "markdown", "parse_verdict"]
