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
read after it was frozen), fixed in ``extraction_sources.split_of`` before any tuning. A missing folder
is reported and skipped. Prints per source and split: items, agreement with the
publisher, unparsed rate; then up to ``--show`` disagreements per source with both readings.
No model runs here; the extractor is pure, so the figures do not depend on load.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from decimal import Decimal
from pathlib import Path

from jmedllm.schema import LETTERS
from jmedllm.scoring.extract import extract_choices, extract_number, parse_number, template_digits


from extraction_sources import SOURCES, Item, split_of  # noqa: E402  (a sibling script module)


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


def _cotlab_rule(raw: str) -> tuple[str, str]:
    """Which step of the publisher's documented parser (CoTLab ``MCQPromptStrategy.parse_response``,
    described in docs/scoring.md) gives its reading of ``raw``. Written from the description."""
    obj = re.search(r"\{[^{}]*\}", raw, re.DOTALL)
    if obj:
        try:
            value = json.loads(obj.group())
            if isinstance(value, dict):
                return "the FIRST JSON object's 'answer'", str(value.get("answer", "")).strip().lower()
        except json.JSONDecodeError:
            pass
    steps = (
        ("the FIRST 'answer' / 'choice' / 'selection' followed by any letter (the echoed instruction "
         "'best answer (A, B, C, or D)' reads A, 'answer is' reads I)", r"(?:answer|selection|choice)[:\s]*([A-Z])"),
        ("the FIRST 'X is the correct'", r"\b([A-Z])\s*(?:is|would be)\s+(?:the\s+)?(?:correct|best|right)"),
        ("the FIRST line opening with 'X)' / 'X.' / 'X:'", r"(?:^|\n)\s*([A-Z])\s*(?:\)|\.|\:)"),
        ("the FIRST '**X**'", r"\*\*([A-Z])\*\*"),
    )
    for name, rx in steps:
        m = re.search(rx, raw, re.IGNORECASE)
        if m:
            return name, m.group(1).lower()
    lone = re.findall(r"\b([A-Z])\b", raw)
    return "the LAST lone capital letter", lone[-1].lower() if lone else ""


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
    if item.source == "cotlab":
        rule, letters = _cotlab_rule(raw)
        if letters == theirs:
            return f"publisher rule: {rule}"
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
    ap.add_argument("--listing", type=Path, help="write every disagreement, with its explanation, to this Markdown file")
    ap.add_argument("--explained", action="store_true",
                    help="also list disagreements a known publisher behaviour explains (default: count them only)")
    args = ap.parse_args(argv)
    rows = []
    listing: list[str] = []
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
        listing.append(f"\n## {name}: {len(disagreements)} disagreements\n")
        listing.append("| split | part | item | jmedllm | publisher | explanation |")
        listing.append("|---|---|---|---|---|---|")
        for item, ours, theirs in disagreements:
            why = explain(item, ours, theirs) or "see docs/scoring.md (read by hand)"
            listing.append(f"| {split_of(item)} | {item.part} | {item.qid} | {ours} | {theirs} | {why} |")
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
    if args.listing:
        args.listing.write_text(
            "# Every disagreement with the publishers' parses\n\nWritten by `bench/extraction_agreement.py "
            "--listing`; see docs/scoring.md for the sources and the explanations.\n" + "\n".join(listing) + "\n",
            encoding="utf-8")
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
