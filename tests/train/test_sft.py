"""Instruction tuning on a tiny real model: response-only loss, packed examples isolated, length policy, QLoRA."""

from __future__ import annotations

import json

import pytest
import torch

from jmedllm.cli import UserError
from jmedllm.train import load_recipe, run_sft
from jmedllm.train.instructions import read_instructions
from jmedllm.train.provenance import RUN_RECORD
from jmedllm.train.sft import measure_lengths

from train_helpers import QA, CaptureBatches


def sft_recipe(out, model_dir, data, *extra):
    return load_recipe("tiny-sft", [
        f"model.name_or_path={model_dir}", f"output_dir={out}", "contamination.enabled=false",
        f"instructions.sources=[{{path: {data}}}]", "instructions.max_length=128", *extra])


def expected_rows(tok, chat=False):
    """Token ids and labels of each QA pair, built by hand from the tokenizer: -100 on the prompt."""
    rows = []
    for q, a in QA:
        if chat:
            prompt = tok.apply_chat_template([{"role": "user", "content": q}], tokenize=True,
                                             add_generation_prompt=True, return_dict=True)["input_ids"]
            full = tok.apply_chat_template([{"role": "user", "content": q}, {"role": "assistant", "content": a}],
                                           tokenize=True, return_dict=True)["input_ids"]
        else:
            prompt = tok(q + "\n")["input_ids"]
            full = tok(q + "\n" + a + tok.eos_token)["input_ids"]
        assert full[: len(prompt)] == prompt
        rows.append((list(full), [-100] * len(prompt) + list(full[len(prompt):])))
    return rows


def segments(batch):
    """Split each row of a batch into its examples: by position-id resets (packed) or padding (padded)."""
    out = []
    for r in range(batch["input_ids"].shape[0]):
        ids, labels = batch["input_ids"][r].tolist(), batch["labels"][r].tolist()
        if "position_ids" in batch:
            pos = batch["position_ids"][r].tolist()
            starts = [i for i, p in enumerate(pos) if p == 0] + [len(pos)]
            out += [(ids[s:e], labels[s:e], (r, s, e)) for s, e in zip(starts, starts[1:])]
        else:
            n = int(batch["attention_mask"][r].sum())
            out.append((ids[:n], labels[:n], (r, 0, n)))
    return out


@pytest.mark.parametrize("batching", ["padded", "packed"])
def test_prompt_tokens_are_masked_in_what_the_model_is_fed(tmp_path, tiny_model_dir, qa_jsonl, batching):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    cap = CaptureBatches()
    out = run_sft(sft_recipe(tmp_path, tiny_model_dir, qa_jsonl, f"instructions.batching={batching}",
                             "training.max_steps=-1", "training.epochs=1"), callbacks=[cap])
    fed = [seg for batch in cap.inputs for seg in segments(batch)]
    fed = [(ids, labels) for ids, labels, _ in fed if any(l != -100 for l in labels)]  # drop pad-only segments
    expected = expected_rows(tok)
    # Every example was fed exactly once in the epoch, with -100 on its prompt tokens only.
    # (In packed rows the first label of an example is -100 by construction: its first token is a prompt token.)
    assert sorted(fed) == sorted(expected)
    record = json.loads((out / RUN_RECORD).read_text())
    assert record["data"]["examples"] == 12 and record["data"]["truncated_completions"] == 0
    assert record["data"]["prompt_not_a_prefix"] == []
    assert (out / "adapter_model.safetensors").is_file() and (out / "adapter_config.json").is_file()


def test_chat_examples_mask_everything_but_the_answer(tmp_path, tiny_model_dir, qa_jsonl):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    cap = CaptureBatches()
    run_sft(sft_recipe(tmp_path, tiny_model_dir, qa_jsonl, "instructions.chat=true", "instructions.batching=padded",
                       "training.max_steps=-1", "training.epochs=1"), callbacks=[cap])
    fed = [(ids, labels) for batch in cap.inputs for ids, labels, _ in segments(batch)]
    assert sorted(fed) == sorted(expected_rows(tok, chat=True))
    # The answer's end-of-turn token is learnt, so the model learns to stop.
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert all(im_end in [l for l in labels if l != -100] for _, labels in fed)


@pytest.mark.parametrize("layout", ["rows", "flat"])
def test_packed_examples_do_not_attend_to_each_other(tmp_path, tiny_model_dir, qa_jsonl, layout):
    """The log-probs of an example packed with others equal those of the example alone (padded batch).

    ``rows``: packed rows stay a batch (our collator, sdpa/eager); ``flat``: TRL flattens the batch
    into one sequence (its layout for FlashAttention) — both must isolate the examples.
    """
    per_example = {}
    for batching in ("padded", "packed"):
        cap = CaptureBatches()
        run_sft(sft_recipe(tmp_path / batching, tiny_model_dir, qa_jsonl, f"instructions.batching={batching}",
                           "training.max_steps=-1", "training.epochs=1", "training.learning_rate=0",
                           f"training.packed_layout={layout}", "instructions.max_length=64"),
                callbacks=[cap])
        got = {}
        for batch, lp in zip(cap.inputs, cap.log_probs):
            for ids, labels, (r, s, e) in segments(batch):
                if any(l != -100 for l in labels):
                    # log_probs[r, t] scores labels[r, t + 1] (the shifted targets), so this example's
                    # targets s+1..e-1 sit at t = s..e-2; prompt positions hold 0.
                    got[tuple(ids)] = lp[r, s : e - 1]
        per_example[batching] = got
        if batching == "packed":
            packed_batch, packed_model = cap.inputs[0], cap.model
    assert per_example["padded"].keys() == per_example["packed"].keys() and len(per_example["packed"]) == 12
    rows = packed_batch["input_ids"].shape[0]
    assert rows == (1 if layout == "flat" else 4)  # flat: the whole batch in one sequence; rows: 4 rows
    assert any(len(segments({k: v[r : r + 1] for k, v in packed_batch.items() if k in ("input_ids", "labels", "position_ids")})) > 1
               for r in range(rows))  # some row really holds several examples
    for key, lp in per_example["packed"].items():
        torch.testing.assert_close(lp, per_example["padded"][key], atol=1e-5, rtol=0)
    # Control: the same packed row without the position reset (plain causal attention over the row) differs.
    with torch.no_grad():
        kw = {k: packed_batch[k] for k in ("input_ids", "labels")}
        leaked = packed_model(**kw, fused_lm_head=True, use_cache=False).log_probs
        isolated = packed_model(**kw, position_ids=packed_batch["position_ids"], fused_lm_head=True,
                                use_cache=False).log_probs
    assert float((leaked - isolated).abs().max()) > 1e-2


def test_sft_loss_goes_down(tmp_path, tiny_model_dir, qa_jsonl):
    out = run_sft(sft_recipe(tmp_path, tiny_model_dir, qa_jsonl, "training.max_steps=9", "training.learning_rate=2e-2", "lora.target_modules=all-linear"))
    history = json.loads((out / RUN_RECORD).read_text())["training"]["log_history"]
    loss = [h["loss"] for h in history if "loss" in h]
    assert len(loss) == 9 and sum(loss[-3:]) / 3 < sum(loss[:3]) / 3 - 0.3, loss


def test_measured_lengths_match_what_trl_feeds(tmp_path, tiny_model_dir, qa_jsonl):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    for chat in (False, True):
        examples = read_instructions(qa_jsonl, chat=chat)
        lengths = measure_lengths(examples, tok)
        assert lengths == [(labels.count(-100), len(ids), True) for ids, labels in expected_rows(tok, chat=chat)]


def test_overlong_prompts_stop_the_run_or_are_dropped_and_recorded(tmp_path, tiny_model_dir, qa_jsonl):
    long = tmp_path / "long.jsonl"
    long.write_text(qa_jsonl.read_text(encoding="utf-8") +
                    json.dumps({"instruction": "症例。" * 200, "output": "答え"}, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    with pytest.raises(UserError, match=r"(?s)1 examples have a prompt of at least max_length tokens.*long.jsonl:13"):
        run_sft(sft_recipe(tmp_path / "a", tiny_model_dir, long, "training.max_steps=1", "instructions.overlong=error"))
    out = run_sft(sft_recipe(tmp_path / "b", tiny_model_dir, long, "training.max_steps=1", "instructions.overlong=drop"))
    data = json.loads((out / RUN_RECORD).read_text())["data"]
    assert data["dropped_overlong"] == [f"{long}:13"] and data["examples"] == 12


def test_qlora_on_cpu_stops_with_a_clear_message(tmp_path, tiny_model_dir, qa_jsonl):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the CPU message does not apply")
    recipe = load_recipe("tiny-qlora", [f"model.name_or_path={tiny_model_dir}", f"output_dir={tmp_path}",
                                        f"instructions.sources=[{{path: {qa_jsonl}}}]"])
    with pytest.raises(UserError, match="QLoRA needs a CUDA GPU") as exc:
        run_sft(recipe)
    assert "method=lora" in str(exc.value)
    assert not (tmp_path / "sft").exists()  # stopped before touching anything


def test_schedule_accumulation_and_checkpointing_reach_the_trainer(tmp_path, tiny_model_dir, qa_jsonl):
    out = run_sft(sft_recipe(tmp_path, tiny_model_dir, qa_jsonl, "instructions.batching=padded",
                             "training.max_steps=4", "training.batch_size=2", "training.gradient_accumulation_steps=2",
                             "training.gradient_checkpointing=true", "training.lr_scheduler=linear",
                             "training.warmup_steps=2", "training.learning_rate=1e-3"))
    record = json.loads((out / RUN_RECORD).read_text())
    logs = [h for h in record["training"]["log_history"] if "loss" in h]
    # linear schedule with 2 warm-up steps out of 4, peak 1e-3: the rate used at step k is
    # 1e-3 * lambda(k - 1) with lambda(s) = s / 2 for s < 2, else (4 - s) / (4 - 2):
    # step 1: 0, step 2: 0.5e-3, step 3: 1e-3, step 4: 0.5e-3
    assert [h["learning_rate"] for h in logs] == pytest.approx([0.0, 5e-4, 1e-3, 5e-4])
    # 4 steps x 2 examples x 2 accumulated micro-batches = 16 examples = 16 / 12 epochs
    assert record["training"]["epoch"] == pytest.approx(16 / 12)


def test_prompt_that_is_not_a_token_prefix_is_detected(tiny_model_dir):
    """A prompt ending inside a word ("... p" + "atient") tokenises differently alone: flagged, not hidden."""
    from transformers import AutoTokenizer

    from jmedllm.train.instructions import InstructionExample

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    clean, merged = measure_lengths([InstructionExample("a", prompt="Who is the patient?\n", completion="A man"),
                                     InstructionExample("b", prompt="the p", completion="atient")], tok)
    assert clean.prompt_is_prefix and not merged.prompt_is_prefix
    assert merged.prompt < len(tok("the p")["input_ids"])  # the loss starts where the two tokenisations diverge
