"""Precision and recall of the contamination guard, measured on real exam items.

    PYTHONPATH=src python bench/guard_precision.py --data-root ../shared/data [--generic-df 5 --threshold 0.5]

Evaluation set: IgakuQA 2022 (the 116th exam), as in the demo.

Recall: every 2022 item with a stem of at least 40 characters is planted into a training record
(after an unrelated paragraph) with graded edits:
  verbatim        stem and choices as written;
  reordered       choices in reverse order, relabelled;
  edited_stem     every number changed, the first and last sentences of the stem swapped, choices kept;
  stem_only       the stem alone, no choices (a vignette copied into a corpus);
  translated      the item's English translation (IgakuQA's own machine translation).
False flags: real items that are not duplicates of a 2022 item --
  IgakuQA 2018-2021 (four other exams: generic stems, shared drug-name choice lists) as training data;
  YakugakuQA 2012-2024 (the pharmacist exam, standing in for another licensing exam, e.g. a dental
  exam used as training data: shared drug names, generic stems).
  recombined: a short 2022 stem followed by another 2022 item's choices, and a 2022 item's choices
  under another item's stem (non-duplicates by construction: a shared stem, a shared choice list).
Every flag on these is listed with its stem share and choice share, so the reader can judge whether
it is a true repeat across years; the figure reported is flags per 1,000 training items.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path


def planted_records(items_ja, items_en):
    from jmedllm.train.contamination import TrainingText

    filler = "高血圧の治療では生活習慣の改善が基本となる。"
    en_by_id = {q.id: q for q in items_en}
    out: dict[str, list] = {k: [] for k in ("verbatim", "reordered", "edited_stem", "stem_only", "translated")}
    for q in items_ja:
        if len(q.text) < 40 or not q.choices:
            continue

        def item(stem, choices):
            return filler + "\n" + stem + "\n" + "\n".join(f"{'abcdefgh'[i]}. {c}" for i, c in enumerate(choices))

        out["verbatim"].append(TrainingText(q.id, item(q.text, q.choices)))
        out["reordered"].append(TrainingText(q.id, item(q.text, q.choices[::-1])))
        sentences = [s for s in re.split(r"(?<=。)", q.text) if s]
        if len(sentences) >= 3:
            sentences[0], sentences[-2] = sentences[-2], sentences[0]
        edited = re.sub(r"\d+", lambda m: str(int(m.group()) + 1), "".join(sentences))
        out["edited_stem"].append(TrainingText(q.id, item(edited, q.choices)))
        out["stem_only"].append(TrainingText(q.id, filler + q.text))
        if q.id in en_by_id:
            e = en_by_id[q.id]
            out["translated"].append(TrainingText(q.id, item(e.text, e.choices)))
    return out


def recombined_records(items_ja):
    """Real texts recombined into non-duplicates: a short stem with another item's choices, and an
    item's choices under another item's stem (what a different exam shares with this one)."""
    from jmedllm.train.contamination import TrainingText

    with_choices = [q for q in items_ja if q.choices]
    out = {"same_stem_other_choices": [], "same_choices_other_stem": []}
    for k, q in enumerate(with_choices):
        other = with_choices[(k + 7) % len(with_choices)]
        if len(q.text) < 40:
            out["same_stem_other_choices"].append(TrainingText(q.id, q.text + "\n" + "\n".join(other.choices)))
        out["same_choices_other_stem"].append(TrainingText(q.id, other.text + "\n" + "\n".join(q.choices)))
    return out


def main(argv=None) -> int:
    from jmedllm.benchmarks import load_benchmark
    from jmedllm.train.contamination import EvalItem, TrainingText, check_contamination

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", type=Path, required=True)
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--generic-df", type=int, default=5)
    ap.add_argument("--min-informative", type=int, default=30)
    ap.add_argument("--choice-share", type=float, default=0.5)
    ap.add_argument("--show", type=int, default=10)
    args = ap.parse_args(argv)
    kw = dict(threshold=args.threshold, generic_df=args.generic_df, min_informative=args.min_informative,
              choice_share=args.choice_share)

    t0 = time.perf_counter()
    ja = list(load_benchmark("igakuqa:2022", args.data_root).questions)
    en = list(load_benchmark("igakuqa-en:2022", args.data_root).questions)
    items = [EvalItem.from_question(q) for q in ja]
    print(f"evaluation items: {len(items)} (IgakuQA 2022); settings {kw}")

    print("\nrecall on planted items (each planted once, in its own record):")
    for kind, records in planted_records(ja, en).items():
        report = check_contamination(records, items, **kw)
        caught = {o.record for o in report.overlaps if o.item_id == o.record}
        print(f"  {kind:12s} {len(caught):4d} / {len(records):4d} caught  ({100 * len(caught) / max(1, len(records)):.1f} %)")

    print("\nfalse flags on recombined real texts (not duplicates by construction):")
    for kind, records in recombined_records(ja).items():
        report = check_contamination(records, items, **kw)
        wrong = {o.record for o in report.overlaps if o.item_id == o.record}
        print(f"  {kind:24s} {len(wrong):4d} / {len(records):4d} flagged")

    print("\nfalse flags on real items of other exams (training data):")
    for name, spec in (("IgakuQA 2018-2021", "igakuqa:2018-2021"), ("YakugakuQA 2012-2024", "yakugakuqa")):
        qs = list(load_benchmark(spec, args.data_root).questions)
        records = [TrainingText(f"{q.benchmark}:{q.id}", "\n".join(
            [q.context or "", q.text, *q.choices])) for q in qs]
        report = check_contamination(records, items, **kw)
        flagged = sorted({o.record for o in report.overlaps})
        print(f"  {name:22s} {len(qs):5d} items, {len(flagged):3d} flagged "
              f"({1000 * len(flagged) / len(qs):.1f} per 1,000)")
        for o in report.overlaps[: args.show]:
            print(f"      {o.kind:5s} stem {o.score:.2f} choices {o.choices:.2f}  {o.item_id} <- {o.record}  "
                  f"[{o.question[:40]}]")
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
