"""Contamination guard: does the training text contain evaluation questions?

Before any training run, every training record (a corpus document, an instruction example)
is compared with the evaluation benchmarks' questions. Both sides are normalised first
(NFKC, case-folded, only letters and digits kept: whitespace, punctuation and symbols removed), so that
full-width / half-width, spacing and punctuation edits do not hide a copy.

An evaluation item is its stem (a serial group's shared vignette, then the question) plus its
choices, each a *segment*; its fingerprint is the set of character n-grams (``ngram``, default 13)
of every segment; a segment shorter than ``ngram`` is matched as a substring. The whole item is
weighed, so that what many items share never flags one of them:

- **informative** n-grams are those found in fewer than ``generic_df`` (default 5) exam items known
  to the guard: the evaluation items and the *reference* items (``contamination.reference``: every
  benchmark under the data root, other exams and years, both languages). Generic phrasing
  (「この患者に投与すべきなのはどれか。」, "Which medication should be administered immediately?",
  "Which of the following is not a cause of") and drug names that are choices in many items are
  not evidence of a copy;
- **near**: at least ``threshold`` (default 0.4) of the stem's informative n-grams *and* at least
  ``threshold`` of the whole item's informative n-grams (stem and choices) occur in the record; a
  short stem (fewer than ``min_informative``, default 30, informative n-grams) counts only with at
  least ``choice_share`` (0.5) of its choices. So a short question shared word for word ("Which
  statement made by a patient strongly suggests schizophrenia?") over other choices is another
  item, while a vignette copied into a long document is caught, and a lightly edited one (another
  age, a swapped word, reordered choices: each edit breaks at most ``ngram`` n-grams) still shares
  most of its n-grams;
- **exact**: every segment (stem and all choices) occurs in the normalised record, or a stem that
  passes the rule above occurs whole (at least ``min_exact_chars`` characters).

Choices alone never flag (two exams share drug-name choice lists), nor does a generic stem alone.
The thresholds were chosen on tune exams and checked on held-out ones with
``bench/guard_precision.py`` (docs/training.md). Matching is within one language: a translated copy
is caught when the exam's other-language edition is guarded too (``igakuqa-en`` beside ``igakuqa``).

Items with no segment of ``ngram`` characters cannot be attributed to a record by text and are
counted as unchecked in the report (never silently). The search uses an inverted index from
n-gram hashes to items (numpy sorted arrays), so a record costs one pass over its own n-grams.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from jmedllm.errors import UserError
from jmedllm.train.guard_index import ItemIndex, ReferenceTable, ngram_hashes, normalize_for_match

__all__ = ["ContaminationError", "ContaminationReport", "EvalItem", "Overlap", "ReferenceTable", "TrainingText",
           "check_contamination", "evaluation_items", "ngram_hashes", "normalize_for_match", "reference_items",
           "reference_table"]

@dataclass(frozen=True)
class EvalItem:
    """An evaluation question as the guard sees it."""

    benchmark: str
    item_id: str
    stem: str
    choices: tuple[str, ...] = ()
    context: str = ""  # a vignette shared by a serial group: part of the item's stem

    @classmethod
    def from_question(cls, question: Any) -> "EvalItem":
        return cls(question.benchmark, question.id, question.text, tuple(question.choices), question.context or "")


@dataclass(frozen=True)
class TrainingText:
    """A training record as the guard sees it: where it comes from and its text."""

    location: str  # "file:line", "file#article", or an instruction id with its file and line
    text: str


@dataclass(frozen=True)
class Overlap:
    benchmark: str
    item_id: str
    record: str  # TrainingText.location
    kind: str  # "exact" or "near"
    score: float  # share of the item's informative stem n-grams found in the record
    question: str  # the start of the evaluation question, for the reader
    choices: float = 0.0  # share of the item's choices found in the record
    item: float = 0.0  # share of the informative n-grams of the whole item (stem and choices) found


@dataclass
class ContaminationReport:
    overlaps: list[Overlap] = field(default_factory=list)
    records: int = 0
    items: int = 0
    unchecked_items: int = 0
    benchmarks: list[str] = field(default_factory=list)
    missing_benchmarks: list[str] = field(default_factory=list)  # registered, but not under the data root
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not self.overlaps

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["clean"] = self.clean
        d["overlapping_items"] = len({(o.benchmark, o.item_id) for o in self.overlaps})
        d["overlapping_records"] = len({o.record for o in self.overlaps})
        return d

    def format(self, limit: int = 20) -> str:
        """A human-readable report: counts, then one line per overlap (the first ``limit``)."""
        head = (f"contamination check: {self.records} training records vs {self.items} evaluation items "
                f"({', '.join(self.benchmarks) or 'none'}); ngram={self.settings.get('ngram')}, "
                f"threshold={self.settings.get('threshold')}")
        if self.unchecked_items:
            head += f"; {self.unchecked_items} items too short to check"
        if self.missing_benchmarks:
            head += f"; not found under the data root: {', '.join(self.missing_benchmarks)}"
        if self.clean:
            return head + "\nno overlap found"
        d = self.to_dict()
        lines = [head, f"{len(self.overlaps)} overlaps: {d['overlapping_items']} evaluation items "
                       f"in {d['overlapping_records']} training records"]
        for o in self.overlaps[:limit]:
            q = o.question.replace("\n", " ")
            lines.append(f"  {o.kind:5s} {o.score:.2f}  {o.benchmark} {o.item_id}  <-  {o.record}   [{q}]")
        if len(self.overlaps) > limit:
            lines.append(f"  ... and {len(self.overlaps) - limit} more (see the JSON report)")
        return "\n".join(lines)

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
        return path


class ContaminationError(UserError):
    """Training text overlaps evaluation questions; carries the report."""

    def __init__(self, report: ContaminationReport, hint: str = ""):
        self.report = report
        super().__init__(report.format() + (f"\n{hint}" if hint else ""))


def check_contamination(
    records: Iterable[TrainingText],
    items: Sequence[EvalItem],
    *,
    ngram: int = 13,
    threshold: float = 0.4,
    min_exact_chars: int = 20,
    generic_df: int = 5,
    min_informative: int = 30,
    choice_share: float = 0.5,
    reference: Sequence[EvalItem] | ReferenceTable = (),
    index: ItemIndex | None = None,
) -> ContaminationReport:
    """Compare every training record with every evaluation item; return the overlaps found.

    An item is flagged when the record holds the item as a whole (stem and every choice: exact), or
    (near; exact when the whole stem is there) when the record holds at least ``threshold`` of the
    item's informative stem n-grams *and* at least ``threshold`` of the informative n-grams of the whole
    item (stem and choices) -- and, for a short stem (fewer than ``min_informative`` informative
    n-grams), at least ``choice_share`` of its choices. Informative: found in fewer than ``generic_df``
    exam items, counting ``items`` and ``reference`` (other exams; 0: every n-gram counts). So choices
    alone never flag, nor a generic stem, nor a short stem beside other choices. ``index``: an
    ItemIndex already built from ``items`` with these ``ngram``, ``generic_df`` and ``reference``
    (to check many record sets against one evaluation set).
    """
    import numpy as np

    if ngram < 2:
        raise ValueError(f"ngram must be at least 2, got {ngram}")
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    if index is None:
        index = ItemIndex(items, ngram, generic_df, reference)
    report = ContaminationReport(
        items=len(items),
        unchecked_items=index.unchecked,
        benchmarks=sorted({i.benchmark for i in items}),
        settings={"ngram": ngram, "threshold": threshold, "min_exact_chars": min_exact_chars,
                  "generic_df": generic_df, "min_informative": min_informative, "choice_share": choice_share,
                  "reference_items": len(reference.members) if isinstance(reference, ReferenceTable) else len(reference),
                  "normalisation": "NFKC, casefold, letters and digits only"},
    )
    n_stem, n_whole = index.n_stem, index.n_stem + index.n_choice
    long_stem = n_stem >= min_informative
    for record in records:
        report.records += 1
        text = normalize_for_match(record.text)
        hits, stem_hits, choice_hits = index.hits(ngram_hashes(text, ngram))
        # Candidates: the stem rule can fire, or every indexed n-gram of the item is present (whole item).
        possible = (hits > 0) & (((n_stem > 0) & (stem_hits >= threshold * n_stem)) | (hits >= index.n_grams))
        for i in np.flatnonzero(possible):
            segs = index.segments[i]
            stem = index.stems[i]
            choices = segs[1:] if segs and segs[0] == stem else segs
            found = sum(1 for c in choices if c in text) / len(choices) if choices else 1.0
            share = float(stem_hits[i]) / float(n_stem[i]) if n_stem[i] else 0.0
            whole = float(stem_hits[i] + choice_hits[i]) / float(n_whole[i]) if n_whole[i] else 0.0
            stem_ok = (share >= threshold and whole >= threshold
                       and (bool(long_stem[i]) or found >= choice_share))
            exact = all(s in text for s in segs) or (stem_ok and len(stem) >= min_exact_chars and stem in text)
            if exact or stem_ok:
                item = index.items[i]
                report.overlaps.append(Overlap(
                    benchmark=item.benchmark, item_id=item.item_id, record=record.location,
                    kind="exact" if exact else "near", score=round(share, 4), question=item.stem[:80],
                    choices=round(found, 4), item=round(whole, 4),
                ))
    report.overlaps.sort(key=lambda o: (o.kind != "exact", -o.score, o.benchmark, o.item_id, o.record))
    return report


def evaluation_items(data_root: Path, benchmarks: Sequence[str] | str = "all",
                     exclude: Sequence[str] = ()) -> tuple[list[EvalItem], list[str], list[str]]:
    """The questions of the evaluation benchmarks to guard, read with jmedllm.benchmarks.

    ``"all"``: every registered benchmark (``jmedllm data list``) whose files are under ``data_root``;
    a benchmark with a default split (PubMedQA's test split) is read whole (``split=all``), since any
    of its questions may be evaluated. Named benchmarks (any spec, e.g. ``igakuqa:2022``) must load.
    Returns the items, the benchmarks read, and the registered ones not found under the data root.
    """
    from jmedllm.benchmarks import BENCHMARKS, LoaderError, load_benchmark

    excluded = set(exclude)
    missing: list[str] = []
    if benchmarks == "all" or list(benchmarks) == ["all"]:
        specs = [n for n in BENCHMARKS if n not in excluded]
        optional = True
    else:
        specs = [b for b in benchmarks if b not in excluded and b.split(":")[0] not in excluded]
        optional = False
    items: list[EvalItem] = []
    read: list[str] = []
    for spec in specs:
        name = spec.split(":")[0]
        extra = {"split": "all"} if optional and name in BENCHMARKS and BENCHMARKS[name].default.split else {}
        try:
            bench = load_benchmark(spec, data_root, **extra)
        except LoaderError as exc:
            if optional and exc.message == "file not found":
                missing.append(spec)
                continue
            raise UserError(f"contamination check: cannot read benchmark {spec!r}: {exc}") from None
        except (FileNotFoundError, ValueError) as exc:
            raise UserError(f"contamination check: cannot read benchmark {spec!r}: {exc}") from None
        read.append(bench.name)
        items.extend(EvalItem.from_question(q) for q in bench.questions)
    return items, read, missing


def reference_items(data_root: Path, benchmarks: Sequence[str] | str = "all") -> list[EvalItem]:
    """Exam items that teach the guard what exam *phrasing* is (``contamination.reference``): every
    registered benchmark under ``data_root`` (``"all"``), or the named ones; ``[]``: none. An n-gram
    that many of these items share (a generic stem, a common drug name) never counts as a copy."""
    specs = [benchmarks] if isinstance(benchmarks, str) and benchmarks != "all" else benchmarks
    if not specs:
        return []
    return evaluation_items(data_root, specs)[0]


_TABLES: dict[tuple[str, str, int], ReferenceTable] = {}


def reference_table(data_root: Path, benchmarks: Sequence[str] | str = "all", ngram: int = 13) -> ReferenceTable:
    """The n-gram document frequencies of ``reference_items(data_root, benchmarks)``, read and hashed once
    per process (the data root is read-only input; every later guard in the process reuses them)."""
    key = (str(Path(data_root).resolve()), repr(benchmarks), ngram)
    if key not in _TABLES:
        if len(_TABLES) >= 2:
            _TABLES.clear()
        _TABLES[key] = ReferenceTable.build(reference_items(data_root, benchmarks), ngram)
    return _TABLES[key]
