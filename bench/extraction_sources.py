"""Public model outputs with their publishers' readings, each read in its repository's own
layout (used by ``bench/extraction_agreement.py``; see its docstring for the folders)."""

from __future__ import annotations

import glob
import html
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from jmedllm.schema import LETTERS


@dataclass(frozen=True)
class Item:
    source: str
    part: str  # model / prompt / file within the source
    qid: str
    raw: str
    choices: tuple[str, ...]  # empty: numeric item
    n_select: int
    reference: object  # frozenset of letters / str number (publisher's parse) or bool verdict; None: publisher failed
    kind: str  # "parse" | "number" | "verdict" | "excluded" (the stored output cannot be compared)
    gold: frozenset[int] = frozenset()
    template: str | None = None
    selection: str = "n"


# TUNE or HELD-OUT per (source, part); decided before tuning.
def split_of(item: Item) -> str:
    """cotlab and akiwada are held out whole; the newest exam's open-weight models too."""
    if item.source == "igakuqa":
        return "tune"
    if item.source == "jmle2026":
        tune = ("openai_gpt-5.2", "anthropic_claude-opus-4.6", "anthropic_claude-sonnet-4.6",
                "google_gemini-3.1-pro-preview", "Qwen_Qwen3-32B", "Qwen_Qwen3-32B_nothink")
        return "tune" if item.part in tune else "held-out"
    if item.source == "medreason":
        return "tune" if item.part.startswith("medmcqa") else "held-out"
    return "held-out"


# ---------------------------------------------------------------------------
# sources
# ---------------------------------------------------------------------------

def _letters(value: str) -> frozenset[str]:
    return frozenset(ch for ch in value.lower() if ch in LETTERS)


def igakuqa_items(root: Path) -> Iterator[Item]:
    from jmedllm.benchmarks import igakuqa

    questions = {}
    for lang in ("ja", "en"):
        for q in igakuqa.load(root, lang).questions:
            questions[(lang, q.id)] = q
    for path in sorted(glob.glob(str(root / "igakuqa" / "baseline_results" / "*" / "*.jsonl"))):
        model = Path(path).stem.split("_", 1)[1]
        if model == "student-majority":
            continue  # not a model output: the students' majority letters
        lang = "en" if model.endswith("-en") else "ja"
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            rec = json.loads(line)
            q = questions[(lang, rec["problem_id"])]
            pred = rec["prediction"].strip()
            # their scorer splits the prediction at commas; anything else (the whole
            # output copied, letters beyond the choices) is their parse failure
            if q.is_numeric:
                yield Item("igakuqa", model, q.id, rec["explanation"], (), 0,
                           pred if re.fullmatch(r"[\d.]+", pred) else None, "number",
                           template=q.meta.get("answer_template"))
            else:
                # a repeated letter ("a,e,e"): their scorer compares the list as written, so it matches no answer
                ok = re.fullmatch(rf"[{q.letters}](,[{q.letters}])*", pred) and len(set(pred.split(","))) == len(pred.split(","))
                yield Item("igakuqa", model, q.id, rec["explanation"], q.choices, max(q.n_select, 1),
                           _letters(pred) if ok else None, "parse")


_EMBEDDED = re.compile(r"^[ \t\u3000]*\|?[ \t\u3000]*([a-e])[ \t\u3000]*[ \t\u3000|][ \t\u3000]*(\S.*)$", re.MULTILINE)


def jmle2026_items(root: Path) -> Iterator[Item]:
    folder = root / "jmle2026"
    dataset = {q["question_id"]: q for q in json.loads((folder / "jmle2026_dataset.json").read_text(encoding="utf-8"))}
    for path in sorted((folder / "results").glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        for rec in data["results"]:
            q = dataset[rec["question_id"]]
            raw = rec.get("raw_response") or ""
            pred = rec.get("predicted") or []
            ok = bool(rec.get("parse_success"))
            if q["question_type"] == "calculation":
                template = re.search(r"解答[:：]\s*(.+)", q["question_text"])
                yield Item("jmle2026", path.stem, q["question_id"], raw, (), 0,
                           pred[0] if ok and pred else None, "number",
                           template=template.group(1) if template else None)
                continue
            choices = tuple(m.group(2).strip() for m in _EMBEDDED.finditer(q["question_text"]))
            yield Item("jmle2026", path.stem, q["question_id"], raw, choices, int(q["num_choices_to_select"]),
                       frozenset(p.lower() for p in pred) if ok and pred else None, "parse")


_ROW = re.compile(r"<tr data-qid=(\w+)>\s*(.*?)\s*</tr>", re.DOTALL)
_CELL = re.compile(r"<td[^>]*>(.*?)</td>", re.DOTALL)
_OPTION = re.compile(r"^(<strong>)?([A-J])\) (.*?)(</strong>)?$", re.MULTILINE)


def medreason_items(root: Path) -> Iterator[Item]:
    for path in sorted((root / "medreason" / "docs" / "samples").glob("*.html")):
        if path.stem.startswith("pubmedqa"):
            continue  # yes / no / maybe, not lettered choices
        text = path.read_text(encoding="utf-8")
        choices: tuple[str, ...] = ()
        gold: frozenset[int] = frozenset()
        qid = ""
        for m in _ROW.finditer(text):
            cells = _CELL.findall(m.group(2))
            if len(cells) == 1 and "colspan" in m.group(2):
                options = _OPTION.findall(cells[0])
                choices = tuple(html.unescape(o[2]) for o in options)
                gold = frozenset(i for i, o in enumerate(options) if o[0])
                qid = re.sub(r"<[^>]+>", "", cells[0]).split("]")[0].split("[")[-1]
                continue
            for col, cell in enumerate(cells):
                body = html.unescape(cell)
                if body[:1] not in ("✅", "❌"):
                    continue
                # no option in bold: the page shows no gold, so the verdict cannot be checked
                yield Item("medreason", f"{path.stem}/prompt{col}", qid, body[1:], choices, 1,
                           body[0] == "✅" if gold else None, "verdict", gold=gold)


def cotlab_items(root: Path) -> Iterator[Item]:
    folder = root / "cotlab"
    for path in sorted(folder.glob("**/results.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        run = path.parent.name
        if not re.search(r"_mcq_(?:plain|json|\w+)_(medqa|medmcqa|mmlu_medical)$", run):
            continue
        for s in data.get("samples", []):
            pred = s.get("predicted")
            if not isinstance(pred, str) or s.get("response") is None:
                continue
            n = 4
            yield Item("cotlab", run, str(s.get("sample_idx", s.get("idx"))), s["response"],
                       tuple(f"option {LETTERS[i]}" for i in range(n)), 1,
                       _letters(pred) if re.fullmatch(r"[A-Da-d]", pred.strip()) else None, "parse")


_AKIWADA_FILE = re.compile(r"(?P<model>.+)_(?P<year>20\d\d)_(?P<block>[A-F])\.json")


def akiwada_items(root: Path) -> Iterator[Item]:
    from jmedllm.benchmarks import igakuqa

    questions = {q.id: q for q in igakuqa.load(root, "ja").questions}
    for path in sorted((root / "akiwada" / "results").glob("*.json")):
        m = _AKIWADA_FILE.fullmatch(path.name)
        if not m:
            continue  # summaries
        data = json.loads(path.read_text(encoding="utf-8"))
        for prompt, rows in (data.get("details") or {}).items():
            for rec in rows:
                q = questions.get(rec.get("problem_id"))
                raw = rec.get("response")
                if q is None or not isinstance(raw, str):
                    continue
                pred = (rec.get("prediction") or "").strip()
                part = f"{m['model']}/{prompt}"
                if len(raw) >= 200:  # the publisher stored only the first 200 characters of each response
                    yield Item("akiwada", part, q.id, raw, q.choices, 1, None, "excluded")
                    continue
                if q.is_numeric:
                    yield Item("akiwada", part, q.id, raw, (), 0, pred if re.fullmatch(r"[\d.]+", pred) else None,
                               "number", template=q.meta.get("answer_template"))
                    continue
                ok = re.fullmatch(rf"[{q.letters}](,[{q.letters}])*", pred)
                yield Item("akiwada", part, q.id, raw, q.choices, max(q.n_select, 1),
                           _letters(pred) if ok else None, "parse")


SOURCES: dict[str, Callable[[Path], Iterator[Item]]] = {
    "igakuqa": igakuqa_items,
    "jmle2026": jmle2026_items,
    "medreason": medreason_items,
    "cotlab": cotlab_items,
    "akiwada": akiwada_items,
}
