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
``akiwada``     aki-wada/IgakuQA-evaluation           ``results/*_<year>_<block>.json``: ``response``
                (``results/``; questions from the     vs ``prediction`` per prompt (IgakuQA 2018-2022,
                ``igakuqa`` folder)                   local models incl. reasoning models)
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


# ---------------------------------------------------------------------------
# comparison
# ---------------------------------------------------------------------------

def _number(text: str) -> Decimal | None:
    m = re.search(r"[-−]?\d+(?:,\d{3})*(?:\.\d+)?", text or "")
    return parse_number(m.group(0)) if m else None


def judge(item: Item) -> tuple[bool | None, bool, str, str]:
    """(agrees, unparsed, ours, theirs) for one item; agrees is None where the publisher has no parse."""
    if item.kind == "excluded":
        return None, False, "", ""
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


def _akiwada_rule(raw: str) -> tuple[str, str]:
    """Which of the publisher's documented parse rules (evaluate_prompt_comparison.py, described
    in docs/scoring.md) produces its reading of ``raw``: (rule, letters). Written from the
    description, not copied."""
    low = raw.lower()
    for wide, narrow in zip("ａｂｃｄｅ", "abcde"):
        low = low.replace(wide, narrow)
    head = re.match(r"^([a-e](?:\s*[,、]\s*[a-e])*)\s*$", low.split("\n")[0].strip())
    if head:
        return "first line is only letters", "".join(sorted(set(re.findall("[a-e]", head.group(1)))))
    for rx in (r"正解[は:：]\s*\*{0,2}\s*([a-e](?:\s*[,、]\s*[a-e])*)", r"選択肢は\s*\*{0,2}\s*([a-e](?:\s*[,、]\s*[a-e])*)"):
        m = re.search(rx, low)
        if m:
            return "FIRST '正解は' / '選択肢は'", "".join(sorted(set(re.findall("[a-e]", m.group(1)))))
    for rx in (r"答え[:：]\s*([a-e,\s]+)", r"回答[:：]\s*([a-e,\s]+)"):
        m = re.search(rx, low)
        if m and re.findall("[a-e]", m.group(1)):
            return ("FIRST '答え:' followed by any a-e letters (also the first letter of a word: 'DPP-4' reads d)",
                    "".join(sorted(set(re.findall("[a-e]", m.group(1))))))
    letters = "".join(sorted(set(re.findall("[a-e]", low[:20]))))
    return "fallback: every a-e letter in the first 20 characters", letters


def explain(item: Item, ours: str, theirs: str) -> str:
    """The publisher behaviour that explains a disagreement, read off the item; "" when none does.

    Each rule names a reading the publisher's own parser makes and jmedllm deliberately does not."""
    ours_letters = ours.split(" ")[0].strip("-")
    raw = item.raw
    if item.kind == "number":
        if re.fullmatch(r"\d(?:\s+\d)+", theirs.strip()) and re.sub(r"\s", "", theirs) == ours.replace(".", ""):
            return "mark-sheet digits written with spaces: the publisher kept the string and its own check marks it wrong"
        return ""
    if item.kind == "verdict":
        gold = "".join(LETTERS[i] for i in sorted(item.gold))
        if item.reference and len(ours_letters) > 1 and gold in ours_letters:
            return "the model named several choices; the publisher's parser kept the first one"
        if item.reference and not ours_letters:
            return ("no single choice named (a hedge 'A or C', 'none of the above', 'not A', 'unknown', "
                    "a letter beyond the choices); the publisher's parser still found the gold letter")
        if not item.reference and ours_letters == gold:
            return "the publisher's parser missed a stated answer ('D--text', a quoted '\"C\"', the choice text)"
        return ""
    if not ours_letters and re.search(r"<think>", raw) and not re.search(r"</think>", raw):
        return "no answer: the reasoning block never closed (cut by the token limit); the publisher read a letter anyway"
    if item.source == "akiwada":
        rule, letters = _akiwada_rule(raw)
        if letters == theirs:
            return f"publisher rule: {rule}"
        if not ours_letters and theirs != "-" and all(c in raw.lower()[:80] for c in theirs):
            return ("no answer in the response (reasoning cut by the token limit); the publisher's fallback "
                    "read a-e letters out of its opening words ('analyze' -> a, e)")
        extra = set(theirs) - set(ours_letters)
        if ours_letters and theirs != "-" and set(ours_letters) <= set(theirs) and all(
                c in raw.lower()[:80] for c in extra):
            return ("the publisher's fallback added a-e letters from words near the start of the response "
                    "('AML' -> a, 'ACTH' -> a, c), beyond the answer the response opens with")
    if not ours_letters and re.search(r"<think>", raw) and not re.search(r"</think>", raw):
        return "no answer: the reasoning block never closed (cut by the token limit); the publisher read a letter anyway"
    if ours_letters and theirs != "-" and len(ours_letters) > len(theirs) and set(theirs) < set(ours_letters):
        return "the model named several choices; the publisher kept only the first"
    return ""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", required=True, type=Path, help="folder with one subfolder per source")
    ap.add_argument("--source", action="append", choices=sorted(SOURCES), help="only these sources")
    ap.add_argument("--split", choices=("tune", "held-out", "all"), default="all")
    ap.add_argument("--show", type=int, default=20, help="disagreements listed per source (default 20)")
    ap.add_argument("--tail", type=int, default=240, help="characters of the raw output shown")
    ap.add_argument("--explained", action="store_true",
                    help="also list disagreements a known publisher behaviour explains (default: count them only)")
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
                s = stats.setdefault(key, [0, 0, 0, 0, 0, 0])
                if item.kind == "excluded":
                    s[5] += 1
                    continue
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
        reasons: dict[str, int] = {}
        unexplained = []
        for item, ours, theirs in disagreements:
            why = explain(item, ours, theirs)
            reasons[why or "UNEXPLAINED"] = reasons.get(why or "UNEXPLAINED", 0) + 1
            if not why or args.explained:
                unexplained.append((item, ours, theirs, why))
        print(f"\n## {name}: {len(disagreements)} disagreements")
        for why, count in sorted(reasons.items(), key=lambda kv: -kv[1]):
            print(f"  {count:5d}  {why}")
        for item, ours, theirs, why in unexplained:
            if shown >= args.show:
                break
            shown += 1
            tail = item.raw.strip()[-args.tail:].replace("\n", "⏎")
            print(f"- [{split_of(item)}] {item.part} {item.qid}: jmedllm {ours} | publisher {theirs}"
                  f"{' | ' + why if why else ''} | …{tail}")
    print("\n| source | split / part | items | agree | agreement | unparsed | publisher no parse (jmedllm read) "
          "| excluded |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, key, n, a, u, pn, pr, ex in rows:
        bold = "**" if ":" not in key else ""
        rate = f"{100 * a / n:.2f} %" if n else "-"
        unp = f"{u} ({100 * u / n:.2f} %)" if n else "-"
        print(f"| {name} | {bold}{key}{bold} | {n} | {a} | {rate} | {unp} | {pn} ({pr}) | {ex} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
