"""Preference tuning (``kind: dpo | orpo | kto``) on TRL's trainers, with LoRA / QLoRA or full weights.

- ``dpo``: ``trl.DPOTrainer`` (a frozen reference: the base with the adapter disabled for LoRA);
- ``orpo``: ``trl.experimental.orpo.ORPOTrainer`` (no reference model; SFT loss on the chosen
  answer plus the odds-ratio term weighted by ``preference.beta``);
- ``kto``: ``trl.KTOTrainer`` (unpaired; paired data is split by TRL into a desirable and an
  undesirable example per pair).

Data (``preference.sources``): benchmark questions become pairs whose rejected answer is, by
preference, a forbidden choice (jmedllm.train.preference_data); user files are
prompt/chosen/rejected JSONL. The contamination guard reads every text of every record (prompt,
chosen and rejected) before training, as for SFT.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Sequence

from jmedllm.errors import UserError
from jmedllm.train import stage as st
from jmedllm.train.contamination import TrainingText
from jmedllm.train.preference_data import PreferenceError, PreferenceExample, preference_pairs, read_preferences
from jmedllm.train.recipe import Recipe, StageSpec
from jmedllm.train.trainer_args import common_args

log = logging.getLogger("jmedllm.train")

KINDS = ("dpo", "orpo", "kto")


def stage_preferences(stage: StageSpec, data_root: Path | None) -> tuple[list[PreferenceExample], list[Path], list[dict[str, Any]]]:
    """The stage's preference records, the files they came from, and a per-source summary."""
    spec = stage.preference

    def read_file(path: Path, src: Any) -> tuple[list[PreferenceExample], dict[str, Any]]:
        got = read_preferences(path, limit=src.limit)
        return got, {"path": str(path), "records": len(got), "unpaired": sum(1 for e in got if not e.paired)}

    def from_benchmark(bench: Any, questions: list, src: Any) -> tuple[list[PreferenceExample], dict[str, Any]]:
        got, counts = preference_pairs(questions, family=spec.family, language=spec.language,
                                       answer_style=src.answer_style, rejected=src.rejected, seed=spec.seed)
        return got, {"benchmark": bench.name, "filters": src.filters, "answer_style": src.answer_style,
                     "rejected": src.rejected, **counts}

    examples, files, summary = st.gather_sources(stage, "preference", "preference", data_root, read_file=read_file,
                                                 from_benchmark=from_benchmark, error=PreferenceError)
    if not examples:
        raise UserError(f"stage {stage.name}: the preference sources give no record")
    unpaired = [e for e in examples if not e.paired]
    if unpaired and stage.kind != "kto":
        raise UserError(f"stage {stage.name}: {len(unpaired)} unpaired records (prompt/completion/label, first: "
                        f"{unpaired[0].location}); {stage.kind} needs prompt/chosen/rejected pairs (kto takes both)")
    if unpaired and len(unpaired) != len(examples):
        raise UserError(f"stage {stage.name}: the sources mix paired and unpaired records; use one kind")
    chat = {not isinstance(e.prompt, str) for e in examples}
    if len(chat) > 1:
        raise UserError(f"stage {stage.name}: the sources mix chat (messages) and text records; use one kind")
    return examples, files, summary


def preference_records(examples: Sequence[PreferenceExample]) -> list[TrainingText]:
    """The records as the contamination guard sees them: prompt, chosen and rejected together."""
    return [TrainingText(location=ex.location, text=ex.text()) for ex in examples]


def _tokens(tokenizer: Any, prompt: Any, answer: Any) -> tuple[int, int]:
    """Tokens of the prompt and of prompt + answer (chat: with the model's chat template)."""
    if isinstance(prompt, str):
        return len(tokenizer(prompt)["input_ids"]), len(tokenizer(prompt + answer)["input_ids"]) + 1  # + EOS
    p = tokenizer.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True, return_dict=True)
    full = tokenizer.apply_chat_template(prompt + answer, tokenize=True, return_dict=True)
    return len(p["input_ids"]), len(full["input_ids"])


def apply_length_policy(examples: list[PreferenceExample], tokenizer: Any, stage: StageSpec) -> tuple[list[PreferenceExample], dict[str, Any]]:
    """Records whose prompt + longest answer exceeds ``max_length`` would be cut (an empty or partial
    answer compares nothing): ``overlong: error`` stops with the list, ``drop`` leaves them out (recorded)."""
    limit = stage.preference.max_length
    too_long, longest = [], 0
    for ex in examples:
        answers = [ex.chosen, ex.rejected] if ex.paired else [ex.completion]
        total = max(_tokens(tokenizer, ex.prompt, a)[1] for a in answers)
        longest = max(longest, total)
        if total > limit:
            too_long.append((ex, total))
    if too_long and stage.preference.overlong == "error":
        names = "\n".join(f"  {ex.location} ({n} tokens)" for ex, n in too_long[:20])
        raise UserError(f"stage {stage.name}: {len(too_long)} records are longer than preference.max_length={limit}:\n"
                        f"{names}\nRaise preference.max_length, or set preference.overlong=drop to leave them out (recorded)")
    dropped = {id(ex) for ex, _ in too_long}
    kept = [ex for ex in examples if id(ex) not in dropped]
    if not kept:
        raise UserError(f"stage {stage.name}: no preference record fits preference.max_length={limit}")
    return kept, {"dropped_overlong": [ex.location for ex, _ in too_long], "max_total_tokens": longest}


def preference_config(recipe: Recipe, stage: StageSpec, out: Path, precision: str) -> Any:
    """The TRL config of the stage's kind, from the recipe."""
    p = stage.preference
    args = common_args(recipe, stage, out, precision)
    args["max_length"] = p.max_length
    args["beta"] = p.beta
    if stage.kind == "dpo":
        from trl import DPOConfig

        return DPOConfig(loss_type=[p.loss_type], activation_offloading=stage.scaling.activation_offloading, **args)
    if stage.kind == "kto":
        from trl import KTOConfig

        return KTOConfig(loss_type=p.loss_type if p.loss_type != "sigmoid" else "kto",
                         activation_offloading=stage.scaling.activation_offloading, **args)
    from trl.experimental.orpo import ORPOConfig

    return ORPOConfig(**args)


def run_preference(
    recipe: Recipe,
    stage: str | None = None,
    *,
    data_root: str | os.PathLike[str] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    allow_overlap: bool | None = None,
    callbacks: Sequence[Any] = (),
) -> Path:
    """Run a ``dpo`` / ``orpo`` / ``kto`` stage; return its output directory (adapter or model + tokenizer).

    Arguments as for jmedllm.train.cpt.run_cpt; ``stage`` defaults to the recipe's only stage of these kinds.
    """
    import warnings

    from datasets import Dataset

    if stage is None:
        names = [s.name for s in recipe.stages if s.kind in KINDS]
        if len(names) != 1:
            raise UserError(f"recipe {recipe.name!r} has {len(names)} preference stages: name one")
        stage = names[0]
    spec, started, root, out = st.begin_stage(recipe, stage, KINDS, data_root=data_root, resume=resume,
                                              overwrite=overwrite)

    examples, files, sources = stage_preferences(spec, root)
    report = st.run_guard(preference_records(examples), recipe, root, out, allow_overlap)

    with st.main_process_first():
        model_path = st.resolve_model(recipe, spec)
    tokenizer = st.load_tokenizer(model_path, spec)
    examples, lengths = apply_length_policy(examples, tokenizer, spec)
    dataset = Dataset.from_list([ex.to_trl() for ex in examples])
    precision = st.resolve_precision(spec)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`gradient_checkpointing` is deprecated", category=FutureWarning)
        config = preference_config(recipe, spec, out, precision)
    peft_config = None if spec.method == "full" else st.lora_config(spec)
    quant = st.quantization_config(spec) if spec.method == "qlora" else None
    common = dict(args=config, train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config,
                  callbacks=list(callbacks))
    if spec.kind == "dpo":
        from trl import DPOTrainer

        trainer = DPOTrainer(model=model_path, quantization_config=quant, **common)
    elif spec.kind == "kto":
        from trl import KTOTrainer

        trainer = KTOTrainer(model=model_path, quantization_config=quant, **common)
    else:
        from trl.experimental.orpo import ORPOTrainer

        model: Any = model_path
        if quant is not None:  # ORPOTrainer takes no quantization_config: load the 4-bit base here
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_pretrained(model_path, quantization_config=quant,
                                                         trust_remote_code=spec.model.trust_remote_code,
                                                         **config.model_init_kwargs)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*experimental.*", category=UserWarning)
            trainer = ORPOTrainer(model=model, **common)
    training = st.train_and_save(trainer, out, resume=resume)
    if trainer.is_world_process_zero():
        data = {
            "sources": sources,
            "records": len(examples),
            **lengths,
            "paired": examples[0].paired,
            "family": spec.preference.family,
            "max_length": spec.preference.max_length,
            "beta": spec.preference.beta,
            "loss_type": spec.preference.loss_type if spec.kind != "orpo" else "orpo",
            "rejected_is_kinki": sum(1 for e in examples if e.source.get("rejected_is_kinki")),
        }
        st.write_record(out, recipe, spec, model_path=model_path, precision=precision, files=files,
                        data=data, training=training, contamination=report, started=started)
    return out
