"""The Jinja2 sandbox every user prompt template runs in (evaluation and training alike).

Prompt files are shared between labs like recipes: they are data, never code. A template here

- runs in ``jinja2.sandbox.ImmutableSandboxedEnvironment`` (no calls that mutate lists or dicts,
  no ``str.format`` escapes);
- cannot read any attribute whose name starts with ``_`` (``__class__``, ``__globals__``,
  ``self._TemplateReference__context``, ...): the access itself is a ``SecurityError``, not an
  undefined value that might be tested with ``is defined``;
- reads attributes only of plain data (str, numbers, lists, dicts, ...), of Jinja's own helpers
  (``loop``, ``namespace``, ``cycler``, ``joiner``) and the *data* fields of jmedllm's records;
  never of any other object (a ``pathlib.Path`` in a question's metadata cannot be ``read_text()``);
- has no ``lipsum`` (random text has no place in a prompt, and its ``__globals__`` is the classic
  escape);
- is bounded: ``range`` at most 100 000 items, ``*`` of a string or list at most 1 000 000
  elements, ``**`` with an exponent at most 64;
- includes, imports and extends only template files (.j2, .jinja, .jinja2) inside the folder of
  the template itself (after resolving symlinks): ``{% include '../../etc/passwd' %}`` is an error.

Every refusal ends in a ``PromptTemplateError`` naming the template file and line.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Callable

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

TEMPLATE_SUFFIXES = (".j2", ".jinja", ".jinja2")
MAX_REPEAT = 1_000_000  # elements a `*` may produce
MAX_EXPONENT = 64

_PLAIN_MODULES = ("builtins",)
_JINJA_MODULES = ("jinja2", "markupsafe")


class ConfinedLoader(jinja2.FileSystemLoader):
    """A FileSystemLoader that serves only template files inside its folder, symlinks resolved."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.root = Path(folder).resolve()
        self.entries: set[str] = set()  # the user's own template files, whatever their suffix
        super().__init__(str(self.root), encoding="utf-8", followlinks=False)

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        if not template.endswith(TEMPLATE_SUFFIXES) and template not in self.entries:
            raise SecurityError(f"{template!r}: a template may include only template files "
                                f"({', '.join(TEMPLATE_SUFFIXES)}) from its own folder")
        source, filename, uptodate = super().get_source(environment, template)  # refuses '..' itself
        if not Path(filename).resolve().is_relative_to(self.root):
            raise SecurityError(f"{template!r} resolves outside the template's folder {self.root}")
        return source, filename, uptodate


class PromptSandbox(ImmutableSandboxedEnvironment):
    """ImmutableSandboxedEnvironment with the stricter attribute policy and bounds described above."""

    intercepted_binops = frozenset({"*", "**"})

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if attr.startswith("_"):
            return False
        module = type(obj).__module__ or ""
        if module in _PLAIN_MODULES or module.startswith(_JINJA_MODULES):
            return super().is_safe_attribute(obj, attr, value)
        if module.startswith("jmedllm.") and dataclasses.is_dataclass(obj):
            return not callable(value)  # a record's data, never its methods
        return False

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        raise SecurityError(f"access to attribute {attribute!r} of a {type(obj).__name__} object is not "
                            "allowed in a prompt template")

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT:
                raise SecurityError(f"exponent {right} is larger than {MAX_EXPONENT}")
        elif operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > MAX_REPEAT:
                    raise SecurityError(f"repeating a sequence to {len(seq) * n} elements (limit {MAX_REPEAT})")
        return super().call_binop(context, operator, left, right)


def sandbox_environment(folder: str | os.PathLike[str]) -> PromptSandbox:
    env = PromptSandbox(
        loader=ConfinedLoader(folder),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.globals.pop("lipsum", None)
    return env
