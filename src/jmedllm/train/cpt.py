"""Continued pretraining (``kind: cpt``): full-parameter or LoRA, on TRL's SFTTrainer.

The corpus is read and packed here (jmedllm.train.corpus) into fixed-length blocks of token ids;
TRL receives them already tokenised (a language-modelling dataset: loss on every token) and does
the rest: optimiser, schedule, gradient accumulation / checkpointing, mixed precision,
checkpoints and resume, and multi-GPU through ``accelerate launch`` (DDP, DeepSpeed, FSDP).

With ``corpus.isolate_documents`` (default) the blocks carry the lengths of their document
pieces, which become position ids that restart at each document (jmedllm.train.collate), so that
documents sharing a block do not attend to each other (checked on the model before training, see
jmedllm.train.attention), and the first token of a document is not predicted from the previous one. With ``isolate_documents: false`` blocks are plain rows (the classic
concatenate-and-chunk of run_clm.py): tokens attend across document boundaries inside a block.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Sequence

from jmedllm.errors import UserError
from jmedllm.train import observe, provenance
from jmedllm.train.attention import attn_implementation, check_packed_attention
from jmedllm.train.collate import use_layout
from jmedllm.train.contamination import TrainingText
from jmedllm.train.corpus import Corpus, CorpusError, pack_documents, read_corpus, tokenize_documents
from jmedllm.train.recipe import Recipe, StageSpec, resolve_paths
from jmedllm.train import stage as st

log = logging.getLogger("jmedllm.train")


def corpus_records(corpus: Corpus) -> list[TrainingText]:
    """The corpus as the contamination guard sees it: one record per document, named by file and line."""
    return [TrainingText(location=f"{d.source}:{d.line}" if d.line else d.id, text=d.text) for d in corpus.documents]


def load_stage_corpus(stage: StageSpec, data_root: Path | None) -> Corpus:
    spec = stage.corpus
    if not spec.paths:
        raise UserError(f"stage {stage.name}: corpus.paths is empty (files or folders of .txt, .jsonl or MedTxt .xml)")
    paths = resolve_paths(spec.paths, data_root, where=f"stage {stage.name}: corpus.paths")
    try:
        return read_corpus(paths, text_field=spec.text_field, text_unit=spec.text_unit)
    except CorpusError as exc:
        raise UserError(str(exc)) from None


def load_corpus_parts(stage: StageSpec, data_root: Path | None) -> list[Corpus]:
    """With ``corpus.weights``: each ``corpus.paths`` entry read as a part of its own."""
    spec = stage.corpus
    if len(spec.weights) != len(spec.paths):
        raise UserError(f"stage {stage.name}: corpus.weights has {len(spec.weights)} entries for "
                        f"{len(spec.paths)} corpus.paths (one weight per path)")
    paths = resolve_paths(spec.paths, data_root, where=f"stage {stage.name}: corpus.paths")
    try:
        return [read_corpus([p], text_field=spec.text_field, text_unit=spec.text_unit) for p in paths]
    except CorpusError as exc:
        raise UserError(str(exc)) from None


def run_cpt(
    recipe: Recipe,
    stage: str | None = None,
    *,
    data_root: str | os.PathLike[str] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    allow_overlap: bool | None = None,
    callbacks: Sequence[Any] = (),
) -> Path:
    """Run the recipe's continued-pretraining stage; return its output directory.

    ``stage``: a stage name (default: the recipe's only ``cpt`` stage). ``resume``: continue from the
    last checkpoint in the output directory. ``allow_overlap``: train even if the contamination guard
    finds evaluation questions in the corpus (default: the recipe's ``contamination.allow_overlap``).
    ``callbacks``: extra transformers ``TrainerCallback`` objects (logging, early stopping, ...).
    """
    from datasets import Dataset
    from trl import SFTTrainer

    spec, started, root, out = st.begin_stage(recipe, stage or "cpt", ("cpt",), data_root=data_root, resume=resume,
                                              overwrite=overwrite, methods=("full", "lora"))

    weights = spec.corpus.weights
    if weights:
        parts = load_corpus_parts(spec, root)
        corpus = Corpus(documents=[d for p in parts for d in p.documents], empty=[e for p in parts for e in p.empty],
                        files=[f for p in parts for f in p.files])
    else:
        corpus = load_stage_corpus(spec, root)
    report = st.run_guard(corpus_records(corpus), recipe, root, out, allow_overlap)

    with st.main_process_first():
        model_path = st.resolve_model(recipe, spec)  # may merge an earlier stage's adapter
    tokenizer = st.load_tokenizer(model_path, spec)
    token_lists = tokenize_documents(corpus.documents, tokenizer)
    mixing = None
    if weights:
        from jmedllm.train.mixing import mix_parts

        sizes = [len(p.documents) for p in parts]
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        try:
            token_lists, _, mixing = mix_parts([token_lists[a:a + n] for a, n in zip(starts, sizes)], weights,
                                               seed=recipe.seed, names=spec.corpus.paths)
        except ValueError as exc:
            raise UserError(f"stage {spec.name}: corpus.weights: {exc}") from None
    packed = pack_documents(token_lists, spec.corpus.block_size, spec.corpus.last_block)
    if not packed.blocks:
        raise UserError(f"stage {spec.name}: the corpus gives no training block (all tokens in a dropped last block)")
    columns = {"input_ids": packed.blocks}
    if spec.corpus.isolate_documents:
        columns["seq_lengths"] = packed.seq_lengths
    dataset, eval_dataset = observe.split_validation(Dataset.from_dict(columns), spec, recipe.seed)

    precision = st.resolve_precision(spec)
    config = st.sft_config(
        recipe, spec, out, precision,
        max_length=None,  # blocks are already block_size long
        packing=False,
        padding_free=spec.corpus.isolate_documents,
        completion_only_loss=False,
        **observe.trainer_args(spec, eval_dataset is not None),
    )
    trainer = SFTTrainer(
        model=model_path,
        args=config,
        train_dataset=dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=st.lora_config(spec) if spec.method == "lora" else None,
        callbacks=list(callbacks),
    )
    observe.attach(trainer, observe.make_callbacks(recipe, spec, out, model_path=model_path, data_root=root))
    isolation = layout = None
    if spec.corpus.isolate_documents:
        layout = use_layout(trainer, spec.training.packed_layout, attn_implementation(trainer.model))
        if not (trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled):
            isolation = check_packed_attention(trainer.model)
    training = st.train_and_save(trainer, out, resume=resume)
    if trainer.is_world_process_zero():
        data = {
            "corpus": packed.stats() | {
                "empty_documents": corpus.empty,
                "isolate_documents": spec.corpus.isolate_documents,
                "packed_layout": layout,
                "last_block": spec.corpus.last_block,
                "text_unit": spec.corpus.text_unit,
                "tokens_sha256": provenance.tokens_sha256(packed.blocks),
            },
            "packed_attention_check": isolation,
            "mixing": mixing,
        }
        st.write_record(out, recipe, spec, model_path=model_path, precision=precision, files=corpus.files,
                        data=data, training=training, contamination=report, started=started)
    return out
