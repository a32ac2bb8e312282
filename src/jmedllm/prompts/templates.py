"""User-supplied Jinja2 prompt templates.

A template receives the same views as the built-in families (see ``template_context`` and
docs/prompts.md for the variables) and renders the whole prompt text, exemplars included.
Undefined variables are errors (``StrictUndefined``): a typo such as ``{{ choises }}`` fails
with the template file, line and variable name instead of rendering an empty string.

Templates are data, not code: they run in the sandbox of ``jmedllm.prompts.sandbox`` (no
attribute starting with ``_``, no objects but plain data, includes confined to the template's
folder, bounded ranges and repetitions).

Whitespace: ``trim_blocks`` and ``lstrip_blocks`` are on (a line holding only a ``{% ... %}``
tag leaves no blank line) and the file's final newline is kept.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import jinja2

from jmedllm.errors import UserError
from jmedllm.schema import LETTERS

from . import wording
from .sandbox import sandbox_environment
from .views import ItemView

#: Folder of the templates shipped with the package (an example to copy lives there).
PACKAGED_TEMPLATES = Path(__file__).with_name("templates")


class PromptTemplateError(UserError, ValueError):
    """A user template could not be read, parsed or rendered, or tried to leave its sandbox; the
    message names file and line."""


@lru_cache(maxsize=16)
def _environment(folder: str) -> jinja2.Environment:
    # One sandboxed environment per folder; Jinja re-reads a template whose file changed.
    return sandbox_environment(folder)


def load_template(template_file: str | Path) -> jinja2.Template:
    """Compile ``template_file``; a missing file or a syntax error is a PromptTemplateError."""
    path = Path(template_file).expanduser().resolve()
    if not path.is_file():
        raise PromptTemplateError(f"prompt template {template_file} not found")
    try:
        env = _environment(str(path.parent))
        env.loader.entries.add(path.name)  # type: ignore[union-attr]
        return env.get_template(path.name)
    except jinja2.TemplateSyntaxError as e:
        raise PromptTemplateError(f"{path}, line {e.lineno}: template syntax error: {e.message}") from e


def item_context(v: ItemView) -> dict[str, Any]:
    """The per-question variables, for the evaluated item and for each exemplar."""
    q = v.question
    return {
        "question": q,
        "id": q.id,
        "text": q.text.strip(),
        "choices": list(q.choices),
        "letters": list(LETTERS[: len(q.choices)]),
        "choice_lines": v.choice_lines,
        "n_select": q.n_select,
        "is_numeric": q.is_numeric,
        "context": q.context.strip() if q.context else None,
        "list_choices": v.list_choices,
        "instruction": v.instruction,
        "hint": v.hint,
        "ends_with_answer_header": v.ends_with_answer_header,
        "answer_header": v.answer_header,
        # exemplars only (None for the evaluated item):
        "answer": v.target,
        "completion": v.completion,
    }


def template_context(shots: Sequence[ItemView], item: ItemView, language: str) -> dict[str, Any]:
    """All variables a template sees: the evaluated item's variables at top level and as
    ``item``, ``shots`` (a list of the same dicts with ``answer`` / ``completion`` set),
    ``language``, ``mode``, ``answer_style`` and the fixed words of that language."""
    top = item_context(item)
    return {
        **top,
        "item": top,
        "shots": [item_context(s) for s in shots],
        "language": language,
        "mode": item.mode,
        "answer_style": item.style,
        "words": {
            "answer_header": wording.ANSWER_HEADER[language],
            "answer_sep": wording.ANSWER_SEP[language],
            "question_label": wording.QUESTION_LABEL[language],
            "context_label": wording.CONTEXT_LABEL[language],
            "choices_label": wording.CHOICES_LABEL[language],
            "answer_the_question": wording.ANSWER_THE_QUESTION[language],
            "sentence_join": "" if language == "ja" else " ",
        },
    }


def render_template(template_file: str | Path, shots: Sequence[ItemView], item: ItemView, language: str) -> str:
    """Render ``template_file`` for ``item``; errors name the file, the line and the variable."""
    template = load_template(template_file)
    path = template.filename or str(template_file)
    try:
        text = template.render(template_context(shots, item, language))
    except jinja2.UndefinedError as e:
        raise PromptTemplateError(f"{path}{_template_line(e, path)}: {e.message}") from e
    except jinja2.exceptions.SecurityError as e:
        raise PromptTemplateError(f"{path}{_template_line(e, path)}: refused by the template sandbox: {e}") from e
    except jinja2.TemplateNotFound as e:
        raise PromptTemplateError(f"{path}{_template_line(e, path)}: included template {e.name!r} not found in "
                                  f"the template's folder (includes are confined to it)") from e
    except jinja2.TemplateError as e:
        raise PromptTemplateError(f"{path}{_template_line(e, path)}: {e}") from e
    except (OverflowError, TypeError, ValueError, ArithmeticError, LookupError) as e:
        raise PromptTemplateError(f"{path}{_template_line(e, path)}: {type(e).__name__}: {e}") from e
    if item.ends_with_answer_header and text != text.rstrip():
        raise PromptTemplateError(
            f"{path}: in {item.mode} mode the prompt must end with the answer header (e.g. "
            f"{wording.ANSWER_HEADER[language]!r}), not with whitespace: the scored continuations "
            f"start with {wording.ANSWER_SEP[language]!r}"
        )
    return text


def _template_line(error: BaseException, path: str) -> str:
    """', line N' from the traceback frames Jinja maps back to the template source."""
    line = None
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == path:
            line = tb.tb_lineno
        tb = tb.tb_next
    return f", line {line}" if line is not None else ""
