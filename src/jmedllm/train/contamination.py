"""Contamination guard: does the training text contain evaluation questions?

Before any training run, every training record (a corpus document, an instruction example)
is compared with the evaluation benchmarks' questions. Both sides are normalised first
(NFKC, case-folded, whitespace, punctuation, symbols and control characters removed), so that
full-width / half-width, spacing and punctuation edits do not hide a copy.

An evaluation item is its question stem plus its choices, each a *segment*. Its fingerprint is
the set of character n-grams (``ngram``, default 13) of every segment; a segment shorter than
``ngram`` counts as one piece of its own. For each pair (training record, item):

- **exact**: the normalised stem (at least ``min_exact_chars`` long, default 20) occurs in the
  normalised record, or *every* segment (stem and all choices) does: the whole item is there;
- **near**: otherwise, the share of the item's pieces found in the record (n-grams by hash,
  short segments as substrings) is at least ``threshold`` (default 0.5). This is n-gram
  *containment* of the item in the record, so a question copied into a long document is caught,
  and a question lightly edited (a changed age, a swapped word: each edit breaks at most
  ``ngram`` n-grams) still shares most of its n-grams.

Items with no segment of ``ngram`` characters cannot be attributed to a record by text and are
counted as unchecked in the report (never silently). The search uses an inverted index from
n-gram hashes to items (numpy sorted arrays), so a record costs one pass over its own n-grams.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from jmedllm.cli import UserError

_DROP_CATEGORIES = ("P", "Z", "S", "C")  # punctuation, separators (spaces), symbols, control/format


def normalize_for_match(text: str) -> str:
    """NFKC, case-fold, and drop whitespace, punctuation, symbols and control characters.

    >>> normalize_for_match("Ｑ：５５歳の男性。 胸痛を訴える！")
    'q55歳の男性胸痛を訴える'
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in text if unicodedata.category(ch)[0] not in _DROP_CATEGORIES)


def ngram_hashes(text: str, n: int) -> set[int]:
    """Hashes of the character n-grams of an already normalised text (empty if shorter than n)."""
    return {hash(text[i : i + n]) for i in range(len(text) - n + 1)}


@dataclass(frozen=True)
class EvalItem:
    """An evaluation question as the guard sees it."""

    benchmark: str
    item_id: str
    stem: str
    choices: tuple[str, ...] = ()

    @classmethod
    def from_question(cls, question: Any) -> "EvalItem":
        return cls(question.benchmark, question.id, question.text, tuple(question.choices))


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
    score: float  # share of the item's n-grams found in the record
    question: str  # the start of the evaluation question, for the reader


@dataclass
class ContaminationReport:
    overlaps: list[Overlap] = field(default_factory=list)
    records: int = 0
    items: int = 0
    unchecked_items: int = 0
    benchmarks: list[str] = field(default_factory=list)
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


class _Index:
    """Inverted index: n-gram hash -> items, as two numpy arrays sorted by hash."""

    def __init__(self, items: Sequence[EvalItem], n: int):
        import numpy as np

        self.n = n
        self.items = list(items)
        self.stems: list[str] = []
        self.segments: list[list[str]] = []
        self.short: list[list[str]] = []  # segments shorter than n, checked as substrings
        self.n_grams = np.zeros(len(items), dtype=np.int64)
        self.n_stem_grams = np.zeros(len(items), dtype=np.int64)
        keys: list[int] = []
        owners: list[int] = []
        for i, item in enumerate(self.items):
            stem = normalize_for_match(item.stem)
            segs = [s for s in [stem] + [normalize_for_match(c) for c in item.choices] if s]
            grams: set[int] = set()
            short: list[str] = []
            for s in segs:
                if len(s) >= n:
                    grams |= ngram_hashes(s, n)
                else:
                    short.append(s)
            self.stems.append(stem)
            self.segments.append(segs)
            self.short.append(short)
            self.n_grams[i] = len(grams)
            self.n_stem_grams[i] = len(ngram_hashes(stem, n))
            keys.extend(grams)
            owners.extend([i] * len(grams))
        order = np.argsort(np.asarray(keys, dtype=np.int64), kind="stable")
        self.keys = np.asarray(keys, dtype=np.int64)[order]
        self.owners = np.asarray(owners, dtype=np.int64)[order]

    @property
    def unchecked(self) -> int:
        return int((self.n_grams == 0).sum())

    def hits(self, grams: set[int]):
        """Per item, how many of its n-grams are in ``grams``."""
        import numpy as np

        counts = np.zeros(len(self.items), dtype=np.int64)
        if not grams or not len(self.keys):
            return counts
        q = np.fromiter(grams, dtype=np.int64, count=len(grams))
        lo = np.searchsorted(self.keys, q, "left")
        hi = np.searchsorted(self.keys, q, "right")
        sizes = hi - lo
        keep = sizes > 0
        if not keep.any():
            return counts
        lo, sizes = lo[keep], sizes[keep]
        total = int(sizes.sum())
        starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
        positions = np.arange(total) - starts + np.repeat(lo, sizes)
        return np.bincount(self.owners[positions], minlength=len(self.items))


def check_contamination(
    records: Iterable[TrainingText],
    items: Sequence[EvalItem],
    *,
    ngram: int = 13,
    threshold: float = 0.5,
    min_exact_chars: int = 20,
) -> ContaminationReport:
    """Compare every training record with every evaluation item; return the overlaps found."""
    import numpy as np

    if ngram < 2:
        raise ValueError(f"ngram must be at least 2, got {ngram}")
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    index = _Index(items, ngram)
    report = ContaminationReport(
        items=len(items),
        unchecked_items=index.unchecked,
        benchmarks=sorted({i.benchmark for i in items}),
        settings={"ngram": ngram, "threshold": threshold, "min_exact_chars": min_exact_chars,
                  "normalisation": "NFKC, casefold, drop whitespace/punctuation/symbols/control"},
    )
    n_short = np.array([len(s) for s in index.short], dtype=np.int64)
    total = index.n_grams + n_short
    for record in records:
        report.records += 1
        text = normalize_for_match(record.text)
        hits = index.hits(ngram_hashes(text, ngram))
        # An item can be reported only if its stem's n-grams are all present (exact stem), or if the
        # share of pieces found can reach the threshold even with every short segment present.
        possible = (hits > 0) & ((hits >= index.n_stem_grams) | (hits + n_short >= threshold * total))
        for i in np.flatnonzero(possible):
            found_short = sum(1 for s in index.short[i] if s in text)
            score = (int(hits[i]) + found_short) / int(total[i])
            stem = index.stems[i]
            exact = (len(stem) >= min_exact_chars and stem in text) or all(s in text for s in index.segments[i])
            if exact or score >= threshold:
                item = index.items[i]
                report.overlaps.append(Overlap(
                    benchmark=item.benchmark, item_id=item.item_id, record=record.location,
                    kind="exact" if exact else "near", score=round(score, 4), question=item.stem[:80],
                ))
    report.overlaps.sort(key=lambda o: (o.kind != "exact", -o.score, o.benchmark, o.item_id, o.record))
    return report


def evaluation_items(data_root: Path, benchmarks: Sequence[str] | str = "all",
                     exclude: Sequence[str] = ()) -> list[EvalItem]:
    """The questions of the evaluation benchmarks to guard, read with jmedllm.benchmarks.

    ``"all"``: every registered benchmark whose data is present under ``data_root``.
    """
    from jmedllm import benchmarks as bm

    if benchmarks == "all" or benchmarks == ["all"]:
        names = [n for n in bm.available_benchmarks(data_root)]
    else:
        names = list(benchmarks)
    names = [n for n in names if n not in set(exclude)]
    items: list[EvalItem] = []
    for name in names:
        try:
            bench = bm.load_benchmark(name, data_root)
        except (FileNotFoundError, KeyError, ValueError) as exc:
            raise UserError(f"contamination check: cannot load benchmark {name!r}: {exc}") from exc
        items.extend(EvalItem.from_question(q) for q in bench.questions)
    return items
