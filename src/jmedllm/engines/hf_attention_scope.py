"""Run a transformers model's attention through a function of ours for the forwards inside a scope.

Packed forwards (``hf_packed``) and decode row groups (``hf_decode_groups``) both register an
attention function and a mask function under a name of their own with transformers' attention
interfaces, switch the model's ``config._attn_implementation`` to that name for the forwards
inside, and hand the function its plan (a layout, row groups) through a context variable.
:func:`attention_scope` does that once for both, restoring the implementation and the
variable however the scope ends.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Callable, Iterator


@contextlib.contextmanager
def attention_scope(model: Any, name: str, attention: Callable[..., Any], mask: Callable[..., Any],
                    plan: contextvars.ContextVar[Any], value: Any) -> Iterator[None]:
    """For the forwards inside, ``model``'s attention is ``attention`` (its mask built by ``mask``),
    registered as ``name``, with ``plan`` set to ``value``."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(name, attention)
    AttentionMaskInterface.register(name, mask)
    config = model.config
    saved = config._attn_implementation
    token = plan.set(value)
    config._attn_implementation = name
    try:
        yield
    finally:
        config._attn_implementation = saved
        plan.reset(token)
