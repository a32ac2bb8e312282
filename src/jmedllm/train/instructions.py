"""Instruction data: build it from benchmark questions or user JSONL, read and write it with provenance.

One record per line, in one of three shapes (``read_instructions`` accepts all three):

- rendered text: ``{"id", "prompt", "completion", "source"}`` — the prompt exactly as the model
  will see it at evaluation time (built by jmedllm.prompts for benchmark questions);
- chat: ``{"id", "messages": [{"role", "content"}, ...], "source"}`` — rendered with the model's
  chat template at training time; the last message is the assistant's answer (the loss is on it);
- raw user data: ``{"instruction", "input"?, "output"}`` — rendered as chat messages when the
  stage sets ``instructions.chat``, else as text: ``instruction``, a blank line and ``input`` when
  present, then a newline; the completion is ``output``.

``source`` holds the provenance: ``kind`` (benchmark / user / synth), ``benchmark`` and
``item_id``, or ``document_id`` / ``passage`` / ``model`` for synthesised pairs; the reader adds
``file`` and ``line``. Errors name file, line and field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from jmedllm.train.jsonl import read_records, record_location, write_records

ROLES = ("system", "user", "assistant")
ANSWER_STYLES = ("text", "letter", "explanation")


class InstructionError(ValueError):
    """Instruction data that cannot be used as given; the message names file, line and field."""


@dataclass(frozen=True)
class InstructionExample:
    """One training example: a prompt and its completion (text), or chat messages ending with the answer."""

    id: str
    prompt: str | None = None
    completion: str | None = None
    messages: tuple[Mapping[str, str], ...] | None = None
    source: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        text = self.prompt is not None or self.completion is not None
        if text == (self.messages is not None):
            raise InstructionError(f"{self.id}: give either prompt and completion, or messages")
        if text and not (isinstance(self.prompt, str) and isinstance(self.completion, str)):
            raise InstructionError(f"{self.id}: prompt and completion must both be strings")
        if self.messages is not None:
            object.__setattr__(self, "messages", tuple(dict(m) for m in self.messages))
            _check_messages(self.messages, self.id)

    @property
    def is_chat(self) -> bool:
        return self.messages is not None

    @property
    def location(self) -> str:
        """Where the record comes from, for reports: file:line, else benchmark item, else its id."""
        return record_location(self.source, self.id)

    def text(self) -> str:
        """All the text of the example (for the contamination guard)."""
        if self.messages is not None:
            return "\n".join(m["content"] for m in self.messages)
        return f"{self.prompt}\n{self.completion}"

    def to_trl(self) -> dict[str, Any]:
        """A TRL prompt-completion row: text, or conversational (prompt messages / the answer message)."""
        if self.messages is not None:
            return {"prompt": [dict(m) for m in self.messages[:-1]], "completion": [dict(self.messages[-1])]}
        return {"prompt": self.prompt, "completion": self.completion}

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id}
        if self.messages is not None:
            out["messages"] = [dict(m) for m in self.messages]
        else:
            out["prompt"], out["completion"] = self.prompt, self.completion
        out["source"] = {k: v for k, v in self.source.items() if k not in ("file", "line")}
        return out


def _check_messages(messages: Sequence[Mapping[str, Any]], where: str) -> None:
    if not messages:
        raise InstructionError(f"{where}: messages is empty")
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or set(m) - {"role", "content"} or "role" not in m or "content" not in m:
            raise InstructionError(f"{where}: messages[{i}] must be {{\"role\": ..., \"content\": ...}}")
        if m["role"] not in ROLES:
            raise InstructionError(f"{where}: messages[{i}].role {m['role']!r} is not one of {', '.join(ROLES)}")
        if not isinstance(m["content"], str):
            raise InstructionError(f"{where}: messages[{i}].content must be a string")
    if messages[-1]["role"] != "assistant":
        raise InstructionError(f"{where}: the last message must be the assistant's answer (role 'assistant')")
    if len(messages) < 2:
        raise InstructionError(f"{where}: messages needs at least a user turn and the assistant's answer")


def render_user_instruction(instruction: str, input_text: str | None, output: str, *, chat: bool,
                            example_id: str, source: Mapping[str, Any]) -> InstructionExample:
    """A raw instruction/input/output record as a training example (see the module docstring)."""
    body = instruction.strip() if not input_text else f"{instruction.strip()}\n\n{input_text.strip()}"
    if chat:
        return InstructionExample(example_id, messages=({"role": "user", "content": body},
                                                        {"role": "assistant", "content": output.strip()}),
                                  source=source)
    return InstructionExample(example_id, prompt=body + "\n", completion=output.strip(), source=source)


def parse_instruction(obj: Any, *, chat: bool, example_id: str, source: dict[str, Any], where: str) -> InstructionExample:
    """One JSON object in any of the three accepted shapes."""
    if not isinstance(obj, dict):
        raise InstructionError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    src = dict(obj.get("source") or {}) if isinstance(obj.get("source"), dict) else {}
    src.update(source)
    ex_id = str(obj.get("id") or example_id)
    if "messages" in obj:
        if not isinstance(obj["messages"], list):
            raise InstructionError(f"{where}: field 'messages' must be a list")
        _check_messages(obj["messages"], where)
        return InstructionExample(ex_id, messages=tuple(obj["messages"]), source=src)
    if "prompt" in obj or "completion" in obj:
        for key in ("prompt", "completion"):
            if key not in obj:
                raise InstructionError(f"{where}: field {key!r} missing (a prompt needs its completion)")
        p, c = obj["prompt"], obj["completion"]
        if isinstance(p, list) and isinstance(c, list):  # conversational prompt-completion
            msgs = p + c
            _check_messages(msgs, where)
            return InstructionExample(ex_id, messages=tuple(msgs), source=src)
        for key, v in (("prompt", p), ("completion", c)):
            if not isinstance(v, str):
                raise InstructionError(f"{where}: field {key!r} must be a string, got {type(v).__name__}")
        if not c.strip():
            raise InstructionError(f"{where}: field 'completion' is empty")
        return InstructionExample(ex_id, prompt=p, completion=c, source=src)
    if "instruction" in obj or "output" in obj:
        for key in ("instruction", "output"):
            if not isinstance(obj.get(key), str) or not obj[key].strip():
                raise InstructionError(f"{where}: field {key!r} missing or empty")
        inp = obj.get("input")
        if inp is not None and not isinstance(inp, str):
            raise InstructionError(f"{where}: field 'input' must be a string")
        src.setdefault("kind", "user")
        return render_user_instruction(obj["instruction"], inp, obj["output"], chat=chat,
                                       example_id=ex_id, source=src)
    keys = ", ".join(sorted(obj)) or "none"
    raise InstructionError(f"{where}: expected 'messages', 'prompt'+'completion' or 'instruction'+'output' "
                           f"(fields: {keys})")


def read_instructions(path: str | Path, *, chat: bool = False, limit: int | None = None) -> list[InstructionExample]:
    """Read instruction JSONL in any of the accepted shapes, adding file and line to the provenance."""
    return read_records(path, lambda obj, where, ex_id, src: parse_instruction(
        obj, chat=chat, example_id=ex_id, source=src, where=where), error=InstructionError, what="instruction",
        limit=limit)


def write_instructions(examples: Iterable[InstructionExample], path: str | Path) -> Path:
    """Write examples as JSONL (UTF-8, one object per line), with their provenance."""
    return write_records(examples, path)


def from_questions(
    questions: Iterable[Any],
    *,
    family: str,
    language: str | None = None,
    answer_style: str = "text",
) -> list[InstructionExample]:
    """Benchmark questions as training examples: the zero-shot prompt of ``jmedllm eval`` and its answer.

    Built by ``jmedllm.prompts.sft_example`` with ``target_style=answer_style``: ``text`` — the correct
    choice text(s), as in JMedLoRA / JMedLLM-v1; ``letter`` — the choice letter(s); ``explanation`` —
    the source's explanation (e.g. YakugakuQA ``comment``) then the answer line; an item without an
    explanation gets the answer line alone, and ``source.explanation`` records whether it had one.
    """
    from jmedllm.prompts import PromptTemplateError, resolve_prompt_spec, sft_example

    if answer_style not in ANSWER_STYLES:
        raise InstructionError(f"answer_style must be one of {', '.join(ANSWER_STYLES)}, not {answer_style!r}")
    try:  # as `jmedllm eval --prompt` reads it
        family_name, template_file = resolve_prompt_spec(family)
    except PromptTemplateError as exc:
        raise InstructionError(str(exc)) from None
    out: list[InstructionExample] = []
    for q in questions:
        try:
            row = sft_example(q, family=family_name, language=language, target_style=answer_style,
                              template_file=template_file)
        except ValueError as exc:
            where = f"{q.meta.get('source_file', q.benchmark)}:{q.meta.get('source_line', q.id)}"
            raise InstructionError(f"{where}: cannot build a training example for {q.id}: {exc}") from None
        target = row["completion"] if "completion" in row else row["messages"][-1]["content"]
        if not target.strip():
            where = f"{q.meta.get('source_file', q.benchmark)}:{q.meta.get('source_line', q.id)}"
            raise InstructionError(f"{where}: {q.id} has a blank {answer_style} answer (a blank choice text?); "
                                   "leave it out of the training questions or use answer_style letter")
        source = {"kind": "benchmark", "benchmark": q.benchmark, "item_id": q.id, "family": family,
                  "language": language or q.language, "answer_style": answer_style}
        if answer_style == "explanation":
            source["explanation"] = bool((q.explanation or "").strip())
        ex_id = f"{q.benchmark}:{q.id}"
        if "messages" in row:
            out.append(InstructionExample(ex_id, messages=tuple(row["messages"]), source=source))
        else:
            out.append(InstructionExample(ex_id, prompt=row["prompt"], completion=row["completion"], source=source))
    return out
