"""`jmedllm train`: continued pretraining and LoRA / QLoRA instruction tuning from a recipe.

    jmedllm train --recipe jmedllm-v1-qwen2-7b corpus.paths=[my_corpus/] ...   # every stage, in order
    jmedllm train cpt --recipe tiny-cpt --model /path/to/model --data-root ../shared/data
    jmedllm train sft --recipe jmedlora-7b-lora model.name_or_path=... instructions.sources=[{path: qa.jsonl}]

``key=value`` overrides follow the recipe file, or come before or after the options
(``train sft --recipe R --model M 'key=value'``); see docs/training.md.
Multi-GPU: ``accelerate launch --config_file <jmedllm/recipes/accelerate/*.yaml> -m jmedllm.cli train ...``.
"""

from __future__ import annotations

import argparse
import logging
import sys

HELP = "continued pretraining / LoRA / QLoRA instruction tuning from a recipe (TRL + PEFT); resumable"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("args", nargs="*", metavar="[STAGE] key=value",
                   help="optional stage to run (cpt, sft or a stage name; default: all stages), then overrides")
    p.add_argument("--recipe", nargs="+", metavar=("RECIPE", "key=value"),
                   help="recipe YAML file or shipped name (see --list), optionally followed by key=value overrides")
    p.add_argument("--model", help="model (hub id or folder) of the selected stage, else of the first stage")
    p.add_argument("--output-dir", help="output folder (each stage writes OUTPUT_DIR/<stage>)")
    p.add_argument("--data-root", help="data root: benchmarks for the contamination check, ${data_root} in paths")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint; keep finished stages")
    p.add_argument("--overwrite", action="store_true", help="delete an existing output folder and start again")
    p.add_argument("--allow-overlap", action="store_true",
                   help="train even if training text overlaps evaluation questions (the report is kept)")
    p.add_argument("--print", action="store_true", dest="print_recipe", help="print the resolved recipe and exit")
    p.add_argument("--write-instructions", metavar="FILE",
                   help="write the sft stage's instruction data (with provenance) as JSONL and exit")
    p.add_argument("--list", action="store_true", help="list the shipped recipes and exit")
    p.set_defaults(_trailing="args")  # `--recipe R --model M key=value`: trailing words join `args`


def _parse(args: argparse.Namespace):
    from jmedllm.cli import UserError
    from jmedllm.train.recipe import load_recipe

    stage = None
    overrides: list[str] = []
    for i, item in enumerate(args.args):
        if "=" in item:
            overrides.append(item)
        elif i == 0:
            stage = item
        else:
            raise UserError(f"unexpected argument {item!r}: give the stage first, then key=value overrides")
    if not args.recipe:
        raise UserError("give a recipe: --recipe FILE_OR_NAME (jmedllm train --list shows the shipped ones)")
    name, *more = args.recipe
    bad = [m for m in more if "=" not in m]
    if bad:
        raise UserError(f"after --recipe {name}: expected key=value overrides, got {' '.join(bad)}")
    overrides = more + overrides
    if args.output_dir:
        overrides.append(f"output_dir={args.output_dir}")
    recipe = load_recipe(name, overrides)
    if args.model:  # the selected stage's model, else the first stage's
        (recipe.stage(stage) if stage else recipe.stages[0]).model.name_or_path = args.model
    return recipe, stage


def run(args: argparse.Namespace) -> int:
    from jmedllm.cli import UserError
    from jmedllm.train.recipe import shipped_recipes

    if args.list:
        from jmedllm.train.recipe import load_recipe

        for name in shipped_recipes():
            r = load_recipe(name)
            print(f"{name:24s} {' -> '.join(f'{s.name} ({s.kind}, {s.method})' for s in r.stages)}")
        return 0
    recipe, stage = _parse(args)
    if args.print_recipe:
        sys.stdout.write(recipe.to_yaml())
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    kwargs = dict(data_root=args.data_root, resume=args.resume, overwrite=args.overwrite,
                  allow_overlap=True if args.allow_overlap else None)
    if args.write_instructions:
        from jmedllm.train.instructions import write_instructions
        from jmedllm.train.sft import stage_instructions
        from jmedllm.train.stage import stage_data_root

        spec = recipe.stage(stage or "sft")
        if spec.kind != "sft":
            raise UserError(f"--write-instructions needs an sft stage; {spec.name} is {spec.kind}")
        examples, _, summary = stage_instructions(spec, stage_data_root(recipe, args.data_root))
        path = write_instructions(examples, args.write_instructions)
        print(f"wrote {len(examples)} examples to {path} ({summary})")
        return 0
    from jmedllm.train.pipeline import run_recipe, run_stage

    if stage is not None:
        outs = [run_stage(recipe, stage, **kwargs)]
    else:
        outs = run_recipe(recipe, **kwargs)
    for out in outs:
        print(out)
    return 0
