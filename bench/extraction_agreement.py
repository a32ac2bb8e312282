"""Agreement of jmedllm's answer extraction with the parses / verdicts that publishers of
real model outputs made themselves.

    PYTHONPATH=src python bench/extraction_agreement.py --root /work/extdata [--show 20]

``--root`` holds one folder per source, each in its repository's own layout (a fresh
``git clone`` of the repository, or the files copied out of it):

==============  ====================================  =============================================
folder          repository                            what is compared
==============  ====================================  =============================================
``igakuqa``     jungokasai/IgakuQA                    ``baseline_results/*/*.jsonl``: ``explanation``
                (``data/`` + ``baseline_results/``)   (raw output) vs ``prediction`` (their parse)
``jmle2026``    naoto-iwase/JMLE2026-Bench            ``results/*.json``: ``raw_response`` vs
                (``jmle2026_dataset.json`` +          ``predicted`` (``parse_success``), 120th exam
                ``results/``)
``medreason``   vlievin/medical-reasoning             ``docs/samples/*.html``: each completion vs
                (``docs/samples/``)                   its ✅/❌ verdict against the bold gold option
``cotlab``      huseyincavusbi/CoTLab_benchmarks      ``**/results.json``: ``response`` vs
                                                      ``predicted`` (MedQA / MedMCQA / MMLU runs)
==============  ====================================  =============================================

Each source is split into TUNE (read while the extractor was built) and HELD-OUT (first
read after it was frozen), fixed in ``SPLIT`` below before any tuning. A missing folder
is reported and skipped. Prints per source and split: items, agreement with the
publisher, unparsed rate; then up to ``--show`` disagreements per source with both readings.
No model runs here; the extractor is pure, so the figures do not depend on load.
"""

from __future__ import annotations

import argparse
import glob
import html
import json
import re
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Callable, Iterator

from jmedllm.schema import LETTERS
from jmedllm.scoring.extract import extract_choices, extract_number, parse_number, template_digits


@dataclass(frozen=True)
class Item:
    source: str
    part: str  # model / prompt / file within the source
    qid: str
    raw: str
    choices: tuple[str, ...]  # empty: numeric item
    n_select: int
    reference: object  # frozenset of letters / str number (publisher's parse) or bool verdict; None: publisher failed
    kind: str  # "parse" | "number" | "verdict"
    gold: frozenset[int] = frozenset()
    template: str | None = None
    selection: str = "n"


# TUNE or HELD-OUT per (source, part); decided before tuning.
def split_of(item: Item) -> str:
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
                ok = re.fullmatch(rf"[{q.letters}](,[{q.letters}])*", pred)
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


SOURCES: dict[str, Callable[[Path], Iterator[Item]]] = {
    "igakuqa": igakuqa_items,
    "jmle2026": jmle2026_items,
    "medreason": medreason_items,
    "cotlab": cotlab_items,
}


# ---------------------------------------------------------------------------
# comparison
# ---------------------------------------------------------------------------

def _number(text: str) -> Decimal | None:
    m = re.search(r"[-−]?\d+(?:,\d{3})*(?:\.\d+)?", text or "")
    return parse_number(m.group(0)) if m else None


def judge(item: Item) -> tuple[bool | None, bool, str, str]:
    """(agrees, unparsed, ours, theirs) for one item; agrees is None where the publisher has no parse."""
    if item.kind == "number":
        digits, decimals = template_digits(item.template)
        found = extract_number(item.raw, digits=digits, decimals=decimals)
        ours = found.number if found.parsed else None
        theirs = item.reference
        if theirs is None:
            return None, not found.parsed, str(ours), "(no parse)"
        agree = (_number(ours) if ours else None) == _number(theirs)  # type: ignore[arg-type]
        return agree, not found.parsed, str(ours), str(theirs)
    found = extract_choices(item.raw, item.choices, item.n_select, selection=item.selection)
    ours_letters = "".join(LETTERS[i] for i in sorted(found.indices))
    if item.kind == "verdict":
        if item.reference is None:
            return None, not found.parsed, ours_letters or "-", "(no gold shown)"
        ours_ok = found.indices == item.gold
        gold = "".join(LETTERS[i] for i in sorted(item.gold))
        return (ours_ok == item.reference, not found.parsed,
                f"{ours_letters or '-'} [{found.method}] ({'correct' if ours_ok else 'wrong'})",
                f"{'correct' if item.reference else 'wrong'} (gold {gold})")
    if item.reference is None:
        return None, not found.parsed, ours_letters or "-", "(no parse)"
    theirs = "".join(sorted(item.reference))  # type: ignore[arg-type]
    return ours_letters == theirs, not found.parsed, f"{ours_letters or '-'} [{found.method}]", theirs or "-"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", required=True, type=Path, help="folder with one subfolder per source")
    ap.add_argument("--source", action="append", choices=sorted(SOURCES), help="only these sources")
    ap.add_argument("--split", choices=("tune", "held-out", "all"), default="all")
    ap.add_argument("--show", type=int, default=20, help="disagreements listed per source (default 20)")
    ap.add_argument("--tail", type=int, default=240, help="characters of the raw output shown")
    args = ap.parse_args(argv)
    rows = []
    for name in args.source or list(SOURCES):
        if not (args.root / name).is_dir():
            print(f"{name}: folder {args.root / name} not found, skipped")
            continue
        stats: dict[str, list[int]] = {}
        shown = 0
        disagreements = []
        for item in SOURCES[name](args.root):
            split = split_of(item)
            if args.split != "all" and split != args.split:
                continue
            agree, unparsed, ours, theirs = judge(item)
            for key in (split, f"{split}:{item.part}"):
                s = stats.setdefault(key, [0, 0, 0, 0, 0])
                if agree is None:  # the publisher has no parse: counted apart, with how many we read
                    s[3] += 1
                    s[4] += not unparsed
                    continue
                s[0] += 1
                s[1] += agree
                s[2] += unparsed
            if agree is False:
                disagreements.append((item, ours, theirs))
        for key in sorted(stats):
            rows.append((name, key, *stats[key]))
        print(f"\n## {name}: {len(disagreements)} disagreements")
        for item, ours, theirs in disagreements:
            if shown >= args.show:
                break
            shown += 1
            tail = item.raw.strip()[-args.tail:].replace("\n", "⏎")
            print(f"- [{split_of(item)}] {item.part} {item.qid}: jmedllm {ours} | publisher {theirs} | …{tail}")
    print("\n| source | split / part | items | agree | agreement | unparsed | publisher no parse (jmedllm read) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, key, n, a, u, pn, pr in rows:
        bold = "**" if ":" not in key else ""
        rate = f"{100 * a / n:.2f} %" if n else "-"
        unp = f"{u} ({100 * u / n:.2f} %)" if n else "-"
        print(f"| {name} | {bold}{key}{bold} | {n} | {a} | {rate} | {unp} | {pn} ({pr}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
