"""Stable hashing: the same numbers in every process, on every machine, in every Python.

Python's built-in ``hash()`` of a string changes with ``PYTHONHASHSEED`` from one process
to the next, so it must never decide which shots or which choice order an item gets.
Everything seeded in this package goes through :func:`stable_key` (SHA-256).
"""

from __future__ import annotations

import hashlib

_SEP = "\x1f"  # unit separator: cannot be confused with text inside ids


def stable_key(*parts: object) -> int:
    """A 64-bit integer determined only by ``parts`` (their ``str()`` forms, in order).

    Used as a sort key: sorting candidates by ``stable_key(seed, item_id, candidate)``
    gives a uniformly random order for each (seed, item) that does not depend on the
    order the candidates were given in.
    """
    data = _SEP.join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big")
