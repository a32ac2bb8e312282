"""One question seen through a prompt: which parts it shows, what it asks for, and (for a
few-shot exemplar) the answer written after it.

Families and user templates both render these views, so the two can never disagree about
the instruction, the answer style or where the answer header goes.
"""

from __future__ import annotations

from dataclasses import dataclass

from jmedllm.schema import LETTERS, Question

from . import wording
from .targets import format_target

MODES = ("generate", "loglik", "letter")


@dataclass(frozen=True)
class ItemView:
    """What a prompt shows of one question.

    ``list_choices``: the lettered choices are shown (not in loglik mode, where each choice
    text is scored after the answer header, and not for numeric items).
    ``ends_with_answer_header``: the item's part of the prompt ends with ``答え：`` /
    ``Answer:`` (letter and loglik modes, the letter answer style, the terse family).
    ``target``: for an exemplar, the answer written after it (without the header);
    ``completion`` adds the separator that follows the header. None for the evaluated item.
    """

    question: Question
    language: str
    mode: str
    style: str
    list_choices: bool
    ends_with_answer_header: bool
    instruction: str
    hint: str
    target: str | None

    @property
    def completion(self) -> str | None:
        """What follows this item's prompt in an exemplar or an SFT example."""
        if self.target is None:
            return None
        sep = wording.ANSWER_SEP[self.language] if self.ends_with_answer_header else ""
        return sep + self.target

    @property
    def choice_lines(self) -> list[str]:
        """``a. text`` lines, empty when the choices are not shown."""
        if not self.list_choices:
            return []
        return [f"{LETTERS[i]}. {c}" for i, c in enumerate(self.question.choices)]

    def body_lines(self, *, choices_label: bool = True) -> list[str]:
        """Context (when present), the question, then the choices (when shown)."""
        q, lang = self.question, self.language
        lines = []
        if q.context:
            lines.append(wording.CONTEXT_LABEL[lang] + q.context.strip())
        lines.append(wording.QUESTION_LABEL[lang] + q.text.strip())
        if self.list_choices:
            if choices_label:
                lines.append(wording.CHOICES_LABEL[lang])
            lines.extend(self.choice_lines)
        return lines

    @property
    def answer_header(self) -> str:
        return wording.ANSWER_HEADER[self.language] if self.ends_with_answer_header else ""


def make_view(
    question: Question,
    *,
    language: str,
    mode: str,
    style: str,
    always_answer_header: bool = False,
    with_target: bool = False,
) -> ItemView:
    """The view of ``question`` in ``mode`` with answer style ``style`` (already resolved:
    "letter" in letter mode, "text" in loglik mode)."""
    if mode not in MODES:
        raise ValueError(f"unknown prompt mode {mode!r}: expected one of {', '.join(MODES)}")
    if len(question.choices) > len(LETTERS):
        raise ValueError(f"{question.id}: {len(question.choices)} choices, more than the {len(LETTERS)} letters a-z")
    numeric = question.is_numeric
    if numeric and mode != "generate" and not with_target:
        raise ValueError(
            f"{question.id}: a numeric item has no choices to score in {mode} mode; evaluate it with mode='generate'"
        )
    list_choices = not numeric and mode != "loglik"
    ends_with_header = always_answer_header or style == "letter" or mode in ("letter", "loglik")
    kw = dict(n_select=question.n_select, numeric=numeric, style=style, list_choices=list_choices, language=language,
              selection=question.selection)
    target = None
    if with_target:
        target = format_target(question, style=style, language=language)
    return ItemView(
        question=question,
        language=language,
        mode=mode,
        style=style,
        list_choices=list_choices,
        ends_with_answer_header=ends_with_header,
        instruction=wording.task_sentence(**kw),
        hint=wording.terse_hint(**kw),
        target=target,
    )
