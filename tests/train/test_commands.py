"""The train / merge commands: argument handling and the exit code and message of user errors."""

from __future__ import annotations

import pytest

from jmedllm.cli import main


def test_qlora_on_cpu_exits_2_with_a_clear_message(tmp_path, tiny_model_dir, qa_jsonl, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code = main(["train", "sft", "--recipe", "tiny-qlora", f"instructions.sources=[{{path: {qa_jsonl}}}]",
                 "--model", str(tiny_model_dir), "--output-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "jmedllm train: error: stage sft: QLoRA needs a CUDA GPU" in err and "method=lora" in err


def test_print_shows_the_resolved_recipe(capsys):
    assert main(["train", "--recipe", "jmedlora-7b-lora", "training.max_steps=10", "--model", "m/x", "--print"]) == 0
    out = capsys.readouterr().out
    assert "max_steps: 10" in out and "name_or_path: m/x" in out and "r: 8" in out


def test_overrides_before_the_options_and_a_stage(capsys):
    assert main(["train", "cpt", "training.max_steps=3", "--recipe", "jmedllm-v1-qwen2-7b", "--print"]) == 0
    assert capsys.readouterr().out.count("max_steps: 3") == 2  # applies to every stage


def test_list_shows_shipped_recipes(capsys):
    assert main(["train", "--list"]) == 0
    out = capsys.readouterr().out
    assert "jmedllm-v1-qwen2-7b" in out and "cpt (cpt, full) -> sft (sft, lora)" in out


@pytest.mark.parametrize("argv, message", [
    (["train", "--print"], "give a recipe"),
    (["train", "--recipe", "no-such-recipe"], "recipe 'no-such-recipe' not found"),
    (["train", "--recipe", "tiny-sft", "oops"], "expected key=value overrides, got oops"),
    (["train", "--recipe", "tiny-sft", "training.max_steps=x", "--print"], "expected an integer"),
    (["merge", "/nonexistent/adapter", "/tmp/out-merge"], "holds no adapter"),
])
def test_user_errors_exit_2(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_write_instructions_from_a_recipe(tmp_path, data_root, capsys):
    import json

    out = tmp_path / "yakugaku.jsonl"
    assert main(["train", "sft", "--recipe", "tiny-sft", "instructions.sources=[{benchmark: 'yakugakuqa:2024', limit: 3, answer_style: explanation}]",
                 "--data-root", str(data_root), "--write-instructions", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 3
    assert rows[0]["source"]["benchmark"] == "yakugakuqa" and rows[0]["source"]["answer_style"] == "explanation"
    assert rows[0]["prompt"].startswith("### 指示:") and "答え" in rows[0]["completion"]
    # and the file reads back as training data
    from jmedllm.train.instructions import read_instructions

    back = read_instructions(out)
    assert [e.prompt for e in back] == [r["prompt"] for r in rows]


def test_overrides_after_the_options_as_docs_show_them(capsys):
    """Issue 10, fault 9: `train sft --recipe R --model M 'key=value'` (docs/training.md) was
    'unrecognized arguments'."""
    assert main(["train", "sft", "--recipe", "jmedlora-7b-lora", "--model", "my/7b-base",
                 "instructions.sources=[{path: qa.jsonl}]", "training.max_steps=7", "--print"]) == 0
    out = capsys.readouterr().out
    assert "path: qa.jsonl" in out and "max_steps: 7" in out and "name_or_path: my/7b-base" in out
    assert main(["train", "--recipe", "jmedllm-v1-qwen2-7b", "--print", "sft", "training.max_steps=4"]) == 0
    assert capsys.readouterr().out.count("max_steps: 4") == 2  # a trailing stage and override are read too
    with pytest.raises(SystemExit) as info:
        main(["train", "sft", "--recipe", "jmedlora-7b-lora", "--model", "m", "x=1", "--bogus"])
    assert info.value.code == 2
