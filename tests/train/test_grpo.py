"""GRPO with exam-verified rewards: the reward terms on hand-computed cases, and the loop on a tiny model."""

from __future__ import annotations

import json

import pytest

from jmedllm.schema import Question
from jmedllm.train import load_recipe
from jmedllm.train.grpo import run_grpo, toy_format_examples, toy_prompt, toy_questions
from jmedllm.train.provenance import RUN_RECORD
from jmedllm.train.rewards import reward_functions, reward_terms, total_reward
from jmedllm.train.specs import RewardSpec

Q = Question(id="q1", benchmark="b", text="正しいのはどれか。2つ選べ。", choices=("A薬", "B薬", "C薬", "D薬", "E薬"),
             answer=frozenset({0, 2}), n_select=2, language="ja", meta={"kinki": (4,)})


@pytest.mark.parametrize("text, partial, expected", [
    ("a, c", False, {"correct": 1.0, "kinki": 0.0, "format": 0.1, "length": 0.0}),   # exact set
    ("a, b", False, {"correct": 0.0, "kinki": 0.0, "format": 0.1, "length": 0.0}),   # half right, no partial credit
    ("a, b", True, {"correct": 0.5, "kinki": 0.0, "format": 0.1, "length": 0.0}),    # F1 of {a,b} vs {a,c} = 0.5
    ("a, e", False, {"correct": 0.0, "kinki": -1.0, "format": 0.1, "length": 0.0}),  # forbidden choice e
    ("わかりません", False, {"correct": 0.0, "kinki": 0.0, "format": 0.0, "length": 0.0}),  # nothing parsed
])
def test_reward_terms_by_hand(text, partial, expected):
    assert reward_terms(Q, text, RewardSpec(partial_credit=partial)) == expected


def test_length_penalty_beyond_the_target():
    spec = RewardSpec(target_length=10, length_penalty=0.01)
    assert reward_terms(Q, "a, c", spec, n_tokens=25)["length"] == pytest.approx(-0.15)
    assert reward_terms(Q, "a, c", spec, n_tokens=10)["length"] == 0.0
    assert total_reward(reward_terms(Q, "a, c", spec, n_tokens=25)) == pytest.approx(1.0 + 0.1 - 0.15)


def test_trl_reward_functions_find_the_item_by_key():
    funcs = reward_functions({"b:q1": Q}, RewardSpec())
    assert [f.__name__ for f in funcs] == ["correct", "kinki", "format", "length"]
    got = [f(prompts=["p", "p"], completions=["a, c", [{"role": "assistant", "content": "a, e"}]],
             completion_ids=[[1, 2], [3]], qid=["b:q1", "b:q1"]) for f in funcs]
    assert got == [[1.0, 0.0], [0.0, -1.0], [0.1, 0.1], [0.0, 0.0]]


def test_toy_task_is_balanced_and_marked():
    qs = toy_questions(6, n_choices=3)
    assert [min(q.answer) for q in qs] == [0, 1, 2] * 2
    assert all(q.choices[min(q.answer)].startswith("★") and sum(c.startswith("★") for c in q.choices) == 1 for q in qs)
    assert toy_prompt(qs[1]) == "問題：★の付いた選択肢を選べ。\na. りんご\nb. ★みかん\nc. ぶどう\n答え：★ b"
    # the format examples state the marked letter as the prompts do, but answer a random letter
    examples = toy_format_examples(40, seed=1)
    assert {e.completion for e in examples} == {"a", "b"}
    assert sum(e.prompt.endswith(f"★ {e.completion}") for e in examples) not in (0, 40)


@pytest.fixture(scope="module")
def toy_format_model(tmp_path_factory, tiny_model_dir):
    """The tiny model after a short SFT on the toy's answer format with random letters: it answers a
    letter, at chance, whatever letter the prompt states."""
    from jmedllm.train import run_sft
    from jmedllm.train.instructions import write_instructions

    out = tmp_path_factory.mktemp("toy-format")
    data = write_instructions(toy_format_examples(96, seed=1), out / "format.jsonl")
    recipe = load_recipe("tiny-sft", [f"model.name_or_path={tiny_model_dir}", f"output_dir={out}", "method=full",
                                      f"instructions.sources=[{{path: {data}}}]", "instructions.batching=padded",
                                      "contamination.enabled=false", "training.max_steps=30",
                                      "training.learning_rate=1e-2", "training.batch_size=16",
                                      "training.save_steps=1000"])
    return run_sft(recipe)


def test_grpo_reward_rises_on_the_toy_task(tmp_path, toy_format_model):
    """30 GRPO steps (4 prompts x 8 generations) on the toy task through TRL's GRPOTrainer with HF generation:
    the model learns to answer the stated letter, and the mean reward of the last 8 steps clearly exceeds that
    of the first 8 (chance: 0.5 correct + 0.1 format). Seeds 0, 1 and 2 (bench/grpo_toy.py) all pass: first
    0.86 / 0.58 / 0.61, last 1.09 / 1.10 / 1.09 (docs/training.md)."""
    recipe = load_recipe("tiny-grpo", [f"model.name_or_path={toy_format_model}", f"output_dir={tmp_path}"])
    out = run_grpo(recipe)
    record = json.loads((out / RUN_RECORD).read_text())
    assert record["kind"] == "grpo" and record["data"]["use_vllm"] is False
    logged = [h for h in record["training"]["log_history"] if "reward" in h]
    assert len(logged) == 30
    for h in logged:
        assert {"rewards/correct/mean", "rewards/kinki/mean", "rewards/format/mean", "rewards/length/mean"} <= set(h)
    rewards = [h["reward"] for h in logged]
    first, last = sum(rewards[:8]) / 8, sum(rewards[-8:]) / 8
    # the last steps answer the stated letter almost always (1.1 = correct + format), clearly above the first
    assert last >= 1.0 and last >= first + 0.15, rewards


