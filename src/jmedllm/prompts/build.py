"""Build the prompt for a question, the continuations to score after it, and the matching
training example. The runner and the trainer both come here, so the formats cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from jmedllm.schema import LETTERS, Question

from . import wording
from .families import Family, Rendered, get_family
from .targets import check_style
from .sandbox import TEMPLATE_SUFFIXES
from .templates import render_template
from .views import MODES, ItemView, make_view

__all__ = ["MODES", "Prompt", "build_prompt", "choice_continuations", "resolve_prompt_spec", "sft_example"]



def resolve_prompt_spec(spec: str) -> tuple[str, Path | None]:
    """Read a ``--prompt`` value as `jmedllm eval` and training both do: a family name, or a Jinja2
    template file rendered in place of the alpaca layout (the family supplies the answer format).
    Returns ``(family, template_file)``; PromptTemplateError for an unknown family or missing file."""
    from .families import FAMILIES
    from .templates import PromptTemplateError

    if spec.endswith(TEMPLATE_SUFFIXES) or "/" in spec:
        template_file = Path(spec)
        if not template_file.is_file():
            raise PromptTemplateError(f"prompt template file {template_file} not found")
        return "alpaca", template_file
    if spec not in FAMILIES:
        raise PromptTemplateError(f"unknown prompt family {spec!r}; valid: {', '.join(FAMILIES)} or a .j2 template file")
    return spec, None


@dataclass(frozen=True)
class Prompt:
    """A prompt ready for an engine.

    Exactly one of ``text`` (a plain string) and ``messages`` (chat messages, rendered by the
    engine's ``format_chat``) is set. ``assistant_prefix`` is appended after the rendered chat
    (the answer header in letter / loglik modes), so the next token is the answer.
    ``mode`` and ``answer_style`` record what the prompt asks for; ``template`` the user
    template file that rendered it, if any.
    """

    text: str | None
    messages: tuple[dict[str, str], ...] | None
    family: str
    language: str
    mode: str = "generate"
    answer_style: str = "text"
    assistant_prefix: str = ""
    template: str | None = None

    def __post_init__(self) -> None:
        if (self.text is None) == (self.messages is None):
            raise ValueError("a Prompt holds either text or messages, not both and not neither")
        if self.text is not None and self.assistant_prefix:
            raise ValueError("assistant_prefix belongs to chat prompts only")

    @property
    def is_chat(self) -> bool:
        return self.messages is not None

    def render(self, format_chat: Callable[[Sequence[dict[str, str]]], str] | None = None) -> str:
        """The prompt string: ``text``, or ``format_chat(messages) + assistant_prefix``.

        ``format_chat`` is the engine's chat-template renderer (with the generation prompt);
        a chat prompt without one is an error rather than a silently different format.
        """
        if self.text is not None:
            return self.text
        if format_chat is None:
            raise ValueError(
                f"prompt family {self.family!r} produces chat messages: pass the engine's format_chat to render it"
            )
        return format_chat([dict(m) for m in self.messages]) + self.assistant_prefix


def _resolve_style(family: Family, mode: str, answer_style: str | None) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown prompt mode {mode!r}: expected one of {', '.join(MODES)}")
    if mode != "generate":
        forced = "letter" if mode == "letter" else "text"
        if answer_style is not None and answer_style != forced:
            raise ValueError(f"{mode} mode always uses the {forced!r} answer style, not {answer_style!r}")
        return forced
    style = check_style(answer_style or family.default_style)
    if style not in family.styles:
        raise ValueError(
            f"prompt family {family.name!r} cannot ask for the {style!r} answer style (it can: {', '.join(family.styles)})"
        )
    return style


def _views(
    question: Question, shots: Sequence[Question], family: Family, mode: str, style: str, language: str
) -> tuple[list[ItemView], ItemView]:
    kw = dict(language=language, mode=mode, style=style, always_answer_header=family.always_answer_header)
    for shot in shots:
        if shot.id == question.id:
            raise ValueError(f"{question.id}: the evaluated item is among its own few-shot exemplars")
    shot_views = [make_view(s, with_target=True, **kw) for s in shots]
    return shot_views, make_view(question, **kw)


def build_prompt(
    question: Question,
    *,
    family: str,
    mode: str,
    language: str | None = None,
    shots: Sequence[Question] = (),
    template_file: str | Path | None = None,
    answer_style: str | None = None,
) -> Prompt:
    """The prompt asking ``question`` in prompt family ``family`` and mode ``mode``.

    * ``mode="generate"`` ends with the response header: the model writes its answer in
      ``answer_style`` (default: the family's, see FAMILIES). The letter style ends with the
      answer header instead, exactly as letter mode does.
    * ``mode="letter"`` lists the lettered choices and ends with ``答え：`` / ``Answer:``;
      the continuations are the letters (see ``choice_continuations``).
    * ``mode="loglik"`` does not list the choices and ends with the answer header; each choice
      text is scored as the continuation (cloze scoring; see docs/prompts.md for why).

    ``language`` (default: the question's) is the language of the prompt's own words.
    ``shots`` are few-shot exemplars (see ``select_shots``), rendered in the same format with
    their ``format_target`` answers. ``template_file`` renders the text with a user Jinja2
    template instead of the family layout (the family still sets the default answer style;
    the chat family cannot be templated). A numeric item in letter or loglik mode is an error.
    """
    fam = get_family(family)
    lang = wording.check_language(language or question.language)
    style = _resolve_style(fam, mode, answer_style)
    shot_views, item = _views(question, shots, fam, mode, style, lang)
    if template_file is not None:
        if fam.is_chat:
            raise ValueError("the chat family is rendered by the model's chat template; a template_file needs a text family")
        text = render_template(template_file, shot_views, item, lang)
        return Prompt(text=text, messages=None, family=fam.name, language=lang, mode=mode,
                      answer_style=style, template=str(template_file))
    rendered: Rendered = fam.render(shot_views, item, lang)
    return Prompt(
        text=rendered.text,
        messages=rendered.messages,
        family=fam.name,
        language=lang,
        mode=mode,
        answer_style=style,
        assistant_prefix=rendered.assistant_prefix,
    )


def _full_width(letter: str) -> str:
    return chr(ord(letter) - ord("a") + ord("ａ")) if letter.islower() else chr(ord(letter) - ord("A") + ord("Ａ"))


def choice_continuations(question: Question, *, mode: str, language: str | None = None) -> list[list[str]]:
    """Per choice, the continuation strings scored after a ``mode`` prompt.

    Every letter / loglik prompt ends with the answer header (``答え：`` or ``Answer:``), and
    a continuation starts with what follows it: nothing in Japanese, a space in English.

    * loglik: ``[[sep + choice_text]]`` per choice;
    * letter: the variants of the choice's letter, ``[sep+"c", sep+"C", sep+"ｃ", sep+"Ｃ"]``
      (ASCII lower / upper, full-width lower / upper), to be combined with logsumexp.
    """
    if mode not in ("loglik", "letter"):
        raise ValueError(f"choice continuations exist for loglik and letter modes, not {mode!r}")
    if question.is_numeric:
        raise ValueError(f"{question.id}: a numeric item has no choices to score; evaluate it with mode='generate'")
    if len(question.choices) > len(LETTERS):
        raise ValueError(f"{question.id}: {len(question.choices)} choices, more than the {len(LETTERS)} letters a-z")
    sep = wording.ANSWER_SEP[wording.check_language(language or question.language)]
    if mode == "loglik":
        return [[sep + choice] for choice in question.choices]
    out = []
    for letter in LETTERS[: len(question.choices)]:
        upper = letter.upper()
        out.append([sep + v for v in (letter, upper, _full_width(letter), _full_width(upper))])
    return out


def sft_example(
    question: Question,
    *,
    family: str,
    language: str | None = None,
    target_style: str | None = None,
    template_file: str | Path | None = None,
) -> dict:
    """One training example: exactly the zero-shot evaluation prompt and its ideal answer.

    The prompt is ``build_prompt(question, family=family, mode="generate", answer_style=
    target_style)`` (default style: the family's); the letter style's prompt is also the
    letter-mode prompt. Returns ``{"prompt": str, "completion": str}`` for text families
    (prompt + completion is the full text; the completion carries the space that follows an
    English answer header), or ``{"messages": [..., {"role": "assistant", ...}]}`` for the
    chat family, whose assistant turn is the assistant prefix plus the completion.
    """
    prompt = build_prompt(question, family=family, mode="generate", language=language,
                          template_file=template_file, answer_style=target_style)
    fam = get_family(family)
    view = make_view(question, language=prompt.language, mode="generate", style=prompt.answer_style,
                     always_answer_header=fam.always_answer_header, with_target=True)
    if prompt.messages is not None:
        answer = {"role": "assistant", "content": prompt.assistant_prefix + view.completion}
        return {"messages": [dict(m) for m in prompt.messages] + [answer]}
    return {"prompt": prompt.text, "completion": view.completion}
