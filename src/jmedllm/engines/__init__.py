"""Engines: what computes log-likelihoods and generations, behind one protocol (base.Engine).

``load_engine("hf", model="path/or/hub-id", ...)`` builds one by name from a plain dict of
constructors; each constructor imports its engine module (and torch) only when called.
"""

from __future__ import annotations

from typing import Any, Callable

from jmedllm.engines.base import Engine


def _hf(**options: Any) -> Engine:
    from jmedllm.engines.hf import HFEngine

    return HFEngine(**options)


#: engine name -> constructor taking the engine's keyword options
ENGINES: dict[str, Callable[..., Engine]] = {
    "hf": _hf,
}


def load_engine(kind: str, **options: Any) -> Engine:
    """Construct the engine ``kind`` with ``options`` (its constructor's keyword arguments)."""
    try:
        constructor = ENGINES[kind]
    except KeyError:
        raise ValueError(f"unknown engine {kind!r}; available: {', '.join(sorted(ENGINES))}") from None
    return constructor(**options)


__all__ = ["ENGINES", "Engine", "load_engine"]
