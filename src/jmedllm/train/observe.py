"""Training observability: where logs go, a validation split, throughput and memory, and
evaluation of checkpoints by the same runner as `jmedllm eval`.

Per stage (``observe:`` in a recipe):

- ``report_to``: transformers integrations, TensorBoard by default (event files under
  ``<stage output>/runs/``), ``wandb`` when asked, ``none`` for nothing. A requested
  integration whose package is missing is a clear error; the default TensorBoard is dropped
  with a warning when tensorboard is not installed.
- every logged step also carries ``tokens_per_second`` (input tokens seen per second since the
  previous log) and ``memory_gb`` (peak CUDA memory allocated, else the process's peak RSS).
- ``validation``: a share or number of training rows held out (seeded); the trainer reports
  ``eval_loss`` before the first step (with ``eval_at_start``), every ``eval_every`` steps (when
  set) and after the last step.
- ``eval_every: N`` with ``benchmarks``: every N steps (and at step 0, and at the end) the model
  as it stands is saved under ``evals/weights/step-N`` (the adapter alone for LoRA) and evaluated
  by ``evaluate.run_eval`` into its own run directory ``evals/step-N``, whose config.json
  carries ``training: {step, output_dir, stage}``; `jmedllm report <stage output>` draws score
  against step beside the loss curves.
"""

from __future__ import annotations

import importlib.util
import logging
import resource
import sys
import time
from pathlib import Path
from typing import Any

from jmedllm.errors import UserError
from jmedllm.train.recipe import Recipe, StageSpec

log = logging.getLogger("jmedllm.train")

EVALS_DIR = "evals"
INTEGRATIONS = {"tensorboard": "tensorboard", "wandb": "wandb", "none": None}


def report_to(stage: StageSpec) -> list[str] | str:
    """The ``report_to`` value for the trainer, checked against what is installed."""
    wanted = [x.strip().lower() for x in stage.observe.report_to if x.strip()]
    unknown = [x for x in wanted if x not in INTEGRATIONS]
    if unknown:
        raise UserError(f"stage {stage.name}: observe.report_to: unknown {', '.join(unknown)} "
                        f"(valid: {', '.join(INTEGRATIONS)})")
    if not wanted or "none" in wanted:
        return "none"
    out = []
    for name in wanted:
        module = INTEGRATIONS[name]
        if importlib.util.find_spec(module) is None:
            if name == "tensorboard" and stage.observe.report_to == ["tensorboard"]:
                log.warning("tensorboard is not installed: training logs go to jmedllm_train.json only "
                            "(pip install 'jmedllm[train]')")
                continue
            raise UserError(f"stage {stage.name}: observe.report_to asks for {name}, which is not installed "
                            f"(pip install {module})")
        out.append(name)
    return out or "none"


def trainer_args(stage: StageSpec, has_validation: bool) -> dict[str, Any]:
    """Extra SFTConfig fields: evaluation schedule and token counting."""
    args: dict[str, Any] = {"include_num_input_tokens_seen": "non_padding"}
    if has_validation:
        args["per_device_eval_batch_size"] = stage.training.batch_size
        if stage.observe.eval_every:
            args |= {"eval_strategy": "steps", "eval_steps": stage.observe.eval_every}
    return args


def split_validation(dataset: Any, stage: StageSpec, seed: int) -> tuple[Any, Any | None]:
    """(training rows, held-out rows or None) from a datasets.Dataset, seeded."""
    share = stage.observe.validation
    if not share:
        return dataset, None
    if share < 0:
        raise UserError(f"stage {stage.name}: observe.validation must be >= 0, got {share}")
    size: float | int = share if share < 1 else int(share)
    n_val = int(round(share * len(dataset))) if share < 1 else int(share)
    if n_val < 1 or n_val >= len(dataset):
        raise UserError(f"stage {stage.name}: observe.validation={share} leaves {n_val} of {len(dataset)} rows "
                        "for validation: at least one, and fewer than all")
    parts = dataset.train_test_split(test_size=size, seed=seed, shuffle=True)
    return parts["train"], parts["test"]


def _memory_gb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 1e9
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (1e9 if sys.platform == "darwin" else 1e6)


def make_callbacks(recipe: Recipe, stage: StageSpec, out: Path, *, model_path: str,
                   data_root: Path | None) -> list[Any]:
    """Throughput/memory logging, and checkpoint evaluation when the stage asks for it."""
    from transformers import TrainerCallback

    class Throughput(TrainerCallback):
        """Adds tokens_per_second and memory_gb to every log (placed first, so every integration sees them)."""

        def __init__(self) -> None:
            self.last: tuple[float, int] | None = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.last = (time.perf_counter(), state.num_input_tokens_seen)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs is None or "loss" not in logs:
                return
            now, seen = time.perf_counter(), state.num_input_tokens_seen
            extra = {"memory_gb": round(_memory_gb(), 4)}
            if self.last is not None and now > self.last[0] and seen:
                extra["tokens_per_second"] = round((seen - self.last[1]) / (now - self.last[0]), 2)
            self.last = (now, seen)
            logs.update(extra)
            if state.log_history and state.log_history[-1].get("step") == state.global_step:
                state.log_history[-1].update(extra)

    class CheckpointEval(TrainerCallback):
        """Evaluate the model at steps 0, N, 2N, ... and at the end, each into evals/step-N."""

        def __init__(self) -> None:
            self.done: set[int] = set()

        def evaluate(self, state, model, tokenizer) -> None:
            step = int(state.global_step)
            if step in self.done or not state.is_world_process_zero:
                return
            self.done.add(step)
            evaluate_checkpoint(recipe, stage, out, step, model, tokenizer, model_path=model_path,
                                data_root=data_root)

        def on_train_begin(self, args, state, control, model=None, processing_class=None, **kwargs):
            if stage.observe.eval_at_start and state.global_step == 0:
                self.evaluate(state, model, processing_class)

        def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
            if state.global_step % stage.observe.eval_every == 0:
                self.evaluate(state, model, processing_class)

        def on_train_end(self, args, state, control, model=None, processing_class=None, **kwargs):
            self.evaluate(state, model, processing_class)

    class ValidationAtEdges(TrainerCallback):
        """Validation loss also before the first step and after the last one (before/after numbers)."""

        trainer: Any = None

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            if self.trainer is not None and state.global_step == 0 and stage.observe.eval_at_start:
                was_training = model.training if model is not None else True
                self.trainer.evaluate()
                if model is not None:
                    model.train(was_training)

        def on_step_end(self, args, state, control, **kwargs):
            if state.max_steps and state.global_step >= state.max_steps:
                control.should_evaluate = True

    callbacks: list[Any] = [Throughput()]
    if stage.observe.validation:
        callbacks.append(ValidationAtEdges())
    if stage.observe.eval_every and stage.observe.benchmarks:
        check_benchmarks(stage, data_root)
        callbacks.append(CheckpointEval())
    elif stage.observe.benchmarks:
        raise UserError(f"stage {stage.name}: observe.benchmarks is set but observe.eval_every is 0: "
                        "say how often to evaluate (observe.eval_every=N steps)")
    return callbacks


def check_benchmarks(stage: StageSpec, data_root: Path | None) -> None:
    """Fail before training, not at the first checkpoint, when an evaluation benchmark cannot be read."""
    from jmedllm.benchmarks import load_benchmark

    if data_root is None:
        raise UserError(f"stage {stage.name}: checkpoint evaluation needs the benchmarks: pass --data-root DIR "
                        "(or set $JMEDLLM_DATA_ROOT)")
    if stage.observe.mode not in ("loglik", "letter", "generate"):
        raise UserError(f"stage {stage.name}: observe.mode must be loglik, letter or generate")
    for spec in stage.observe.benchmarks:
        try:
            load_benchmark(spec, data_root)
        except Exception as exc:  # noqa: BLE001 - any loader problem, said before hours of training
            raise UserError(f"stage {stage.name}: observe.benchmarks: {spec!r} cannot be read ({exc})") from None


def attach(trainer: Any, callbacks: list[Any]) -> None:
    """Throughput first (so TensorBoard / W&B log what it adds), the rest after the defaults."""
    trainer.callback_handler.callbacks.insert(0, callbacks[0])
    for cb in callbacks[1:]:
        if hasattr(cb, "trainer"):
            cb.trainer = trainer
        trainer.add_callback(cb)


def evaluate_checkpoint(recipe: Recipe, stage: StageSpec, out: Path, step: int, model: Any, tokenizer: Any, *,
                        model_path: str, data_root: Path | None) -> Path:
    """Save the model as it stands and evaluate it with the runner into ``out/evals/step-N``."""
    from jmedllm.evaluate import EvalConfig, run_eval

    spec = stage.observe
    weights = out / EVALS_DIR / "weights" / f"step-{step:06d}"
    run_dir = out / EVALS_DIR / f"step-{step:06d}"
    use_cache = getattr(model.config, "use_cache", None)
    model.config.use_cache = True  # the saved config is used for generation
    try:
        model.save_pretrained(str(weights))
    finally:
        model.config.use_cache = use_cache
    is_adapter = (weights / "adapter_config.json").is_file()
    if not is_adapter:
        tokenizer.save_pretrained(str(weights))
    cfg = EvalConfig(model=model_path if is_adapter else str(weights), adapter=str(weights) if is_adapter else None,
                     benchmarks=list(spec.benchmarks), out=str(run_dir),
                     data_root=str(data_root) if data_root else None, mode=spec.mode, prompt=spec.prompt,
                     seed=recipe.seed, limit=spec.limit, max_new_tokens=spec.max_new_tokens,
                     bootstrap=spec.bootstrap)
    was_training = model.training
    log.info("step %d: evaluating the checkpoint on %s (%s) -> %s", step, ", ".join(spec.benchmarks), spec.mode,
             run_dir)
    try:
        return run_eval(cfg, argv=["jmedllm", "train", f"(checkpoint evaluation, step {step})"],
                        context={"training": {"step": step, "output_dir": str(out), "stage": stage.name}})
    finally:
        model.train(was_training)
