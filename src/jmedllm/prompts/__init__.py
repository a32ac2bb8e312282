"""Prompts: template families (ja + en), user Jinja2 templates, few-shot selection, choice
shuffling, and the answer targets used both as exemplars and as training targets.

Evaluation:  build_prompt(q, family=..., mode=..., shots=select_shots(q, pool, k, seed))
             choice_continuations(q, mode=...)   # loglik / letter scoring
Training:    sft_example(q, family=...)          # the same prompt + format_target answer
See docs/prompts.md for renderings of every family.
"""

from .build import MODES, Prompt, build_prompt, choice_continuations, resolve_prompt_spec, sft_example
from .families import FAMILIES, Family, get_family
from .shots import normalised_text, select_shots
from .shuffle import permutation_for, permute_choices, shuffle_choices, to_original_indices
from .stable import stable_key
from .targets import STYLES, answer_line, format_target
from .templates import PACKAGED_TEMPLATES, PromptTemplateError
from .wording import ANSWER_HEADER, ANSWER_SEP, LANGUAGES, LETTER_SEPARATOR, TEXT_SEPARATORS

__all__ = [
    "ANSWER_HEADER",
    "ANSWER_SEP",
    "FAMILIES",
    "Family",
    "LANGUAGES",
    "LETTER_SEPARATOR",
    "MODES",
    "PACKAGED_TEMPLATES",
    "Prompt",
    "PromptTemplateError",
    "STYLES",
    "TEXT_SEPARATORS",
    "answer_line",
    "build_prompt",
    "choice_continuations",
    "format_target",
    "get_family",
    "normalised_text",
    "permutation_for",
    "permute_choices",
    "resolve_prompt_spec",
    "select_shots",
    "sft_example",
    "shuffle_choices",
    "stable_key",
    "to_original_indices",
]
