"""Instruction tuning (``kind: sft``): LoRA, QLoRA or full-parameter, on TRL's SFTTrainer + PEFT.

Data: the stage's sources (instruction JSONL, benchmark questions rendered with the same prompt
family as ``jmedllm eval``) become TRL *prompt-completion* rows — text, or conversational
(chat messages, rendered with the model's chat template). TRL tokenises them and sets the labels
of the prompt tokens to -100, so the loss is on the response only (``completion_only_loss``);
for chat the "prompt" is every message before the final assistant answer.

Batching (``instructions.batching``):
- ``padded``: TRL's default; rows padded to the longest in the batch, attention mask.
- ``packed``: TRL ``packing`` (best-fit decreasing, whole examples) into rows of ``max_length``;
  position ids restart at every example and no attention mask is passed, so transformers builds a
  block-diagonal mask (sdpa, eager) or passes the boundaries to the kernel (FlashAttention); checked
  on the model before training (jmedllm.train.attention). The batch stays a batch of rows for
  sdpa / eager and is flattened into one sequence for FlashAttention (``training.packed_layout``,
  jmedllm.train.collate).
- ``padding_free``: the batch's examples concatenated into one sequence without packing (TRL
  ``padding_free``): no padding computed; efficient with FlashAttention only.

Lengths: before training every example is measured with the tokenizer the way TRL will
tokenise it. A prompt that fills ``max_length`` would leave nothing to learn (TRL would drop the
example): ``overlong: error`` stops with the list, ``drop`` leaves them out and records them.
Examples whose completion is cut by ``max_length`` are counted and recorded. With
``padding_free`` (where TRL cannot truncate) an example longer than ``max_length`` is overlong.

QLoRA (``method: qlora``): 4-bit NF4 base with double quantisation and bf16 compute
(bitsandbytes, CUDA only; on a machine without CUDA it stops at once with a clear message).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, NamedTuple, Sequence

from jmedllm.errors import UserError
from jmedllm.train import observe, provenance
from jmedllm.train import stage as st
from jmedllm.train.attention import attn_implementation, check_packed_attention
from jmedllm.train.collate import use_layout
from jmedllm.train.contamination import TrainingText
from jmedllm.train.instructions import InstructionError, InstructionExample, from_questions, read_instructions
from jmedllm.train.recipe import Recipe, StageSpec

log = logging.getLogger("jmedllm.train")


def stage_instructions(stage: StageSpec, data_root: Path | None) -> tuple[list[InstructionExample], list[Path], list[dict[str, Any]]]:
    """The stage's examples, the files they came from, and a per-source summary."""
    spec = stage.instructions

    def read_file(path: Path, src: Any) -> tuple[list[InstructionExample], dict[str, Any]]:
        got = read_instructions(path, chat=spec.chat, limit=src.limit)
        return got, {"path": str(path), "examples": len(got)}

    def from_benchmark(bench: Any, questions: list, src: Any) -> tuple[list[InstructionExample], dict[str, Any]]:
        got = from_questions(questions, family=spec.family, language=spec.language, answer_style=src.answer_style)
        entry = {"benchmark": bench.name, "filters": src.filters, "answer_style": src.answer_style,
                 "examples": len(got)}
        if src.answer_style == "explanation":
            entry["with_explanation"] = sum(1 for e in got if e.source.get("explanation"))
        return got, entry

    examples, files, summary = st.gather_sources(stage, "instructions", "instruction", data_root, read_file=read_file,
                                                 from_benchmark=from_benchmark, error=InstructionError)
    if len({e.is_chat for e in examples}) > 1:
        raise UserError(f"stage {stage.name}: the sources mix chat (messages) and text (prompt/completion) examples; "
                        "set instructions.chat=true to render user instructions as chat, or use one kind")
    return examples, files, summary


class Lengths(NamedTuple):
    prompt: int  # tokens of the prompt (the part without loss)
    total: int  # tokens of prompt + completion
    prompt_is_prefix: bool  # the prompt tokenised alone is a prefix of prompt + completion tokenised


def measure_lengths(examples: Sequence[InstructionExample], tokenizer: Any) -> list[Lengths]:
    """Token counts of each example, tokenised as TRL will tokenise it.

    Text: ``tokenizer(prompt)`` and ``tokenizer(prompt + completion + eos)``; chat: the chat template with
    the generation prompt for the prompt, the whole conversation for the total. The prompt length is the
    common prefix of the two (TRL's rule). When the prompt alone is *not* a prefix (a chat template that
    renders the generation prompt differently, or tokens merging across the boundary), training sees a
    different context than evaluation; such examples are counted in the run record.
    """
    from trl.data_utils import common_prefix_length

    eos = tokenizer.eos_token or ""
    out = []
    for ex in examples:
        if ex.is_chat:
            row = ex.to_trl()
            p = tokenizer.apply_chat_template(row["prompt"], tokenize=True, add_generation_prompt=True,
                                              return_dict=True)["input_ids"]
            full = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=True,
                                                 return_dict=True)["input_ids"]
        else:
            completion = ex.completion if ex.completion.endswith(eos) else ex.completion + eos
            p = tokenizer(text=ex.prompt)["input_ids"]
            full = tokenizer(text=ex.prompt + completion)["input_ids"]
        common = common_prefix_length(list(p), list(full))
        out.append(Lengths(common, len(full), common == len(p)))
    return out


def apply_length_policy(examples: list[InstructionExample], lengths: Sequence[Lengths], *, max_length: int,
                        overlong: str, truncate_allowed: bool, stage_name: str) -> tuple[list[InstructionExample], dict[str, Any]]:
    """Decide what happens to examples that do not fit ``max_length`` (see the module docstring)."""
    too_long = [ex for ex, (p, t, _) in zip(examples, lengths) if p >= max_length or (not truncate_allowed and t > max_length)]
    truncated = [ex for ex, (p, t, _) in zip(examples, lengths) if p < max_length and t > max_length and truncate_allowed]
    if too_long and overlong == "error":
        names = "\n".join(f"  {ex.location} ({p} prompt / {t} total tokens)" for ex, (p, t, _) in zip(examples, lengths)
                          if ex in too_long[:20])
        what = "a prompt of at least max_length tokens" if truncate_allowed else "more than max_length tokens"
        raise UserError(f"stage {stage_name}: {len(too_long)} examples have {what} (max_length={max_length}):\n"
                        f"{names}\nRaise instructions.max_length, shorten them, or set instructions.overlong=drop "
                        "to leave them out (recorded)")
    dropped = {id(ex) for ex in too_long}
    kept = [ex for ex in examples if id(ex) not in dropped]
    kept_lengths = [lt for ex, lt in zip(examples, lengths) if id(ex) not in dropped]
    stats = {
        "examples": len(kept),
        "dropped_overlong": [ex.location for ex in too_long],
        "truncated_completions": len(truncated),
        "truncated_examples": [ex.location for ex in truncated[:100]],
        "prompt_tokens": sum(lt.prompt for lt in kept_lengths),
        "completion_tokens": sum(lt.total - lt.prompt for lt in kept_lengths),
        "max_total_tokens": max((lt.total for lt in kept_lengths), default=0),
        "prompt_not_a_prefix": [ex.location for ex, lt in zip(kept, kept_lengths) if not lt.prompt_is_prefix][:100],
    }
    if stats["prompt_not_a_prefix"]:
        log.warning("stage %s: for %d examples the prompt tokenised alone is not a prefix of prompt + completion "
                    "(chat template or token merge at the boundary): training context differs from evaluation",
                    stage_name, len(stats["prompt_not_a_prefix"]))
    if truncated:
        log.warning("stage %s: %d completions are cut at max_length=%d", stage_name, len(truncated), max_length)
    if not kept:
        raise UserError(f"stage {stage_name}: no example fits max_length={max_length}")
    return kept, stats


def instruction_records(examples: Sequence[InstructionExample]) -> list[TrainingText]:
    """The examples as the contamination guard sees them."""
    return [TrainingText(location=ex.location, text=ex.text()) for ex in examples]


def run_sft(
    recipe: Recipe,
    stage: str | None = None,
    *,
    data_root: str | os.PathLike[str] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    allow_overlap: bool | None = None,
    callbacks: Sequence[Any] = (),
) -> Path:
    """Run the recipe's instruction-tuning stage; return its output directory (adapter or model + tokenizer).

    Arguments as for jmedllm.train.cpt.run_cpt.
    """
    from datasets import Dataset
    from trl import SFTTrainer

    spec, started, root, out = st.begin_stage(recipe, stage or "sft", ("sft",), data_root=data_root,
                                              resume=resume, overwrite=overwrite)

    examples, files, sources = stage_instructions(spec, root)
    report = st.run_guard(instruction_records(examples), recipe, root, out, allow_overlap)

    with st.main_process_first():
        model_path = st.resolve_model(recipe, spec)  # may merge an earlier stage's adapter
    tokenizer = st.load_tokenizer(model_path, spec)
    ispec = spec.instructions
    batching = ispec.batching
    examples, data_stats = apply_length_policy(
        examples, measure_lengths(examples, tokenizer), max_length=ispec.max_length, overlong=ispec.overlong,
        truncate_allowed=batching != "padding_free", stage_name=spec.name)
    dataset, eval_dataset = observe.split_validation(Dataset.from_list([ex.to_trl() for ex in examples]), spec,
                                                     recipe.seed)

    precision = st.resolve_precision(spec)
    config = st.sft_config(
        recipe, spec, out, precision,
        max_length=None if batching == "padding_free" else ispec.max_length,
        packing=batching == "packed",
        packing_strategy="bfd",
        padding_free=batching == "padding_free",
        completion_only_loss=True,
        **observe.trainer_args(spec, eval_dataset is not None),
    )
    trainer = SFTTrainer(
        model=model_path,
        args=config,
        train_dataset=dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=None if spec.method == "full" else st.lora_config(spec),
        quantization_config=st.quantization_config(spec) if spec.method == "qlora" else None,
        callbacks=list(callbacks),
    )
    observe.attach(trainer, observe.make_callbacks(recipe, spec, out, model_path=model_path, data_root=root))
    layout = None
    if batching == "packed":
        layout = use_layout(trainer, spec.training.packed_layout, attn_implementation(trainer.model))
    elif batching == "padding_free":
        layout = "flat"
    isolation = None
    if batching != "padded" and not (trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled):
        isolation = check_packed_attention(trainer.model)
    training = st.train_and_save(trainer, out, resume=resume)
    if trainer.is_world_process_zero():
        data = {
            "sources": sources,
            "batching": batching,
            "packed_layout": layout,
            "max_length": ispec.max_length,
            "family": ispec.family,
            "chat": examples[0].is_chat,
            "rows": len(trainer.train_dataset),
            "tokens_sha256": provenance.tokens_sha256(trainer.train_dataset["input_ids"]),
            "packed_attention_check": isolation,
            **data_stats,
        }
        st.write_record(out, recipe, spec, model_path=model_path, precision=precision, files=files,
                        data=data, training=training, contamination=report, started=started)
    return out
