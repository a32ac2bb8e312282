"""The record an extraction returns, and the name of "nothing found"."""

from __future__ import annotations

from dataclasses import dataclass

UNPARSED = "unparsed"


@dataclass(frozen=True)
class Extraction:
    """What an extraction found.

    ``indices``: the chosen 0-based choice indices (empty only when unparsed or numeric);
    ``method``: the step that found it (``"unparsed"`` when none did);
    ``span``: (start, end) of the deciding match in ``nfkc(output)``; ``matched``: its text;
    ``number``: the extracted number for numeric items (as written, NFKC-normalised, or the
    mark-sheet digits joined);
    ``order``: the chosen indices in the order the answer wrote them ("c → a → e" is
    ``(2, 0, 4)``); empty when unparsed or numeric.
    """

    indices: frozenset[int]
    method: str
    span: tuple[int, int] | None = None
    matched: str | None = None
    number: str | None = None
    order: tuple[int, ...] = ()

    @property
    def parsed(self) -> bool:
        return self.method != UNPARSED


NOTHING = Extraction(frozenset(), UNPARSED)


def picked(order: tuple[int, ...] | list[int], method: str, span: tuple[int, int] | None, matched: str | None) -> Extraction:
    """An extraction of choices in the written ``order`` (duplicates dropped, first kept)."""
    seen: list[int] = []
    for i in order:
        if i not in seen:
            seen.append(i)
    return Extraction(frozenset(seen), method, span, matched, order=tuple(seen))
