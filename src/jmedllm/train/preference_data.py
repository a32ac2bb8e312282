"""Preference data: pairs built from exam questions, and user preference JSONL.

From a benchmark question (``preference_pairs``):

- the **prompt** is exactly the zero-shot prompt of ``jmedllm eval`` (``prompts.sft_example``, the
  same family as SFT and evaluation, so the formats cannot drift);
- **chosen** is the ideal answer in the source's ``answer_style`` (text, letter, or the source's
  explanation then the answer line);
- **rejected** is the same answer written for a *wrong* choice set of the same size: one correct
  choice replaced by a wrong one. With ``rejected: kinki_first`` (default) a **forbidden choice**
  (禁忌肢, ``meta["kinki"]``) is used whenever the item has one, so the model learns most of all
  not to pick what fails a candidate; otherwise a wrong choice drawn with a fixed seed. In the
  explanation style the rejected answer keeps the explanation and ends in the wrong answer line,
  so the pair differs only in the conclusion (no length bias).

Items that cannot give a pair are counted by reason in the source summary, never dropped
silently: numeric items and ordering items (no wrong choice set), items counted correct for
everyone, items with no wrong choice left.

User files (``read_preferences``): one JSON object per line, ``prompt`` / ``chosen`` /
``rejected`` (strings, or lists of chat messages: TRL's conversational preference format), or
``prompt`` / ``completion`` / ``label`` (unpaired, for KTO). Errors name file, line and field.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from jmedllm.prompts.stable import stable_key
from jmedllm.train.jsonl import read_records, record_location, write_records


class PreferenceError(ValueError):
    """Preference data that cannot be used as given; the message names file, line and field."""


@dataclass(frozen=True)
class PreferenceExample:
    """One preference record: a prompt with a chosen and a rejected answer, or (KTO) one labelled answer."""

    id: str
    prompt: Any  # str, or a list of chat messages
    chosen: Any = None  # str, or [assistant message]
    rejected: Any = None
    completion: Any = None  # unpaired (KTO): the answer ...
    label: bool | None = None  # ... and whether it is desirable
    source: Mapping[str, Any] = field(default_factory=dict)

    @property
    def paired(self) -> bool:
        return self.completion is None

    @property
    def location(self) -> str:
        """Where the record comes from, for reports: file:line, else benchmark item, else its id."""
        return record_location(self.source, self.id)

    def text(self) -> str:
        """All the text of the record, for the contamination guard (prompt and every answer)."""
        parts = []
        for value in (self.prompt, self.chosen, self.rejected, self.completion):
            if isinstance(value, str):
                parts.append(value)
            elif isinstance(value, list):
                parts.extend(m["content"] for m in value)
        return "\n".join(parts)

    def to_trl(self) -> dict[str, Any]:
        if self.paired:
            return {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}
        return {"prompt": self.prompt, "completion": self.completion, "label": bool(self.label)}

    def to_json(self) -> dict[str, Any]:
        out = {"id": self.id, **self.to_trl()}
        out["source"] = {k: v for k, v in self.source.items() if k not in ("file", "line")}
        return out


def wrong_set(question: Any, *, prefer_kinki: bool, seed: int = 0) -> tuple[frozenset[int], bool] | None:
    """A wrong answer set of the same size as the gold one, and whether it holds a forbidden choice.

    One correct choice (drawn with a seed fixed per item) is replaced by a wrong one: a forbidden
    choice when ``prefer_kinki`` and the item has one, else any choice in no accepted answer set.
    None when no wrong choice exists.
    """
    from jmedllm.scoring import exam as exam_rules

    accepted = exam_rules.accepted_answer_sets(question)
    in_any = frozenset().union(*accepted) if accepted else frozenset(question.answer)
    wrong = [i for i in range(len(question.choices)) if i not in in_any]
    if not wrong or not question.answer:
        return None
    rng = random.Random(stable_key("preference", question.benchmark, question.id, seed))
    kinki = [k for k in (exam_rules.kinki_of(question) or ()) if k in wrong]
    pool = kinki if prefer_kinki and kinki else wrong
    bad = rng.choice(pool)
    keep = sorted(question.answer)
    keep.remove(rng.choice(keep))
    return frozenset(keep) | {bad}, bad in kinki


def preference_pairs(
    questions: Iterable[Any],
    *,
    family: str,
    language: str | None = None,
    answer_style: str = "text",
    rejected: str = "kinki_first",
    seed: int = 0,
) -> tuple[list[PreferenceExample], dict[str, Any]]:
    """Benchmark questions as preference pairs (see the module docstring); returns the pairs and counts."""
    from jmedllm.prompts import PromptTemplateError, resolve_prompt_spec, sft_example
    from jmedllm.scoring import exam as exam_rules

    try:
        family_name, template_file = resolve_prompt_spec(family)
    except PromptTemplateError as exc:
        raise PreferenceError(str(exc)) from None
    out: list[PreferenceExample] = []
    skipped: dict[str, list[str]] = {}
    with_kinki = kinki_used = 0

    def skip(reason: str, q: Any) -> None:
        skipped.setdefault(reason, []).append(q.id)

    for q in questions:
        if q.is_numeric:
            skip("numeric", q)
            continue
        if q.selection == "order":
            skip("ordering", q)
            continue
        if exam_rules.is_counted_correct_for_all(q):
            skip("counted_correct_for_all", q)
            continue
        if not q.answer:
            skip("no_answer", q)
            continue
        has_kinki = bool(exam_rules.kinki_of(q))
        picked = wrong_set(q, prefer_kinki=rejected == "kinki_first", seed=seed)
        if picked is None:
            skip("no_wrong_choice", q)
            continue
        bad_set, is_kinki = picked
        try:
            good = sft_example(q, family=family_name, language=language, target_style=answer_style,
                               template_file=template_file)
            bad = sft_example(dataclasses.replace(q, answer=bad_set), family=family_name, language=language,
                              target_style=answer_style, template_file=template_file)
        except ValueError as exc:
            where = f"{q.meta.get('source_file', q.benchmark)}:{q.meta.get('source_line', q.id)}"
            raise PreferenceError(f"{where}: cannot build a preference pair for {q.id}: {exc}") from None
        source = {"kind": "benchmark", "benchmark": q.benchmark, "item_id": q.id, "family": family,
                  "answer_style": answer_style, "rejected_choices": sorted(bad_set - q.answer),
                  "rejected_is_kinki": is_kinki}
        if "messages" in good:
            prompt, bad_prompt = good["messages"][:-1], bad["messages"][:-1]
            chosen, rej = [good["messages"][-1]], [bad["messages"][-1]]
        else:
            prompt, bad_prompt, chosen, rej = good["prompt"], bad["prompt"], good["completion"], bad["completion"]
        if prompt != bad_prompt:  # the prompt must not depend on the answer; a template that does is an error
            raise PreferenceError(f"{q.id}: the prompt of family {family!r} changes with the answer set; "
                                  "a preference pair needs one prompt")
        with_kinki += has_kinki
        kinki_used += is_kinki
        out.append(PreferenceExample(f"{q.benchmark}:{q.id}", prompt, chosen, rej, source=source))
    summary = {"pairs": len(out), "items_with_kinki": with_kinki, "rejected_is_kinki": kinki_used,
               "skipped": {k: len(v) for k, v in skipped.items()},
               "skipped_items": {k: v[:50] for k, v in skipped.items()}}
    return out, summary


def _message_list(value: Any, where: str, key: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise PreferenceError(f"{where}: field {key!r} must be a string or a non-empty list of messages")
    for i, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise PreferenceError(f"{where}: {key}[{i}] must be {{\"role\": ..., \"content\": ...}}")
    return [dict(m) for m in value]


def parse_preference(obj: Any, *, example_id: str, source: dict[str, Any], where: str) -> PreferenceExample:
    """One JSON object: paired (prompt/chosen/rejected) or unpaired (prompt/completion/label)."""
    if not isinstance(obj, dict):
        raise PreferenceError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    src = dict(obj["source"]) if isinstance(obj.get("source"), dict) else {}
    src.update(source)
    src.setdefault("kind", "user")
    ex_id = str(obj.get("id") or example_id)
    paired = "chosen" in obj or "rejected" in obj
    keys = ("prompt", "chosen", "rejected") if paired else ("prompt", "completion", "label")
    missing = [k for k in keys if k not in obj]
    if missing:
        fields = ", ".join(sorted(obj)) or "none"
        raise PreferenceError(f"{where}: field {missing[0]!r} missing (expected prompt/chosen/rejected, or "
                              f"prompt/completion/label; fields: {fields})")
    values: dict[str, Any] = {}
    text_keys = keys if paired else keys[:2]
    kinds = set()
    for k in text_keys:
        v = obj[k]
        if isinstance(v, str):
            if k != "prompt" and not v.strip():
                raise PreferenceError(f"{where}: field {k!r} is empty")
            kinds.add("text")
            values[k] = v
        else:
            values[k] = _message_list(v, where, k)
            kinds.add("chat")
    if len(kinds) > 1:
        raise PreferenceError(f"{where}: mix of text and chat messages across {', '.join(text_keys)}")
    if paired and values["chosen"] == values["rejected"]:
        raise PreferenceError(f"{where}: chosen and rejected are the same")
    if not paired:
        if not isinstance(obj["label"], bool):
            raise PreferenceError(f"{where}: field 'label' must be true or false")
        return PreferenceExample(ex_id, values["prompt"], completion=values["completion"], label=obj["label"],
                                 source=src)
    return PreferenceExample(ex_id, values["prompt"], values["chosen"], values["rejected"], source=src)


def read_preferences(path: str | Path, *, limit: int | None = None) -> list[PreferenceExample]:
    """Read preference JSONL, adding file and line to the provenance."""
    return read_records(path, lambda obj, where, ex_id, src: parse_preference(
        obj, example_id=ex_id, source=src, where=where), error=PreferenceError, what="preference", limit=limit)


def write_preferences(examples: Iterable[PreferenceExample], path: str | Path) -> Path:
    return write_records(examples, path)
