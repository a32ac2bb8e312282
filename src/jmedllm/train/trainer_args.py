"""The Trainer arguments every TRL config shares, from a stage's ``training`` and ``scaling`` sections.

Used by every stage: SFT and CPT (``jmedllm.train.stage.sft_config``), preference (DPO / ORPO /
KTO) and GRPO. Liger kernels: ``scaling.use_liger_kernel``
(``None``: on when liger-kernel is installed and a CUDA GPU is present).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from jmedllm.errors import UserError
from jmedllm.train.recipe import Recipe, StageSpec
from jmedllm.train.stage import resolve_dtype


def optional_gpu_feature(want: bool | None, module: str, stage: StageSpec, field: str, install: str) -> bool:
    """Whether to use an optional GPU-side package (``module``): as the recipe's ``field`` asks
    (``true`` needs it installed), or, when ``null``, only when it is installed and a CUDA GPU is present."""
    installed = importlib.util.find_spec(module) is not None
    if want is None:
        import torch

        return installed and torch.cuda.is_available()
    if want and not installed:
        raise UserError(f"stage {stage.name}: {field}=true needs {install}, or set it to null (use it only when "
                        "available) / false")
    return bool(want)


def liger_enabled(stage: StageSpec) -> bool:
    """Whether to pass ``use_liger_kernel=True``: asked for (and installed), or auto and usable here."""
    return optional_gpu_feature(stage.scaling.use_liger_kernel, "liger_kernel", stage, "scaling.use_liger_kernel",
                                "liger-kernel (pip install 'jmedllm[liger]')")


def model_init_kwargs(stage: StageSpec, precision: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"dtype": resolve_dtype(stage, precision),
                              "attn_implementation": stage.model.attn_implementation}
    if stage.model.revision:
        kwargs["revision"] = stage.model.revision
    return kwargs


def common_args(recipe: Recipe, stage: StageSpec, out: Path, precision: str,
                report_to: str | list[str] = "none") -> dict[str, Any]:
    """Keyword arguments of a TRL ``*Config`` shared by every trainer (optimisation, checkpoints, seeds);
    ``stage.sft_config`` (SFT and CPT) builds on them too."""
    import torch

    t = stage.training
    if not 0 <= t.warmup_ratio < 1:
        raise UserError(f"stage {stage.name}: training.warmup_ratio must be in [0, 1), got {t.warmup_ratio}")
    return dict(
        output_dir=str(out),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_steps if t.warmup_steps > 0 else t.warmup_ratio,
        weight_decay=t.weight_decay,
        per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        gradient_checkpointing=t.gradient_checkpointing,
        max_grad_norm=t.max_grad_norm,
        optim=t.optim,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        logging_steps=t.logging_steps,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        seed=recipe.seed,
        data_seed=recipe.seed,
        report_to=report_to,
        model_init_kwargs=model_init_kwargs(stage, precision),
        trust_remote_code=stage.model.trust_remote_code,
        disable_tqdm=False,  # steps, rate and ETA on stderr
        dataloader_pin_memory=torch.cuda.is_available(),
        use_liger_kernel=liger_enabled(stage),
    )
