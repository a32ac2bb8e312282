"""Contamination guard: does the training text contain evaluation questions?

Before any training run, every training record (a corpus document, an instruction example)
is compared with the evaluation benchmarks' questions. Both sides are normalised first
(NFKC, case-folded, only letters and digits kept: whitespace, punctuation and symbols removed), so that
full-width / half-width, spacing and punctuation edits do not hide a copy.

An evaluation item is its stem (a serial group's shared vignette, then the question) plus its
choices, each a *segment*; its fingerprint is the set of character n-grams (``ngram``, default 13)
of every segment; a segment shorter than ``ngram`` is matched as a substring. The whole item is
weighed, so that what many items share never flags one of them:

- **informative** stem n-grams are those shared by fewer than ``generic_df`` (default 5)
  evaluation items; generic phrasing (「この患者に投与すべきなのはどれか。」, "Which of the
  following is the most likely diagnosis?") is left out of the stem's share;
- **near**: at least ``threshold`` (default 0.5) of the stem's informative n-grams occur in the
  record; a short stem (fewer than ``min_informative``, default 30, informative n-grams: about 40
  characters) counts only with at least ``choice_share`` (0.5) of its choices. This is n-gram *containment* of
  the item in the record, so a vignette copied into a long document is caught, and a lightly
  edited one (another age, a swapped word, reordered choices: each edit breaks at most ``ngram``
  n-grams) still shares most of its n-grams;
- **exact**: every segment (stem and all choices) occurs in the normalised record, or a stem that
  passes the rule above occurs whole (at least ``min_exact_chars`` characters).

Choices alone never flag (two exams share drug-name choice lists), nor does a generic stem alone;
both thresholds were chosen from the measurements of ``bench/guard_precision.py`` (docs/training.md).

Items with no segment of ``ngram`` characters cannot be attributed to a record by text and are
counted as unchecked in the report (never silently). The search uses an inverted index from
n-gram hashes to items (numpy sorted arrays), so a record costs one pass over its own n-grams.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from jmedllm.errors import UserError

_NOT_WORD = re.compile(r"[\W_]+")  # everything but letters and digits: spaces, punctuation, symbols, controls


def normalize_for_match(text: str) -> str:
    """NFKC, case-fold, and keep only letters and digits (whitespace, punctuation and symbols go).

    >>> normalize_for_match("Ｑ：５５歳の男性。 胸痛を訴える！")
    'q55歳の男性胸痛を訴える'
    """
    return _NOT_WORD.sub("", unicodedata.normalize("NFKC", text).casefold())


_BASE = 0x100000001B3  # odd multiplier of the polynomial rolling hash (arithmetic mod 2**64)


def _rolling(codes: Any, n: int) -> Any:
    """Polynomial hash (mod 2**64) of every window of ``n`` code points of a uint64 array."""
    import numpy as np

    m = len(codes) - n + 1
    h = np.zeros(max(m, 0), dtype=np.uint64)
    if m <= 0:
        return h
    base = np.uint64(_BASE)
    with np.errstate(over="ignore"):
        for k in range(n):
            h = h * base + codes[k : k + m]
    return h


def _codes(text: str) -> Any:
    import numpy as np

    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)


def ngram_hashes(text: str, n: int) -> Any:
    """Sorted unique 64-bit hashes of the character n-grams of an already normalised text."""
    import numpy as np

    return np.unique(_rolling(_codes(text), n).view(np.int64))


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


class _Index:
    """Inverted index: n-gram hash -> items, as two numpy arrays sorted by hash.

    All segments of all items are hashed in one vectorised pass over their concatenated code points;
    windows that cross a segment boundary are discarded.
    """

    def __init__(self, items: Sequence[EvalItem], n: int, generic_df: int = 0):
        import numpy as np

        self.n = n
        self.items = list(items)
        self.stems: list[str] = []
        self.segments: list[list[str]] = []
        self.short: list[list[str]] = []  # segments shorter than n, checked as substrings
        long_texts: list[str] = []
        long_owner: list[int] = []
        long_is_stem: list[bool] = []
        for i, item in enumerate(self.items):
            stem = normalize_for_match(item.context) + normalize_for_match(item.stem)
            segs = [s for s in [stem] + [normalize_for_match(c) for c in item.choices] if s]
            self.stems.append(stem)
            self.segments.append(segs)
            self.short.append([s for s in segs if len(s) < n])
            for j, seg in enumerate(segs):
                if len(seg) >= n:
                    long_texts.append(seg)
                    long_owner.append(i)
                    long_is_stem.append(j == 0 and seg == stem)
        self.n_grams = np.zeros(len(self.items), dtype=np.int64)
        self.n_stem_grams = np.zeros(len(self.items), dtype=np.int64)
        self.n_informative = np.zeros(len(self.items), dtype=np.int64)
        if not long_texts:
            self.keys = np.zeros(0, dtype=np.int64)
            self.owners = np.zeros(0, dtype=np.int64)
            self.informative = np.zeros(0, dtype=bool)
            return
        lengths = np.array([len(t) for t in long_texts], dtype=np.int64)
        codes = _codes("".join(long_texts))
        hashes = _rolling(codes, n).view(np.int64)
        seg_of = np.repeat(np.arange(len(long_texts)), lengths)
        valid = seg_of[: len(hashes)] == seg_of[n - 1 :]  # the window starts and ends in one segment
        seg = seg_of[: len(hashes)][valid]
        hashes = hashes[valid]
        owners = np.asarray(long_owner, dtype=np.int64)[seg]
        is_stem = np.asarray(long_is_stem)[seg]
        # Segments were laid out item by item, so a stable sort by hash leaves equal hashes in item
        # order: repeated (hash, item) pairs end up adjacent and one comparison removes them.
        order = np.argsort(hashes, kind="stable")
        hashes, owners, is_stem = hashes[order], owners[order], is_stem[order]

        def distinct(h: Any, o: Any) -> Any:
            keep = np.ones(len(h), dtype=bool)
            keep[1:] = (h[1:] != h[:-1]) | (o[1:] != o[:-1])
            return keep

        first = distinct(hashes, owners)
        self.n_grams = np.bincount(owners[first], minlength=len(self.items))
        sh, so = hashes[is_stem], owners[is_stem]
        self.n_stem_grams = np.bincount(so[distinct(sh, so)], minlength=len(self.items))
        self.keys = hashes[first]
        self.owners = owners[first]
        # Generic phrasing: a stem n-gram shared by ``generic_df`` or more evaluation items ("この患者に
        #投与すべきなのはどれか", "Which of the following is most likely") says nothing about one item.
        _, inverse, counts = np.unique(self.keys, return_inverse=True, return_counts=True)
        df = counts[inverse]
        self.informative = is_stem[first] & ((df < generic_df) if generic_df > 0 else True)
        self.n_informative = np.bincount(self.owners[self.informative], minlength=len(self.items))

    @property
    def unchecked(self) -> int:
        return int((self.n_grams == 0).sum())

    def hits(self, grams: Any):
        """Per item, how many of its n-grams, and of its informative stem n-grams, are among ``grams``."""
        import numpy as np

        counts = np.zeros(len(self.items), dtype=np.int64)
        if not len(grams) or not len(self.keys):
            return counts, counts.copy()
        q = grams
        lo = np.searchsorted(self.keys, q, "left")
        hi = np.searchsorted(self.keys, q, "right")
        sizes = hi - lo
        keep = sizes > 0
        if not keep.any():
            return counts, counts.copy()
        lo, sizes = lo[keep], sizes[keep]
        total = int(sizes.sum())
        starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
        positions = np.arange(total) - starts + np.repeat(lo, sizes)
        owners = self.owners[positions]
        return (np.bincount(owners, minlength=len(self.items)),
                np.bincount(owners[self.informative[positions]], minlength=len(self.items)))


def check_contamination(
    records: Iterable[TrainingText],
    items: Sequence[EvalItem],
    *,
    ngram: int = 13,
    threshold: float = 0.5,
    min_exact_chars: int = 20,
    generic_df: int = 5,
    min_informative: int = 30,
    choice_share: float = 0.5,
) -> ContaminationReport:
    """Compare every training record with every evaluation item; return the overlaps found.

    An item is flagged when the record holds the item as a whole (stem and every choice: exact), or
    at least ``threshold`` of its *informative* stem n-grams (near; exact when the whole stem is there)
    -- for a short stem (fewer than ``min_informative`` informative n-grams) only together with at
    least ``choice_share`` of its choices. Informative: shared by fewer than ``generic_df`` evaluation
    items (0: every n-gram counts). Choices alone never flag, nor a short or generic stem alone.
    """
    import numpy as np

    if ngram < 2:
        raise ValueError(f"ngram must be at least 2, got {ngram}")
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    index = _Index(items, ngram, generic_df)
    report = ContaminationReport(
        items=len(items),
        unchecked_items=index.unchecked,
        benchmarks=sorted({i.benchmark for i in items}),
        settings={"ngram": ngram, "threshold": threshold, "min_exact_chars": min_exact_chars,
                  "generic_df": generic_df, "min_informative": min_informative, "choice_share": choice_share,
                  "normalisation": "NFKC, casefold, letters and digits only"},
    )
    informative = index.n_informative
    long_stem = informative >= min_informative
    for record in records:
        report.records += 1
        text = normalize_for_match(record.text)
        hits, inf_hits = index.hits(ngram_hashes(text, ngram))
        # Candidates: the stem rule can fire, or every indexed n-gram of the item is present (whole item).
        possible = (hits > 0) & (((informative > 0) & (inf_hits >= threshold * informative)) | (hits >= index.n_grams))
        for i in np.flatnonzero(possible):
            segs = index.segments[i]
            stem = index.stems[i]
            choices = segs[1:] if segs and segs[0] == stem else segs
            found = sum(1 for c in choices if c in text) / len(choices) if choices else 1.0
            share = float(inf_hits[i]) / float(informative[i]) if informative[i] else 0.0
            stem_ok = share >= threshold and (bool(long_stem[i]) or found >= choice_share)
            exact = all(s in text for s in segs) or (stem_ok and len(stem) >= min_exact_chars and stem in text)
            if exact or stem_ok:
                item = index.items[i]
                report.overlaps.append(Overlap(
                    benchmark=item.benchmark, item_id=item.item_id, record=record.location,
                    kind="exact" if exact else "near", score=round(share, 4), question=item.stem[:80],
                    choices=round(found, 4),
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
