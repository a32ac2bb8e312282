"""Run every stage of a recipe in order (JMedLLM-v1: CPT, then SFT on its result)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from jmedllm.train.recipe import Recipe


def run_stage(recipe: Recipe, stage: str, **kwargs: Any) -> Path:
    """Run one stage by name (its kind picks run_cpt, run_sft, run_preference or run_grpo); return its output directory."""
    spec = recipe.stage(stage)
    if spec.kind == "cpt":
        from jmedllm.train.cpt import run_cpt

        return run_cpt(recipe, spec.name, **kwargs)
    if spec.kind in ("dpo", "orpo", "kto"):
        from jmedllm.train.preference import run_preference

        return run_preference(recipe, spec.name, **kwargs)
    if spec.kind == "grpo":
        from jmedllm.train.grpo import run_grpo

        return run_grpo(recipe, spec.name, **kwargs)
    from jmedllm.train.sft import run_sft

    return run_sft(recipe, spec.name, **kwargs)


def run_recipe(
    recipe: Recipe,
    *,
    data_root: str | os.PathLike[str] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    allow_overlap: bool | None = None,
    stages: Sequence[str] | None = None,
) -> list[Path]:
    """Run the recipe's stages (all, or those named in ``stages``) in order; return their output directories.

    With ``resume``, a stage that already finished (its run record is written) is kept as it is and
    the next one starts from it; the stage that was interrupted continues from its last checkpoint.
    """
    from jmedllm.train.provenance import RUN_RECORD

    names = [s.name for s in recipe.stages] if stages is None else [recipe.stage(s).name for s in stages]
    out: list[Path] = []
    for name in names:
        stage_dir = recipe.stage_dir(name)
        if resume and (stage_dir / RUN_RECORD).is_file():
            out.append(stage_dir)
            continue
        out.append(run_stage(recipe, name, data_root=data_root, resume=resume, overwrite=overwrite,
                             allow_overlap=allow_overlap))
    return out
