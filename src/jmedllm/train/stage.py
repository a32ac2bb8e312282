"""What every training stage does around TRL's SFTTrainer.

Resolve the data root, the starting model (``@stage`` references), precision and dtype; guard
the output directory; run the contamination guard; build the ``SFTConfig`` and PEFT config from
the recipe; train with resume; save model + tokenizer and the record of what made them.
CPT (jmedllm.train.cpt) and SFT (jmedllm.train.sft) differ only in their data.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from jmedllm.errors import UserError
from jmedllm.paths import DATA_ROOT_ENV, DataRootError, resolve_data_root
from jmedllm.train import observe, provenance
from jmedllm.train.contamination import (
    ContaminationError,
    ContaminationReport,
    TrainingText,
    check_contamination,
    evaluation_items,
    reference_table,
)
from jmedllm.train.recipe import Recipe, StageSpec

log = logging.getLogger("jmedllm.train")

CONTAMINATION_REPORT = "contamination_report.json"


def stage_data_root(recipe: Recipe, data_root: str | os.PathLike[str] | None) -> Path | None:
    """The data root for this run: the argument, else the recipe's, else $JMEDLLM_DATA_ROOT; may be None."""
    value = data_root or recipe.data_root or os.environ.get(DATA_ROOT_ENV)
    if not value:
        return None
    try:
        return resolve_data_root(value)
    except DataRootError as exc:
        raise UserError(str(exc)) from None


def is_main_process() -> bool:
    """True in a single process, and on rank 0 under `accelerate launch` / torchrun."""
    return int(os.environ.get("RANK", "0")) == 0


@contextmanager
def main_process_first() -> Iterator[None]:
    """Under `accelerate launch`, let rank 0 do the file-system work (folders, merges) before the others."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield
        return
    from accelerate import PartialState

    with PartialState().main_process_first():
        yield


def qlora_unavailable_reason() -> str | None:
    """Why 4-bit QLoRA cannot run here (no CUDA, or no bitsandbytes), or None when it can."""
    import torch

    if not torch.cuda.is_available():
        return ("QLoRA needs a CUDA GPU (bitsandbytes 4-bit NF4 kernels), and this machine has none. "
                "Use method=lora on this machine, or run the recipe on a GPU server.")
    if importlib.util.find_spec("bitsandbytes") is None:
        return "QLoRA needs bitsandbytes: pip install 'jmedllm[qlora]'."
    return None


def resolve_precision(stage: StageSpec) -> str:
    """bf16 / fp16 / fp32: ``auto`` is bf16 on a bf16-capable CUDA GPU and fp32 elsewhere (CPU)."""
    precision = stage.training.precision
    if precision != "auto":
        return precision
    import torch

    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def resolve_dtype(stage: StageSpec, precision: str) -> str:
    """The dtype the model's weights are loaded in."""
    if stage.model.dtype != "auto":
        return stage.model.dtype
    if precision == "bf16":
        return "bfloat16"
    if precision == "fp16":
        # fp16 mixed precision keeps trainable weights in fp32: only a frozen (LoRA) base may be fp16.
        return "float32" if stage.method == "full" else "float16"
    return "float32"


def resolve_model(recipe: Recipe, stage: StageSpec) -> str:
    """The model a stage starts from: a hub id / folder, or an earlier stage's output (merged if LoRA)."""
    ref = stage.model.name_or_path
    if not ref:
        raise UserError(f"stage {stage.name}: model.name_or_path is empty (set it in the recipe or with model.name_or_path=...)")
    if not ref.startswith("@"):
        return ref
    prev = recipe.stage(ref[1:])
    prev_dir = recipe.stage_dir(prev)
    if not (prev_dir / provenance.RUN_RECORD).is_file():
        raise UserError(f"stage {stage.name} starts from stage {prev.name}, which has not finished: "
                        f"no {provenance.RUN_RECORD} in {prev_dir}")
    if (prev_dir / "adapter_config.json").is_file():
        merged = prev_dir / "merged"
        if not (merged / "config.json").is_file():
            from jmedllm.train.merge import merge_adapter

            merge_adapter(prev_dir, merged)
        return str(merged)
    return str(prev_dir)


def gather_sources(stage: StageSpec, section: str, what: str, data_root: Path | None, *,
                   read_file: Any, from_benchmark: Any, error: type[Exception]) -> tuple[list, list[Path], list[dict]]:
    """The records of a stage section's ``sources`` (each a file or a benchmark), the files they came
    from and a per-source summary: ``read_file(path, src)`` and ``from_benchmark(bench, questions,
    src)`` each return ``(records, summary_entry)``; their ``error`` becomes a UserError."""
    from jmedllm.train.recipe import resolve_paths

    sources = getattr(stage, section).sources
    if not sources:
        raise UserError(f"stage {stage.name}: {section}.sources is empty ({what} JSONL files or benchmarks)")
    records: list = []
    files: list[Path] = []
    summary: list[dict] = []
    for i, src in enumerate(sources):
        where = f"stage {stage.name}: {section}.sources[{i}]"
        if (src.path is None) == (src.benchmark is None):
            raise UserError(f"{where}: give exactly one of path or benchmark")
        try:
            if src.path is not None:
                (path,) = resolve_paths([src.path], data_root, where=where)
                got, entry = read_file(path, src)
                files.append(path)
            else:
                if data_root is None:
                    raise UserError(f"{where}: benchmark {src.benchmark!r} needs a data root (--data-root)")
                from jmedllm.benchmarks import load_benchmark

                bench = load_benchmark(src.benchmark, data_root, **src.filters)
                got, entry = from_benchmark(bench, list(bench.questions)[: src.limit], src)
                files.extend(Path(f) for f in bench.files)
        except error as exc:
            raise UserError(str(exc)) from None
        summary.append(entry)
        records.extend(got)
    return records, files, summary


def begin_stage(recipe: Recipe, name: str, kinds: Sequence[str], *, data_root: str | os.PathLike[str] | None,
                resume: bool, overwrite: bool, methods: Sequence[str] | None = None) -> tuple[StageSpec, str, Path | None, Path]:
    """The opening every training stage shares: the stage (its kind and method checked, QLoRA's
    availability too), its start time, its data root and its prepared output folder."""
    spec = recipe.stage(name)
    if spec.kind not in kinds:
        raise UserError(f"stage {spec.name} is a {spec.kind} stage, not {' / '.join(kinds)}")
    if methods is not None and spec.method not in methods:
        raise UserError(f"stage {spec.name}: {spec.kind} supports method {' or '.join(methods)}, not {spec.method}")
    if spec.method == "qlora":
        reason = qlora_unavailable_reason()
        if reason:
            raise UserError(f"stage {spec.name}: {reason}")
    started = provenance.now()
    root = stage_data_root(recipe, data_root)
    out = recipe.stage_dir(spec)
    with main_process_first():
        prepare_output_dir(out, resume=resume, overwrite=overwrite)
    return spec, started, root, out


def prepare_output_dir(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to write into a folder that already holds a run, unless resuming or told to overwrite.

    The folder itself is not created here: the contamination report or the trainer creates it when
    there is something to write, so that a stage stopped by bad data leaves no empty folder behind.
    """
    if not is_main_process():  # rank 0 has checked (and emptied) the folder
        return
    if out.exists() and not out.is_dir():
        raise UserError(f"output {out} exists and is not a folder")
    # A folder holding only the report of a run the guard stopped is free to use again.
    if out.is_dir() and any(p.name != CONTAMINATION_REPORT for p in out.iterdir()):
        if resume:
            return
        if overwrite:
            shutil.rmtree(out)
        else:
            raise UserError(f"{out} already holds a run: pass --resume to continue it, or --overwrite to start again")


_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")  # the Trainer's folder names (transformers.trainer_utils)
_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin", "model.safetensors", "pytorch_model.bin")
_WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_SHARDED_OPTIMIZER = ("global_step", "optimizer_0", "pytorch_model_fsdp")  # DeepSpeed / FSDP layouts


def checkpoint_problem(path: Path, step: int) -> str | None:
    """Why checkpoint folder ``path`` (of step ``step``) cannot be resumed from, or None if it is complete.

    The Trainer saves weights, then optimizer / scheduler / RNG state, then ``trainer_state.json``
    last; a kill in between leaves a folder without a readable state, or without its weights."""
    state = path / "trainer_state.json"
    if not state.is_file():
        return "no trainer_state.json (killed while the checkpoint was being saved?)"
    try:
        saved_step = json.loads(state.read_text(encoding="utf-8"))["global_step"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        return f"trainer_state.json is unreadable ({type(exc).__name__}: {exc})"
    if saved_step != step:
        return f"trainer_state.json is of step {saved_step}, not {step}"
    names = {p.name for p in path.iterdir()}
    weights = [n for n in _WEIGHTS if n in names and (path / n).stat().st_size > 0]
    for index in _WEIGHT_INDEXES:
        if index in names:
            try:
                shards = set(json.loads((path / index).read_text(encoding="utf-8"))["weight_map"].values())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
                return f"{index} is unreadable"
            missing = sorted(s for s in shards if s not in names)
            if missing:
                return f"weight shard(s) missing: {', '.join(missing[:3])}"
            weights.append(index)
    if not weights and not any(n.startswith(_SHARDED_OPTIMIZER) for n in names):
        return f"no model weights ({' / '.join(_WEIGHTS)})"
    optimizer = "optimizer.pt" in names and (path / "optimizer.pt").stat().st_size > 0
    if not optimizer and not any(n.startswith(_SHARDED_OPTIMIZER) for n in names):
        return "no optimizer state (optimizer.pt)"
    return None


def resume_checkpoint(out: Path) -> tuple[str | None, list[dict[str, str]]]:
    """The newest *complete* checkpoint in ``out`` and the newer ones skipped, each with the reason.

    Skipped folders are left as they are (nothing is deleted); the resumed run writes its own
    checkpoint of that step again."""
    if not out.is_dir():
        return None, []
    found = sorted(((int(m.group(1)), p) for p in out.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))),
                   reverse=True)
    skipped: list[dict[str, str]] = []
    for step, path in found:
        problem = checkpoint_problem(path, step)
        if problem is None:
            return str(path), skipped
        skipped.append({"checkpoint": str(path), "reason": problem})
    return None, skipped


def last_checkpoint(out: Path) -> str | None:
    """The newest complete checkpoint in ``out`` (see resume_checkpoint), or None."""
    return resume_checkpoint(out)[0]


def run_guard(records: Sequence[TrainingText], recipe: Recipe, data_root: Path | None, out: Path,
              allow_overlap: bool | None) -> ContaminationReport | None:
    """Compare training records with the evaluation benchmarks; stop (ContaminationError) on overlap.

    With overlap allowed, the report is written to ``out/contamination_report.json`` and training goes on.
    The report is written there also when the run is stopped, so that it can be read at leisure.
    """
    spec = recipe.contamination
    if not spec.enabled:
        log.warning("contamination check disabled by the recipe (contamination.enabled=false)")
        return None
    if data_root is None:
        raise UserError("the contamination check needs the evaluation benchmarks: pass --data-root DIR (or set "
                        f"${DATA_ROOT_ENV}); to train without the check set contamination.enabled=false")
    items, read, missing = evaluation_items(data_root, spec.benchmarks, spec.exclude)
    reference = reference_table(data_root, spec.reference, spec.ngram)  # what generic exam phrasing is
    report = check_contamination(records, items, ngram=spec.ngram, threshold=spec.threshold,
                                 min_exact_chars=spec.min_exact_chars, generic_df=spec.generic_df,
                                 min_informative=spec.min_informative, choice_share=spec.choice_share,
                                 reference=reference)
    report.benchmarks, report.missing_benchmarks = read, missing
    report.settings["exclude"] = list(spec.exclude)
    allow = spec.allow_overlap if allow_overlap is None else allow_overlap
    if is_main_process():
        report.write(out / CONTAMINATION_REPORT)
    if report.clean:
        log.info(report.format())
        return report
    if not allow:
        raise ContaminationError(report, hint=f"full report: {out / CONTAMINATION_REPORT}. Remove these records, "
                                              "exclude the benchmark (contamination.exclude=[...]), or pass "
                                              "--allow-overlap to train knowingly.")
    log.warning("training despite overlap (allowed):\n%s", report.format())
    return report


def lora_config(stage: StageSpec) -> Any:
    from peft import LoraConfig

    lora = stage.lora
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        bias=lora.bias,
        task_type="CAUSAL_LM",
    )


def quantization_config(stage: StageSpec) -> Any:
    import torch
    from transformers import BitsAndBytesConfig

    q = stage.qlora
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=q.quant_type,
        bnb_4bit_use_double_quant=q.double_quant,
        bnb_4bit_compute_dtype=getattr(torch, q.compute_dtype),
        bnb_4bit_quant_storage=getattr(torch, q.compute_dtype),
    )


def sft_config(recipe: Recipe, stage: StageSpec, out: Path, precision: str, **data_args: Any) -> Any:
    """TRL ``SFTConfig`` for this stage: training fields from the recipe (trainer_args.common_args,
    shared with every other trainer), data fields from the caller."""
    from trl import SFTConfig

    from jmedllm.train.trainer_args import common_args

    args = common_args(recipe, stage, out, precision, report_to=observe.report_to(stage))
    with warnings.catch_warnings():
        # transformers 5 renamed gradient_checkpointing; TRL 1.16's SFTConfig still sets it (noise, not ours)
        warnings.filterwarnings("ignore", message="`gradient_checkpointing` is deprecated", category=FutureWarning)
        return SFTConfig(**args, **data_args)


def load_tokenizer(model_path: str, stage: StageSpec) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path, revision=stage.model.revision,
                                        trust_remote_code=stage.model.trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token  # what TRL would do; done here so that our pre-flight sees the same
    return tok


def train_and_save(trainer: Any, out: Path, *, resume: bool) -> dict[str, Any]:
    """Train (from the last checkpoint when resuming), save model/adapter + tokenizer, return the results."""
    model = trainer.model
    model.config.use_cache = False  # needed for packed attention masks; restored before saving
    checkpoint, skipped = resume_checkpoint(out) if resume else (None, [])
    for skip in skipped:
        log.warning("--resume: skipping %s: %s", skip["checkpoint"], skip["reason"])
    if resume and checkpoint is None:
        log.warning("--resume: no complete checkpoint in %s, training from the start", out)
    elif checkpoint is not None:
        log.info("--resume: continuing from %s", checkpoint)
    result = trainer.train(resume_from_checkpoint=checkpoint)
    model.config.use_cache = True
    trainer.save_model(str(out))  # adapter only for PEFT models; full weights otherwise (safetensors)
    if trainer.is_world_process_zero():
        trainer.processing_class.save_pretrained(str(out))
    return {
        "resumed_from": checkpoint,
        "skipped_checkpoints": skipped,
        "global_step": trainer.state.global_step,
        "epoch": trainer.state.epoch,
        "train_loss": result.training_loss,
        "metrics": result.metrics,
        "log_history": trainer.state.log_history,
    }


def write_record(out: Path, recipe: Recipe, stage: StageSpec, *, model_path: str, precision: str,
                 files: Sequence[Path], data: dict[str, Any], training: dict[str, Any],
                 contamination: ContaminationReport | None, started: str) -> Path:
    """Write the resolved recipe (recipe.yaml) and the run record (jmedllm_train.json) into ``out``."""
    (out / provenance.RECIPE_COPY).write_text(recipe.to_yaml(), encoding="utf-8")
    record = {
        "recipe": recipe.to_dict(),
        "stage": stage.name,
        "kind": stage.kind,
        "method": stage.method,
        "base_model": model_path,
        "precision": precision,
        "dtype": resolve_dtype(stage, precision),
        "started": started,
        "finished": provenance.now(),
        "versions": provenance.versions(),
        "git": provenance.git_commit(),
        "data_files": provenance.data_hashes(files),
        "data": data,
        "training": training,
        "contamination": None if contamination is None else {
            "clean": contamination.clean,
            "overlaps": len(contamination.overlaps),
            "report": CONTAMINATION_REPORT,
        },
    }
    return provenance.write_json(out / provenance.RUN_RECORD, record)
