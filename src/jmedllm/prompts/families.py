"""The built-in prompt families: how the views of the exemplars and of the evaluated item are
laid out. Wording lives in ``wording.py``; renderings are shown in docs/prompts.md.

* ``alpaca``  ### 指示: / ### 入力: / ### 応答: blocks (### Instruction: / ### Input: /
  ### Response:); each exemplar is a complete block followed by its answer.
* ``medpalm`` a medical-expert preamble, then per question the body, the task sentence and
  a response header; by default the model reasons step by step and ends with "答え：X".
* ``terse``   question, lettered choices and the answer header, nothing else (a hint line
  only when more than one choice is to be picked or the answer is not a letter).
* ``chat``    the alpaca content as chat messages (system + user, exemplars as alternating
  user / assistant turns), rendered later with the model's own chat template.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from . import wording
from .views import ItemView


@dataclass(frozen=True)
class Rendered:
    """A family's output: a prompt string, or chat messages plus the text that the
    assistant turn starts with (an answer header in letter / loglik modes)."""

    text: str | None = None
    messages: tuple[dict[str, str], ...] | None = None
    assistant_prefix: str = ""


@dataclass(frozen=True)
class Family:
    name: str
    description: str
    default_style: str  # answer style in generate mode when none is asked for
    styles: tuple[str, ...]  # answer styles the family can ask for
    always_answer_header: bool  # every item ends with the answer header (terse)
    is_chat: bool
    render: Callable[[Sequence[ItemView], ItemView, str], Rendered]  # (exemplars, item, language)


def _join(language: str) -> str:
    """What joins two sentences: nothing in Japanese, a space in English."""
    return "" if language == "ja" else " "


def _alpaca_block(v: ItemView) -> str:
    lang = v.language
    return (
        f"{wording.ALPACA_INSTRUCTION[lang]}\n"
        f"{wording.ANSWER_THE_QUESTION[lang]}{_join(lang)}{v.instruction}\n\n"
        f"{wording.ALPACA_INPUT[lang]}\n"
        + "\n".join(v.body_lines())
        + f"\n\n{wording.ALPACA_RESPONSE[lang]}\n{v.answer_header}"
    )


def _render_alpaca(shots: Sequence[ItemView], item: ItemView, language: str) -> Rendered:
    blocks = [_alpaca_block(s) + s.completion for s in shots] + [_alpaca_block(item)]
    return Rendered(text="\n\n".join(blocks))


def _expert_block(v: ItemView) -> str:
    lang = v.language
    return (
        "\n".join(v.body_lines())
        + f"\n{v.instruction}\n\n{wording.EXPERT_RESPONSE[lang]}\n{v.answer_header}"
    )


def _render_medpalm(shots: Sequence[ItemView], item: ItemView, language: str) -> Rendered:
    blocks = [_expert_block(s) + s.completion for s in shots] + [_expert_block(item)]
    return Rendered(text=wording.EXPERT_PREAMBLE[language] + "\n\n" + "\n\n".join(blocks))


def _terse_block(v: ItemView) -> str:
    lines = v.body_lines(choices_label=False)
    if v.hint:
        lines.append(v.hint)
    return "\n".join(lines) + "\n" + v.answer_header


def _render_terse(shots: Sequence[ItemView], item: ItemView, language: str) -> Rendered:
    blocks = [_terse_block(s) + s.completion for s in shots] + [_terse_block(item)]
    return Rendered(text="\n\n".join(blocks))


def _chat_user(v: ItemView) -> str:
    lang = v.language
    return f"{wording.ANSWER_THE_QUESTION[lang]}{_join(lang)}{v.instruction}\n\n" + "\n".join(v.body_lines())


def _render_chat(shots: Sequence[ItemView], item: ItemView, language: str) -> Rendered:
    messages = [{"role": "system", "content": wording.CHAT_SYSTEM[language]}]
    for s in shots:
        messages.append({"role": "user", "content": _chat_user(s)})
        messages.append({"role": "assistant", "content": s.answer_header + s.completion})
    messages.append({"role": "user", "content": _chat_user(item)})
    return Rendered(messages=tuple(messages), assistant_prefix=item.answer_header)


FAMILIES: dict[str, Family] = {
    "alpaca": Family(
        name="alpaca",
        description="### 指示 / ### 入力 / ### 応答 blocks (### Instruction / Input / Response); answer = choice text",
        default_style="text",
        styles=("text", "letter", "explanation"),
        always_answer_header=False,
        is_chat=False,
        render=_render_alpaca,
    ),
    "medpalm": Family(
        name="medpalm",
        description="medical-expert preamble; reason step by step, last line 答え：X / Answer: X",
        default_style="explanation",
        styles=("text", "letter", "explanation"),
        always_answer_header=False,
        is_chat=False,
        render=_render_medpalm,
    ),
    "terse": Family(
        name="terse",
        description="question, lettered choices, 答え： / Answer: and nothing else; answer = letter",
        default_style="letter",
        styles=("letter", "text"),
        always_answer_header=True,
        is_chat=False,
        render=_render_terse,
    ),
    "chat": Family(
        name="chat",
        description="alpaca content as system + user messages for the model's chat template; exemplars as user/assistant turns",
        default_style="text",
        styles=("text", "letter", "explanation"),
        always_answer_header=False,
        is_chat=True,
        render=_render_chat,
    ),
}


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown prompt family {name!r}: expected one of {', '.join(FAMILIES)}") from None
