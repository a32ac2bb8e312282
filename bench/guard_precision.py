"""Recall and false flags of the contamination guard, measured on real exam items, tune and held-out.

    PYTHONPATH=src python bench/guard_precision.py --data-root ../shared/data [--split tune|held-out|all]
        [--generic-df 5 --threshold 0.5 --min-informative 30 --choice-share 0.5] [--show 10]

Each *setting* is an evaluation exam and the real exams used as training data against it:

  tune      IgakuQA 2022 (ja)  vs IgakuQA 2018-2021 (ja), YakugakuQA 2012-2024 (the pharmacist exam,
                                  standing in for another licensing exam used as training data, such as a
                                  dental exam: shared drug names, generic stems)
            IgakuQA 2022 (en)  vs IgakuQA 2018-2021 (en)   (the exam's English edition: English generic stems)
  held-out  IgakuQA 2025 (ja, the 119th exam)  vs IgakuQA 2018-2022 (ja)
            MedQA-USMLE test (en)               vs MMLU medical subjects, MedMCQA dev (en)
            YakugakuQA 2024 (ja)                vs YakugakuQA 2012-2023 (ja)

The thresholds were chosen on the tune settings only; the held-out ones were run afterwards.

Recall: every evaluation item with a stem of at least 40 characters is planted into its own training
record (after an unrelated sentence) with graded edits:
  verbatim        stem and choices as written;
  reordered       choices in reverse order, relabelled;
  edited_stem     every number changed (+1), the first and the next-to-last sentences swapped, choices kept;
  stem_only       the stem alone, no choices (a vignette copied into a corpus);
  translated      (IgakuQA 2022 only) the item's English edition, checked against the Japanese exam alone
                  (cross-language matching is not supported) and against the exam with its English
                  edition guarded too, as the demo does.
False flags: every item of the training exams is a record; a flag is a record matched to an evaluation
item. These are real items from other exams or years, mostly not duplicates; every flag is listed with
its stem share, whole-item share and choice share so that the reader can judge whether it is a true
repeat. The guard's reference items (what teaches it generic phrasing: every benchmark under the data
root) leave out the training exam's own items here, as for a user's exam the guard has never seen.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

FILLER = {"ja": "高血圧の治療では生活習慣の改善が基本となる。", "en": "Lifestyle change is the basis of treating hypertension."}


@dataclass(frozen=True)
class Setting:
    name: str
    split: str
    evaluation: tuple[str, ...]
    language: str
    training: tuple[tuple[str, str], ...]  # (name, benchmark spec)
    translation: str | None = None  # the evaluation exam's English edition, for the translated plant


SETTINGS = (
    Setting("IgakuQA 2022 (ja)", "tune", ("igakuqa:2022",), "ja",
            (("IgakuQA 2018-2021 (ja)", "igakuqa:2018-2021"), ("YakugakuQA 2012-2024 (ja)", "yakugakuqa")),
            translation="igakuqa-en:2022"),
    Setting("IgakuQA 2022 (en)", "tune", ("igakuqa-en:2022",), "en",
            (("IgakuQA 2018-2021 (en)", "igakuqa-en:2018-2021"),)),
    Setting("IgakuQA 2025 (ja)", "held-out", ("igakuqa119",), "ja",
            (("IgakuQA 2018-2022 (ja)", "igakuqa"),)),
    Setting("MedQA-USMLE test (en)", "held-out", ("medqa",), "en",
            (("MMLU medical (en)", "mmlu-med"), ("MedMCQA dev (en)", "medmcqa"))),
    Setting("YakugakuQA 2024 (ja)", "held-out", ("yakugakuqa:2024",), "ja",
            (("YakugakuQA 2012-2023 (ja)", "yakugakuqa:2012-2023"),)),
)


def lettered(stem: str, choices) -> str:
    return stem + "\n" + "\n".join(f"{'abcdefgh'[i]}. {c}" for i, c in enumerate(choices))


def edited(stem: str) -> str:
    """Every number +1, the first and the next-to-last sentences swapped (when there are three or more)."""
    sentences = [s for s in re.split(r"(?<=[。.?!])\s*", stem) if s]
    if len(sentences) >= 3:
        sentences[0], sentences[-2] = sentences[-2], sentences[0]
    joined = ("" if re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", stem) else " ").join(sentences)
    return re.sub(r"\d+", lambda m: str(int(m.group()) + 1), joined)


def planted_records(questions, language: str, translation=None):
    from jmedllm.train.contamination import TrainingText

    filler = FILLER[language]
    out: dict[str, list] = {k: [] for k in ("verbatim", "reordered", "edited_stem", "stem_only")}
    translated = []
    en = {q.id: q for q in translation or ()}
    for q in questions:
        stem = ((q.context or "") + "\n" + q.text).strip()
        if len(stem) < 40 or not q.choices:
            continue
        out["verbatim"].append(TrainingText(q.id, filler + "\n" + lettered(stem, q.choices)))
        out["reordered"].append(TrainingText(q.id, filler + "\n" + lettered(stem, q.choices[::-1])))
        out["edited_stem"].append(TrainingText(q.id, filler + "\n" + lettered(edited(stem), q.choices)))
        out["stem_only"].append(TrainingText(q.id, filler + "\n" + stem))
        if q.id in en:
            e = en[q.id]
            translated.append(TrainingText(q.id, FILLER["en"] + "\n" + lettered(((e.context or "") + "\n" + e.text).strip(),
                                                                                e.choices)))
    return out, translated


def as_records(questions):
    from jmedllm.train.contamination import TrainingText

    return [TrainingText(f"{q.benchmark}:{q.id}", "\n".join([q.context or "", q.text, *q.choices])) for q in questions]


def measure(setting: Setting, root: Path, reference, kw: dict, show: int) -> dict:
    from jmedllm.benchmarks import load_benchmark
    from jmedllm.train.contamination import EvalItem, check_contamination
    from jmedllm.train.guard_index import ItemIndex

    settings = {k: kw[k] for k in ("threshold", "min_informative", "choice_share")}
    questions = [q for spec in setting.evaluation for q in load_benchmark(spec, root).questions]
    items = [EvalItem.from_question(q) for q in questions]
    translation = list(load_benchmark(setting.translation, root).questions) if setting.translation else None
    index = ItemIndex(items, 13, kw["generic_df"], reference)
    result: dict = {"setting": setting.name, "split": setting.split, "items": len(items), "recall": {}, "false": {}}
    print(f"\n== {setting.name} [{setting.split}]: {len(items)} evaluation items")
    planted, translated = planted_records(questions, setting.language, translation)
    for kind, records in planted.items():
        report = check_contamination(records, items, generic_df=kw["generic_df"], index=index, **settings)
        caught = {o.record for o in report.overlaps if o.item_id == o.record}
        result["recall"][kind] = (len(caught), len(records))
        print(f"  recall {kind:12s} {len(caught):5d} / {len(records):5d}  ({100 * len(caught) / max(1, len(records)):.1f} %)")
    if translated:
        report = check_contamination(translated, items, generic_df=kw["generic_df"], index=index, **settings)
        caught = {o.record for o in report.overlaps if o.item_id == o.record}
        result["recall"]["translated (Japanese exam alone)"] = (len(caught), len(translated))
        print(f"  recall translated, Japanese exam alone         {len(caught):5d} / {len(translated):5d}")
        both = items + [EvalItem.from_question(q) for q in translation]
        report = check_contamination(translated, both, generic_df=kw["generic_df"], reference=reference, **settings)
        caught = {o.record for o in report.overlaps if o.item_id == o.record}
        result["recall"]["translated (English edition guarded too)"] = (len(caught), len(translated))
        print(f"  recall translated, English edition guarded too {len(caught):5d} / {len(translated):5d}")
    for name, spec in setting.training:
        train = list(load_benchmark(spec, root).questions)
        own = {(q.benchmark, q.id) for q in train}
        ref = [r for r in reference if (r.benchmark, r.item_id) not in own]
        report = check_contamination(as_records(train), items, generic_df=kw["generic_df"], reference=ref, **settings)
        flagged = sorted({o.record for o in report.overlaps})
        result["false"][name] = (len(flagged), len(train))
        print(f"  flags  {name:26s} {len(flagged):4d} of {len(train):5d} training items "
              f"({1000 * len(flagged) / len(train):.1f} per 1,000)")
        for o in report.overlaps[:show]:
            print(f"      {o.kind:5s} stem {o.score:.2f} item {o.item:.2f} choices {o.choices:.2f}  "
                  f"{o.item_id} <- {o.record}  [{o.question[:50]}]")
    return result


def main(argv=None) -> int:
    from jmedllm.train.contamination import reference_items

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", type=Path, required=True)
    ap.add_argument("--split", choices=("tune", "held-out", "all"), default="all")
    ap.add_argument("--threshold", type=float, default=0.4)
    ap.add_argument("--generic-df", type=int, default=5)
    ap.add_argument("--min-informative", type=int, default=30)
    ap.add_argument("--choice-share", type=float, default=0.5)
    ap.add_argument("--show", type=int, default=10)
    args = ap.parse_args(argv)
    kw = dict(threshold=args.threshold, generic_df=args.generic_df, min_informative=args.min_informative,
              choice_share=args.choice_share)
    t0 = time.perf_counter()
    reference = reference_items(args.data_root, "all")
    print(f"settings {kw}; reference: {len(reference)} items of every benchmark under the data root")
    for setting in SETTINGS:
        if args.split in ("all", setting.split):
            measure(setting, args.data_root, reference, kw, args.show)
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
