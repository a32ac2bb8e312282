"""How a report writes its numbers: one set of formatters for the HTML page and its Markdown twin."""

from __future__ import annotations

from typing import Any

SECTION_NAMES = {"hisshu": "必修", "ippan_rinsho": "一般+臨床"}


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def ci(m: dict[str, Any] | None) -> str:
    """'41.2 [35.0, 47.5]' (percent, 95 % interval)."""
    if not m:
        return "–"
    return f"{pct(m['mean'])} [{pct(m['low'])}, {pct(m['high'])}]"


def diff(row: dict[str, Any]) -> str:
    return f"{100 * row['diff']:+.1f} [{100 * row['low']:+.1f}, {100 * row['high']:+.1f}]"


def p(value: float) -> str:
    return f"{value:.3g}" if value >= 0.001 else "<0.001"


def points(sec: dict[str, Any]) -> str:
    interval = f" [{sec['low']:.0f}, {sec['high']:.0f}]" if sec.get("low") is not None else ""
    return f"{sec['points']}{interval} / {sec['max']}"


def margin(sec: dict[str, Any]) -> str:
    return f"{sec['margin']:+d} (line {sec['line']})"


def verdict(exam: dict[str, Any]) -> str:
    text = "PASS" if exam["passed"] else "FAIL"
    return text if exam["complete"] else text + " (partial run)"


def kinki(exam: dict[str, Any]) -> str:
    return "not checked" if exam["kinki"] is None else f"{exam['kinki']} (max {exam['kinki_max']})"


def direction(row: dict[str, Any]) -> str:
    """Sign and size in words: which side is better and whether the interval excludes zero."""
    if row["low"] > 0:
        return "B better"
    if row["high"] < 0:
        return "A better"
    return "no clear difference"


def step(value: int | None) -> str:
    return "" if value is None else str(value)
