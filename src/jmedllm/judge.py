"""Judge extraction: ask a model which answer an unparsed response chose (``--extract-with MODEL``).

Only items the rule-based extractor leaves *unparsed* (and whose response is not blank) go
to the judge. The judge gets a
short fixed prompt (the choices and the tail of the response; below) through any engine of
the ``Engine`` protocol, greedily, and its reply is read by the same rule-based extractor.
What comes back is kept apart from the rule-based result:

- the item record keeps the rule verdict in ``verdict`` and adds ``judge``: the judge model,
  the prompt, its raw reply and the verdict read from the reply (method ``"judge"``, or
  ``"unparsed"`` when the reply names no answer either);
- the summary's headline numbers stay rule-based; a separate ``judge`` section reports how
  many items were asked and parsed, and the metrics with the judge's readings substituted
  for the rule-unparsed items: both accuracies are shown side by side.

Pure helpers (prompt, verdict) are separate from the one function that calls the engine.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

from jmedllm.provenance import model_fingerprint
from jmedllm.schema import LETTERS, GenerationParams, Question

METHOD = "judge"
MAX_RESPONSE_CHARS = 3000  # the tail of a long response is where its answer stands
PARAMS = GenerationParams(max_new_tokens=16, temperature=0.0, seed=0)

_INSTRUCTION = {
    "ja": ("次の解答文が最終的に選んだ選択肢の記号を、記号だけで答えてください。"
           "複数なら「a,c」のように並べ、どれも選んでいなければ「なし」と答えてください。"),
    "en": ("State which option letter(s) the response below finally chose, letters only "
           "(several as \"a,c\"); answer \"none\" if it chose none."),
}
_ORDER_NOTE = {"ja": "並べる問題なので、解答文の順に並べてください。", "en": "Keep the order the response gave."}
_NUMERIC_INSTRUCTION = {
    "ja": "次の解答文が最終的に答えた数値を、数値だけで答えてください。答えていなければ「なし」と答えてください。",
    "en": "State the number the response below finally gave as its answer, the number only; \"none\" if it gave none.",
}
_LABELS = {
    "ja": ("選択肢", "解答文", "選んだ記号", "答えた数値"),
    "en": ("Options", "Response", "Chosen letters", "Number"),
}


def judge_prompt(question: Question, output: str) -> tuple[str, bool]:
    """The judge's user message for one item, and whether the response was cut to its tail."""
    lang = "ja" if question.language == "ja" else "en"
    options, response_label, letters_label, number_label = _LABELS[lang]
    response = output.strip()
    cut = len(response) > MAX_RESPONSE_CHARS
    if cut:
        response = "…" + response[-MAX_RESPONSE_CHARS:]
    if question.is_numeric:
        return f"{_NUMERIC_INSTRUCTION[lang]}\n\n{response_label}:\n{response}\n\n{number_label}:", cut
    choices = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(question.choices))
    instruction = _INSTRUCTION[lang] + (_ORDER_NOTE[lang] if question.selection == "order" else "")
    return (f"{instruction}\n\n{options}:\n{choices}\n\n{response_label}:\n{response}\n\n"
            f"{letters_label}:"), cut


def render_prompt(engine: Any, message: str) -> str | list[dict[str, str]]:
    """The message as the judge engine takes it: a message list for an engine that declares chat
    natively (``engine.supports.chat``), else rendered with its chat template, else plain text."""
    if getattr(getattr(engine, "supports", None), "chat", False):
        return [{"role": "user", "content": message}]
    try:
        return engine.format_chat([{"role": "user", "content": message}], add_generation_prompt=True)
    except (ValueError, NotImplementedError, AttributeError):
        return message


def ask(engine: Any, items: Sequence[tuple[Question, str]]) -> list[dict[str, Any]]:
    """Ask the judge about each (question, raw output); one ``{"prompt", "reply", "response_cut"}`` each."""
    if not items:
        return []
    messages = [judge_prompt(q, out) for q, out in items]
    prompts = [render_prompt(engine, m) for m, _ in messages]
    completions = engine.generate(prompts, PARAMS)
    return [{"prompt": p, "reply": c.text, "response_cut": cut}
            for p, c, (_, cut) in zip(prompts, completions, messages)]


def judge_verdict(question: Question, reply: str):
    """The verdict read from the judge's reply by the rule-based extractor, as method ``judge``
    (``unparsed`` when the reply names no answer)."""
    from jmedllm import scoring

    verdict = scoring.score_generation(question, reply)
    return dataclasses.replace(verdict, method=METHOD if verdict.parsed else verdict.method)


def attach(engine: Any, model: str, pending: Sequence[tuple[Question, dict[str, Any]]]) -> None:
    """Ask the judge about each rule-unparsed record and attach its reading as ``record["judge"]``
    (the rule verdict in ``record["verdict"]`` stays as it is). A blank response is not asked:
    there is nothing in it to read."""
    pending = [(q, r) for q, r in pending if r["output"].strip()]
    answers = ask(engine, [(q, r["output"]) for q, r in pending])
    for (q, r), answer in zip(pending, answers):
        r["judge"] = {"model": model, **answer, "verdict": judge_verdict(q, answer["reply"]).to_dict()}


def describe(engine: Any, model: str) -> dict[str, Any]:
    """What the judge is, for the run identity: its engine description, the fingerprint of local
    weights, and the fixed prompt."""
    local = {"model_fingerprint": model_fingerprint(Path(model))} if Path(model).is_dir() else {}
    return {"model": model, "engine": engine.describe(), **local, "params": dataclasses.asdict(PARAMS),
            "max_response_chars": MAX_RESPONSE_CHARS, "instruction": _INSTRUCTION, "order": _ORDER_NOTE,
            "numeric": _NUMERIC_INSTRUCTION}


def summarize(rule: Sequence[Any], judged: Sequence[Any], *, model: str, seed: int, n_resamples: int) -> dict[str, Any]:
    """The summary's judge section: counts, and every metric by the rules alone and with the
    judge's readings in place of the rule-unparsed items (``judged[i]`` is the judge's verdict for
    item i, or None where it was not asked). Pure."""
    from jmedllm.scoring.aggregate import summarize_group
    from jmedllm.scoring.stats import DEFAULT_CONFIDENCE

    asked = [j for j in judged if j is not None]
    combined = [j if j is not None and j.parsed else v for v, j in zip(rule, judged)]
    kwargs = dict(seed=seed, n_resamples=n_resamples, confidence=DEFAULT_CONFIDENCE)
    return {
        "model": model,
        "method": METHOD,
        "asked": len(asked),
        "parsed_by_judge": sum(j.parsed for j in asked),
        "still_unparsed": sum(not j.parsed for j in asked),
        "rules_only": summarize_group(list(rule), "judge:rules_only", **kwargs),
        "with_judge": summarize_group(combined, "judge:with_judge", **kwargs),
    }


def summary_markdown(section: dict[str, Any]) -> str:
    """The judge section of summary.md: both readings side by side."""
    def cell(m: dict[str, Any] | None) -> str:
        return "–" if not m else f"{100 * m['mean']:.1f} [{100 * m['low']:.1f}, {100 * m['high']:.1f}]"

    rules, combined = section["rules_only"], section["with_judge"]
    lines = ["", f"## Judge extraction ({section['model']})", "",
             f"{section['asked']} item(s) the rule-based extractor left unparsed were asked; the judge named an "
             f"answer for {section['parsed_by_judge']} (method `{METHOD}`), {section['still_unparsed']} stay "
             "unparsed. The headline numbers above are the rules' alone.", "",
             "| metric | rules only | rules + judge |", "|---|---|---|"]
    for metric in ("accuracy", "f1", "exact_match"):
        if metric in rules["metrics"] or metric in combined["metrics"]:
            both = (cell(rules["metrics"].get(metric)), cell(combined["metrics"].get(metric)))
            lines.append(f"| {metric} | {both[0]} | {both[1]} |")
    lines.append(f"| unparsed | {rules['unparsed']} | {combined['unparsed']} |")
    return "\n".join(lines) + "\n"


__all__ = ["METHOD", "PARAMS", "ask", "attach", "describe", "judge_prompt", "judge_verdict", "render_prompt",
           "summarize", "summary_markdown"]
