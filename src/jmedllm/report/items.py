"""The item explorer's data: static facts once per item, each run's answer per item, prompts and
outputs de-duplicated through a string table (the page's script, explorer.js, reads it)."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from jmedllm.report.common import group_of
from jmedllm.report.collect import RunData
from jmedllm.schema import LETTERS


def _letters(indices: Iterable[int]) -> str:
    return "".join(LETTERS[i] for i in sorted(indices) if 0 <= i < len(LETTERS))


def explorer(runs: Sequence[RunData]) -> dict[str, Any]:
    """Compact item data: static facts once per item, each run's answer per item, prompts and
    outputs de-duplicated through a string table."""
    strings: list[str] = []
    index: dict[str, int] = {}

    def s(text: str | None) -> int:
        if text is None:
            return -1
        if text not in index:
            index[text] = len(strings)
            strings.append(text)
        return index[text]

    keys: list[str] = []
    seen: set[str] = set()
    for run in runs:
        for k in run.records:
            if k not in seen:
                seen.add(k)
                keys.append(k)
    position = {k: i for i, k in enumerate(keys)}
    items = []
    for k in keys:
        rec = next(r.records[k] for r in runs if k in r.records)
        q = next((r.questions[k] for r in runs if k in r.questions), None)
        meta = q.meta if q else {}
        kinki = meta.get("kinki") or ()
        items.append({
            "k": k, "g": group_of(rec), "y": str(meta.get("year", "")), "c": str(meta.get("category", "") or ""),
            "gold": (_letters(q.answer) if q and not q.is_numeric else (q.numeric_answer if q else "")) or "",
            "f": _letters(kinki) if kinki else "",
            "ch": [s(c) for c in q.choices] if q else [],
        })
    results = []
    for run in runs:
        rows = []
        for k, rec in run.records.items():
            v = rec["verdict"]
            q = run.questions.get(k)
            if rec.get("scores"):
                out_text = "\n".join(LETTERS[i] + ": " + ", ".join("%.3f" % sc["logprob"] for sc in g)
                                     for i, g in enumerate(rec["scores"]))
            else:
                out_text = rec.get("output")
            verdict = "unparsed" if not v["parsed"] else ("correct" if v["correct"] else "wrong")
            shown_gold = _letters(q.answer) if q and not q.is_numeric else None
            rows.append([position[k], v.get("predicted_letters") or v.get("numeric_predicted") or "", v.get("method", ""),
                         verdict, s(rec.get("prompt")), s(out_text), s(v.get("matched")),
                         shown_gold if shown_gold is not None and shown_gold != items[position[k]]["gold"] else None])
        results.append(rows)
    return {"items": items, "results": results, "strings": strings}
