"""Every word a prompt says, in Japanese and English, in one place.

The families (``families.py``) only arrange these pieces; changing a phrase here changes it
for evaluation and for training alike (``sft_example`` uses the same builders).

Conventions shared by all families:

* choices are labelled with lower-case ASCII letters, ``a. text`` (as in the Japanese exams);
* the *answer header* is ``答え：`` (full-width colon, nothing after it) in Japanese and
  ``Answer:`` in English; what follows it starts with :data:`ANSWER_SEP` (``""`` / ``" "``);
* several choice texts are joined with :data:`TEXT_SEPARATORS` (``、`` / ``, ``), several
  letters with :data:`LETTER_SEPARATOR` (``, `` in both languages).
"""

from __future__ import annotations

LANGUAGES = ("ja", "en")

#: The header after which an answer (letter, choice text or number) is written.
ANSWER_HEADER = {"ja": "答え：", "en": "Answer:"}
#: What separates the answer header from the answer.
ANSWER_SEP = {"ja": "", "en": " "}
#: Separator between several choice texts in a "text" answer.
TEXT_SEPARATORS = {"ja": "、", "en": ", "}
#: Separator between several letters in a "letter" answer.
LETTER_SEPARATOR = ", "

#: Labels of the parts of a question.
CONTEXT_LABEL = {"ja": "文脈：", "en": "Context: "}
QUESTION_LABEL = {"ja": "問題：", "en": "Question: "}
CHOICES_LABEL = {"ja": "選択肢：", "en": "Options:"}

#: Alpaca-style section headers.
ALPACA_INSTRUCTION = {"ja": "### 指示:", "en": "### Instruction:"}
ALPACA_INPUT = {"ja": "### 入力:", "en": "### Input:"}
ALPACA_RESPONSE = {"ja": "### 応答:", "en": "### Response:"}
#: Opening sentence of the instruction in the alpaca and chat families.
ANSWER_THE_QUESTION = {"ja": "次の問題に答えてください。", "en": "Answer the following question."}

#: Opening line of the step-by-step ("medpalm") family and its response header.
EXPERT_PREAMBLE = {
    "ja": "あなたは医療の専門家として、医療に関する問題に答えます。",
    "en": "You are a medical expert answering questions on medicine.",
}
EXPERT_RESPONSE = {"ja": "回答：", "en": "Solution:"}

#: System message of the chat family.
CHAT_SYSTEM = {
    "ja": "あなたは医療の専門家です。問題に正確に答えてください。",
    "en": "You are a medical expert. Answer questions accurately.",
}


def check_language(language: str) -> str:
    if language not in LANGUAGES:
        raise ValueError(f"unknown prompt language {language!r}: expected one of {', '.join(LANGUAGES)}")
    return language


def task_sentence(*, n_select: int, numeric: bool, style: str, list_choices: bool, language: str,
                  selection: str = "n") -> str:
    """The sentence that tells the model how many choices to pick and how to write the answer.

    ``style`` is the answer style ("text", "letter", "explanation"); ``list_choices`` is False
    in loglik mode, where the choices are not shown and one choice text is scored at a time.
    ``n_select`` below 2 means one choice. ``selection`` "all" (select all that apply) and
    "order" (arrange the choices) ask for every fitting choice, or the choices in order.
    """
    n = max(n_select, 1)
    if selection != "n" and list_choices and not numeric:
        return _task_selection(selection, style, language)
    if language == "ja":
        return _task_ja(n, numeric, style, list_choices)
    return _task_en(n, numeric, style, list_choices)


def _task_selection(selection: str, style: str, language: str) -> str:
    if language == "ja":
        reason = "段階的に考えて理由を簡潔に述べてから、"
        last_line = "最後の行に「答え：」に続けて"
        if selection == "all":
            choose = "当てはまる選択肢をすべて選び、"
            letters, texts = "選んだ記号を「, 」で区切って", "選んだ選択肢の文を「、」で区切って"
        else:
            choose = "選択肢を正しい順に並べ、"
            letters, texts = "記号をその順に「, 」で区切って", "選択肢の文をその順に「、」で区切って"
        if style == "letter":
            return choose + letters + "書いてください。"
        if style == "explanation":
            return reason + choose + last_line + letters + "書いてください。"
        return choose + texts + "そのまま書いてください。"
    last_line = 'Explain your reasoning step by step, then write the final answer on its own last line as "Answer: " followed by '
    if selection == "all":
        choose = "Select all options that answer the question"
        letters, texts = 'their letters, separated by ", ".', 'their texts exactly as given, separated by ", ".'
    else:
        choose = "Put the options in the correct order"
        letters, texts = 'their letters in that order, separated by ", ".', \
            'their texts exactly as given, in that order, separated by ", ".'
    if style == "letter":
        return choose + " and write " + letters
    if style == "explanation":
        return choose + ". " + last_line + letters
    return choose + " and write " + texts


def _task_ja(n: int, numeric: bool, style: str, list_choices: bool) -> str:
    reason = "段階的に考えて理由を簡潔に述べてから、"
    last_line = "最後の行に「答え：」に続けて"
    if numeric:
        if style == "explanation":
            return reason + last_line + "数値を書いてください。"
        return "答えを数値で書いてください。"
    if not list_choices:  # loglik: the choices are not shown, one choice text is scored at a time
        return "答えを書いてください。" if n == 1 else f"答えを{n}つ、「、」で区切って書いてください。"
    choose = f"答えとなる選択肢を{n}つ選び、"
    if style == "letter":
        return choose + ("その記号を書いてください。" if n == 1 else "選んだ記号を「, 」で区切って書いてください。")
    texts = "その選択肢の文を" if n == 1 else "選んだ選択肢の文を「、」で区切って"
    if style == "explanation":
        return reason + choose + last_line + texts + "書いてください。"
    return choose + texts + "そのまま書いてください。"


def _task_en(n: int, numeric: bool, style: str, list_choices: bool) -> str:
    last_line = 'Explain your reasoning step by step, then write the final answer on its own last line as "Answer: " followed by '
    if numeric:
        if style == "explanation":
            return last_line + "the number."
        return "Write the answer as a number."
    if not list_choices:
        return "Write the answer." if n == 1 else f'The question has {n} answers; write them separated by ", ".'
    choose = "Choose the one option that answers the question" if n == 1 else f"Select {n} options that answer the question"
    if style == "letter":
        return choose + (" and write its letter." if n == 1 else ' and write their letters, separated by ", ".')
    if style == "explanation":
        return choose + ". " + last_line + ("the option text." if n == 1 else 'the option texts, separated by ", ".')
    return choose + (" and write its text exactly as given." if n == 1 else ' and write their texts exactly as given, separated by ", ".')


def terse_hint(*, n_select: int, numeric: bool, style: str, list_choices: bool, language: str,
               selection: str = "n") -> str:
    """The terse family's only instruction: the number to pick (when more than one) and the
    answer form when it is not a letter. Empty for a plain one-letter question."""
    parts: list[str] = []
    ja = language == "ja"
    if not numeric and list_choices and selection != "n":
        if selection == "all":
            parts.append("すべて選べ。" if ja else "Select all that apply.")
        else:
            parts.append("正しい順に並べよ。" if ja else "Put them in the correct order.")
    elif not numeric and n_select > 1:
        if list_choices:
            parts.append(f"{n_select}つ選べ。" if ja else f"Select {n_select}.")
        else:
            parts.append(f"答えは{n_select}つ。" if ja else f"There are {n_select} answers.")
    if not numeric and list_choices and style == "text":
        parts.append("選択肢の文で答えよ。" if ja else "Answer with the option text.")
    return ("" if ja else " ").join(parts)
