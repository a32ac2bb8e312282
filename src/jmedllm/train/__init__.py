"""Adaptation: continued pretraining, LoRA / QLoRA instruction tuning, merge — on TRL + PEFT + accelerate.

One function per stage, each returning the directory it wrote:

    recipe = load_recipe("tiny-two-stage", ["model.name_or_path=/path/to/model"])
    cpt_dir = run_cpt(recipe, data_root=...)          # continued pretraining
    sft_dir = run_sft(recipe, data_root=...)          # instruction tuning (LoRA / QLoRA / full)
    merged = merge_adapter(sft_dir, "merged/")        # adapter folded into the base
    dirs = run_recipe(recipe, data_root=...)          # every stage in order

Importing this package is cheap: torch, transformers and TRL are imported when a stage runs.
"""

from __future__ import annotations

from typing import Any

from jmedllm.train.recipe import Recipe, load_recipe, shipped_recipes

__all__ = [
    "Recipe",
    "load_recipe",
    "shipped_recipes",
    "run_cpt",
    "run_sft",
    "run_recipe",
    "merge_adapter",
]

_LAZY = {
    "run_cpt": "jmedllm.train.cpt",
    "run_sft": "jmedllm.train.sft",
    "run_recipe": "jmedllm.train.pipeline",
    "merge_adapter": "jmedllm.train.merge",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'jmedllm.train' has no attribute {name!r}")
