"""Engines: what computes log-likelihoods and generations, behind one protocol (base.Engine).

``load_engine("hf", model="path/or/hub-id", ...)`` builds one by name from a plain dict of
constructors; each constructor imports its engine module (and torch) only when called.
"""

from __future__ import annotations

from typing import Any, Callable

from jmedllm.engines.base import Engine, EngineError


def _hf(**options: Any) -> Engine:
    from jmedllm.engines.hf import HFEngine

    return HFEngine(**options)


def _openai(**options: Any) -> Engine:
    from jmedllm.engines.openai import OpenAIEngine

    return OpenAIEngine(**options)


def _llamacpp(**options: Any) -> Engine:
    from jmedllm.engines.llamacpp import LlamaCppEngine

    return LlamaCppEngine(**options)


def _vllm(**options: Any) -> Engine:
    from jmedllm.engines.vllm import VLLMEngine

    return VLLMEngine(**options)


#: engine name -> constructor taking the engine's keyword options
ENGINES: dict[str, Callable[..., Engine]] = {
    "hf": _hf,
    "openai": _openai,
    "llamacpp": _llamacpp,
    "vllm": _vllm,
}


def load_engine(kind: str, **options: Any) -> Engine:
    """Construct the engine ``kind`` with ``options`` (its constructor's keyword arguments)."""
    try:
        constructor = ENGINES[kind]
    except KeyError:
        raise ValueError(f"unknown engine {kind!r}; available: {', '.join(sorted(ENGINES))}") from None
    try:
        return constructor(**options)
    except TypeError as exc:  # an option the engine does not take: name it, not a traceback
        if "unexpected keyword argument" in str(exc):
            raise EngineError(f"engine {kind!r}: {exc}".replace(".__init__()", "")) from None
        raise


__all__ = ["ENGINES", "Engine", "load_engine"]
