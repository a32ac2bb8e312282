"""The contamination guard's text machinery: normalisation, n-gram hashing and the item index.

Both sides of the comparison are normalised first (NFKC, case-folded, only letters and digits kept),
then cut into character n-grams hashed to 64 bits. :class:`ItemIndex` holds every evaluation item's
n-grams in an inverted index (numpy arrays sorted by hash) and knows, for each of them, whether it
is *informative*: found in fewer than ``generic_df`` exam items known to the guard (the evaluation
items and the reference items). What many exam items share — "Which of the following is the most
likely diagnosis", 「この患者に投与すべきなのはどれか」, a drug name that is a choice in dozens of
items — is phrasing, not one item, and never counts as evidence of a copy.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

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


def item_segments(item: Any) -> list[str]:
    """An exam item's normalised segments: its stem (a serial group's vignette, then the question)
    first, then each choice; empty segments left out."""
    stem = normalize_for_match(item.context) + normalize_for_match(item.stem)
    return [s for s in [stem] + [normalize_for_match(c) for c in item.choices] if s]


def segment_ngrams(segments: Sequence[str], n: int) -> tuple[Any, Any]:
    """(hashes, segment number) of every n-gram inside one segment, in one vectorised pass over the
    concatenated segments (windows that cross a segment boundary are discarded)."""
    import numpy as np

    lengths = np.array([len(t) for t in segments], dtype=np.int64)
    if not len(segments) or lengths.sum() < n:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    hashes = _rolling(_codes("".join(segments)), n).view(np.int64)
    seg_of = np.repeat(np.arange(len(segments)), lengths)
    valid = seg_of[: len(hashes)] == seg_of[n - 1 :]  # the window starts and ends in one segment
    return hashes[valid], seg_of[: len(hashes)][valid]


def _distinct(h: Any, o: Any) -> Any:
    """Mask of the first of each run of equal (hash, owner) pairs in arrays sorted by (hash, owner)."""
    import numpy as np

    keep = np.ones(len(h), dtype=bool)
    keep[1:] = (h[1:] != h[:-1]) | (o[1:] != o[:-1])
    return keep


@dataclass(frozen=True)
class ReferenceTable:
    """Document frequencies of the n-grams of a collection of exam items: ``keys`` (sorted unique
    hashes), ``counts`` (how many items hold each), and the ``members`` counted, by (benchmark, item id)."""

    n: int
    keys: Any
    counts: Any
    members: frozenset

    @classmethod
    def build(cls, items: Iterable[Any], n: int) -> "ReferenceTable":
        import numpy as np

        texts: list[str] = []
        owner: list[int] = []
        members = set()
        for i, item in enumerate(items):
            members.add((getattr(item, "benchmark", None), getattr(item, "item_id", None)))
            for seg in item_segments(item):
                if len(seg) >= n:
                    texts.append(seg)
                    owner.append(i)
        hashes, seg = segment_ngrams(texts, n)
        owners = np.asarray(owner, dtype=np.int64)[seg] if len(seg) else np.zeros(0, dtype=np.int64)
        order = np.lexsort((owners, hashes))
        hashes, owners = hashes[order], owners[order]
        keys, counts = np.unique(hashes[_distinct(hashes, owners)], return_counts=True)
        return cls(n, keys, counts, frozenset(members))

    def frequency(self, keys: Any) -> Any:
        """How many of the table's items hold each of ``keys``."""
        import numpy as np

        if not len(self.keys):
            return np.zeros(len(keys), dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return np.where(self.keys[pos] == keys, self.counts[pos], 0)


class ItemIndex:
    """Inverted index: n-gram hash -> evaluation items, as numpy arrays sorted by hash.

    Per item it counts its n-grams (``n_grams``), its informative stem n-grams (``n_stem``) and
    its informative choice n-grams (``n_choice``); an n-gram is informative when fewer than
    ``generic_df`` exam items hold it, counting the evaluation items and the ``reference`` items
    (other exams: what they share with an evaluation item is phrasing; reference items that are
    evaluation items are not counted twice). ``generic_df`` 0: every n-gram is informative.
    """

    def __init__(self, items: Sequence[Any], n: int, generic_df: int = 0,
                 reference: "Sequence[Any] | ReferenceTable" = ()):
        import numpy as np

        self.n = n
        self.items = list(items)
        self.stems: list[str] = []
        self.segments: list[list[str]] = []
        long_texts: list[str] = []
        long_owner: list[int] = []
        long_is_stem: list[bool] = []
        for i, item in enumerate(self.items):
            segs = item_segments(item)
            stem = normalize_for_match(item.context) + normalize_for_match(item.stem)
            self.stems.append(stem)
            self.segments.append(segs)
            for j, seg in enumerate(segs):
                if len(seg) >= n:
                    long_texts.append(seg)
                    long_owner.append(i)
                    long_is_stem.append(j == 0 and seg == stem)
        size = len(self.items)
        self.n_grams = np.zeros(size, dtype=np.int64)
        self.n_stem = np.zeros(size, dtype=np.int64)
        self.n_choice = np.zeros(size, dtype=np.int64)
        self.keys = np.zeros(0, dtype=np.int64)
        self.owners = np.zeros(0, dtype=np.int64)
        self.stem_informative = np.zeros(0, dtype=bool)
        self.choice_informative = np.zeros(0, dtype=bool)
        self.unique_keys = np.zeros(0, dtype=np.int64)
        if not long_texts:
            return
        hashes, seg = segment_ngrams(long_texts, n)
        owners = np.asarray(long_owner, dtype=np.int64)[seg]
        is_stem = np.asarray(long_is_stem)[seg]
        # Segments were laid out item by item (stem first), so a stable sort by hash leaves equal hashes
        # in item order: repeated (hash, item) pairs end up adjacent, the stem's occurrence first.
        order = np.argsort(hashes, kind="stable")
        hashes, owners, is_stem = hashes[order], owners[order], is_stem[order]
        first = _distinct(hashes, owners)
        self.keys, self.owners, is_stem = hashes[first], owners[first], is_stem[first]
        self.n_grams = np.bincount(self.owners, minlength=size)
        self.unique_keys, inverse = np.unique(self.keys, return_inverse=True)
        if generic_df > 0:
            # Items holding the n-gram, among the reference and evaluation items (each counted once).
            table = reference if isinstance(reference, ReferenceTable) else ReferenceTable.build(reference, n)
            if table.n != n:
                raise ValueError(f"reference table of {table.n}-grams for an index of {n}-grams")
            outside = np.array([(getattr(it, "benchmark", None), getattr(it, "item_id", None)) not in table.members
                                for it in self.items], dtype=bool)
            df = table.frequency(self.unique_keys) + np.bincount(inverse[outside[self.owners]],
                                                                 minlength=len(self.unique_keys))
            informative = (df < generic_df)[inverse]
        else:
            informative = np.ones(len(self.keys), dtype=bool)
        self.stem_informative = is_stem & informative
        self.choice_informative = ~is_stem & informative
        self.n_stem = np.bincount(self.owners[self.stem_informative], minlength=size)
        self.n_choice = np.bincount(self.owners[self.choice_informative], minlength=size)

    @property
    def unchecked(self) -> int:
        return int((self.n_grams == 0).sum())

    def hits(self, grams: Any) -> tuple[Any, Any, Any]:
        """Per item: how many of its n-grams, of its informative stem n-grams and of its informative
        choice n-grams are among ``grams`` (sorted unique hashes of a record)."""
        import numpy as np

        size = len(self.items)
        empty = (np.zeros(size, dtype=np.int64),) * 3
        if not len(grams) or not len(self.keys):
            return empty
        lo = np.searchsorted(self.keys, grams, "left")
        hi = np.searchsorted(self.keys, grams, "right")
        sizes = hi - lo
        keep = sizes > 0
        if not keep.any():
            return empty
        lo, sizes = lo[keep], sizes[keep]
        starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
        positions = np.arange(int(sizes.sum())) - starts + np.repeat(lo, sizes)
        owners = self.owners[positions]
        return (np.bincount(owners, minlength=size),
                np.bincount(owners[self.stem_informative[positions]], minlength=size),
                np.bincount(owners[self.choice_informative[positions]], minlength=size))
