"""The ideal response to a question: used for few-shot exemplars and as SFT targets.

One function, so an exemplar in an evaluation prompt and a training target are written
identically.
"""

from __future__ import annotations

from jmedllm.schema import LETTERS, Question

from .wording import ANSWER_HEADER, ANSWER_SEP, LETTER_SEPARATOR, TEXT_SEPARATORS, check_language

#: Answer styles: what a response looks like.
#: "text"        the correct choice text(s), as in the JMedLoRA / JMedLLM studies;
#: "letter"      the correct letter(s), "c" or "a, c";
#: "explanation" the item's explanation, then an answer line "答え：<text>" / "Answer: <text>".
STYLES = ("text", "letter", "explanation")


def check_style(style: str) -> str:
    if style not in STYLES:
        raise ValueError(f"unknown answer style {style!r}: expected one of {', '.join(STYLES)}")
    return style


def format_target(question: Question, *, style: str = "text", language: str | None = None) -> str:
    """The ideal response to ``question`` in answer style ``style``.

    * ``"text"``: the correct choice text; several are joined with ``、`` (ja) or ``, `` (en),
      in choice order. Numeric items give their numeric answer.
    * ``"letter"``: ``"c"``, or ``"a, c"`` for several; numeric items give the number.
    * ``"explanation"``: the explanation, a newline, then ``答え：<text>`` / ``Answer: <text>``.
      An item without an explanation gives only the answer line (the response is still the
      ideal one for the instruction, which asks for reasoning and then that line).

    ``language`` (default: the question's) decides the separators and the answer line.
    Raises ValueError for an item without a gold answer.
    """
    check_style(style)
    lang = check_language(language or question.language)
    if style == "explanation":
        line = answer_line(question, language=lang)
        explanation = (question.explanation or "").strip()
        return f"{explanation}\n{line}" if explanation else line
    if question.is_numeric:
        if question.numeric_answer is None or not str(question.numeric_answer).strip():
            raise ValueError(f"{question.id}: numeric item without numeric_answer, cannot write its target")
        return str(question.numeric_answer).strip()
    if not question.answer:
        raise ValueError(f"{question.id}: no correct choice in `answer`, cannot write its target")
    # an ordering question's answer is its sequence; every other answer is a set, in index order
    indices = question.answer_order if question.selection == "order" and question.answer_order else sorted(question.answer)
    if style == "letter":
        return LETTER_SEPARATOR.join(LETTERS[i] for i in indices)
    return TEXT_SEPARATORS[lang].join(question.choices[i] for i in indices)


def answer_line(question: Question, *, language: str | None = None) -> str:
    """``答え：<text answer>`` / ``Answer: <text answer>``: the last line of an explained answer."""
    lang = check_language(language or question.language)
    return ANSWER_HEADER[lang] + ANSWER_SEP[lang] + format_target(question, style="text", language=lang)
