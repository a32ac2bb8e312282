"""Writers for small data roots in the sources' own layouts, for malformed-input tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_jsonl(path: Path, records: list[dict[str, Any]], *, bom: bool = False, newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = newline.join(json.dumps(r, ensure_ascii=False) for r in records) + newline
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def igakuqa_item(pid: str = "116A1", **changes: Any) -> dict[str, Any]:
    """One IgakuQA question line as the source writes it."""
    record = {
        "problem_id": pid,
        "problem_text": "正しいのはどれか。",
        "choices": ["一", "二", "三", "四", "五"],
        "text_only": True,
        "answer": ["c"],
        "points": "1",
    }
    record.update(changes)
    return record


def igakuqa_meta(pid: str = "116A1", **changes: Any) -> dict[str, Any]:
    record = {"problem_id": pid, "category": "循環器", "kinki": [], "reason": "", "human_accuracy": "80.5",
              "breakdown": ["1.0", "2.0", "80.5", "10.0", "6.5"]}
    record.update(changes)
    return record


def igakuqa_translation(pid: str = "116A1", **changes: Any) -> dict[str, Any]:
    record = {"problem_id": pid, "problem_text_en": "Which is correct?", "choices_en": ["1", "2", "3", "4", "5"],
              "answer": ["c"]}
    record.update(changes)
    return record


def write_igakuqa(root: Path, items: list[dict], metas: list[dict] | None = None,
                  translations: list[dict] | None = None, name: str = "116-A", year: int = 2022) -> Path:
    """A data root holding one IgakuQA block file (and its metadata / translation files)."""
    folder = root / "igakuqa" / "data" / str(year)
    path = write_jsonl(folder / f"{name}.jsonl", items)
    write_jsonl(folder / f"{name}_metadata.jsonl", metas if metas is not None else
                [igakuqa_meta(i["problem_id"]) for i in items])
    write_jsonl(folder / f"{name}_translate.jsonl", translations if translations is not None else
                [igakuqa_translation(i["problem_id"], answer=i["answer"]) for i in items])
    return path
