"""Instruction data: the three JSONL shapes, errors naming file/line/field, benchmark questions via prompts."""

from __future__ import annotations

import json

import pytest

from jmedllm.benchmarks import load_benchmark
from jmedllm.train.instructions import (
    InstructionError,
    InstructionExample,
    from_questions,
    read_instructions,
    write_instructions,
)


def write_lines(path, *objs):
    path.write_text("\n".join(o if isinstance(o, str) else json.dumps(o, ensure_ascii=False) for o in objs) + "\n",
                    encoding="utf-8")
    return path


def test_three_shapes_and_provenance(tmp_path):
    f = write_lines(tmp_path / "d.jsonl",
                    {"id": "a", "prompt": "問: X\n答:", "completion": " Y", "source": {"kind": "mine"}},
                    {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]},
                    "",
                    {"instruction": "糖尿病の合併症は？", "input": "三つ答えよ。", "output": "網膜症、腎症、神経障害"})
    a, b, c = read_instructions(f)
    assert (a.id, a.prompt, a.completion, a.source) == ("a", "問: X\n答:", " Y", {"kind": "mine", "file": str(f), "line": 1})
    assert b.is_chat and b.id == "d.jsonl:2" and b.to_trl() == {
        "prompt": [{"role": "user", "content": "Q"}], "completion": [{"role": "assistant", "content": "A"}]}
    # raw user data, text rendering: instruction, blank line, input, newline; the output is the completion
    assert (c.prompt, c.completion, c.location) == ("糖尿病の合併症は？\n\n三つ答えよ。\n", "網膜症、腎症、神経障害", f"{f}:4")
    (chat,) = read_instructions(write_lines(tmp_path / "u.jsonl", {"instruction": "Q?", "output": "A"}), chat=True)
    assert chat.messages == ({"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A"})


@pytest.mark.parametrize("obj, message", [
    ("{oops", r"d.jsonl:1: invalid JSON"),
    ({"prompt": "x"}, r"d.jsonl:1: field 'completion' missing"),
    ({"prompt": "x", "completion": 3}, r"d.jsonl:1: field 'completion' must be a string"),
    ({"instruction": "x", "output": ""}, r"d.jsonl:1: field 'output' missing or empty"),
    ({"messages": [{"role": "user", "content": "x"}]}, r"d.jsonl:1: the last message must be the assistant's"),
    ({"messages": [{"role": "doctor", "content": "x"}, {"role": "assistant", "content": "y"}]},
     r"d.jsonl:1: messages\[0\].role 'doctor' is not one of"),
    ({"question": "x", "answer": "y"}, r"d.jsonl:1: expected 'messages', 'prompt'\+'completion' or 'instruction'\+'output' \(fields: answer, question\)"),
])
def test_errors_name_file_line_and_field(tmp_path, obj, message):
    with pytest.raises(InstructionError, match=message):
        read_instructions(write_lines(tmp_path / "d.jsonl", obj))


def test_write_then_read_round_trip(tmp_path):
    examples = [InstructionExample("x", prompt="p", completion="c", source={"kind": "synth", "passage": 2}),
                InstructionExample("y", messages=({"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}))]
    back = read_instructions(write_instructions(examples, tmp_path / "o.jsonl"))
    assert [(e.id, e.prompt, e.completion, e.messages) for e in back] == [(e.id, e.prompt, e.completion, e.messages) for e in examples]
    assert back[0].source == {"kind": "synth", "passage": 2, "file": str(tmp_path / "o.jsonl"), "line": 1}


def test_benchmark_questions_in_every_answer_style(data_root):
    from jmedllm.prompts import build_prompt, format_target

    questions = load_benchmark("yakugakuqa:2024", data_root, limit=2).questions
    q = questions[0]
    for style in ("text", "letter", "explanation"):
        (ex, _) = from_questions(questions, family="alpaca", answer_style=style)
        # the prompt is the zero-shot evaluation prompt of the same family; the completion its ideal answer
        assert ex.prompt == build_prompt(q, family="alpaca", mode="generate", answer_style=style).text
        assert ex.completion.strip() == format_target(q, style=style).strip()
        assert ex.source["benchmark"] == "yakugakuqa" and ex.source["item_id"] == q.id
    assert q.explanation and from_questions([q], family="alpaca", answer_style="explanation")[0].source["explanation"]
    (chat, _) = from_questions(questions, family="chat")
    assert chat.is_chat and chat.messages[-1]["role"] == "assistant" and chat.messages[0]["role"] == "system"


def test_family_is_read_as_eval_reads_it(data_root, tmp_path):
    questions = load_benchmark("yakugakuqa:2024", data_root, limit=1).questions
    with pytest.raises(InstructionError, match="unknown prompt family 'plain'"):
        from_questions(questions, family="plain")
    with pytest.raises(InstructionError, match="template file .*missing.j2 not found"):
        from_questions(questions, family=str(tmp_path / "missing.j2"))
    from jmedllm.prompts import PACKAGED_TEMPLATES, build_prompt

    template = PACKAGED_TEMPLATES / "alpaca_example.j2"
    (ex,) = from_questions(questions, family=str(template))
    assert ex.prompt == build_prompt(questions[0], family="alpaca", mode="generate", template_file=template).text
    assert ex.source["family"] == str(template)


def test_blank_answer_text_is_refused_with_the_item_named():
    from jmedllm.schema import Question
    from jmedllm.train.instructions import InstructionError, from_questions

    q = Question("114C11", "igakuqa", "図中の●の組合せで正しいのはどれか。", ("\u3000", "\u3000"), frozenset({1}), 1, "ja",
                 meta={"source_file": "igakuqa/data/2020/114-C.jsonl", "source_line": 11})
    with pytest.raises(InstructionError, match=r"114-C.jsonl:11: 114C11 has a blank text answer"):
        from_questions([q], family="alpaca", answer_style="text")
    assert from_questions([q], family="alpaca", answer_style="letter")[0].completion == "b"
