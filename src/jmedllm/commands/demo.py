"""`jmedllm demo`: build a tiny model, continue pretraining, LoRA-tune, evaluate, compare."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "the whole loop on CPU in minutes: tiny model -> CPT -> LoRA SFT -> bilingual IgakuQA 2022 comparison"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", help="data root (default: $JMEDLLM_DATA_ROOT)")
    p.add_argument("--out", default="outputs/demo", help="demo folder (re-running reuses finished work)")
    p.add_argument("--mode", default="loglik", choices=["loglik", "letter", "generate"], help="evaluation mode")
    p.add_argument("--quick", action="store_true", help="a few training steps and 6 items per language (seconds)")
    p.add_argument("--fresh", action="store_true", help="delete the demo folder first")
    p.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from jmedllm.cli import UserError
    from jmedllm.demo import DemoSettings, clean, run_demo
    from jmedllm.paths import DataRootError, resolve_data_root

    try:
        root = resolve_data_root(args.data_root)
    except DataRootError as exc:
        raise UserError(str(exc)) from exc
    out = Path(args.out)
    if args.fresh:
        clean(out)
    print(run_demo(DemoSettings(out=out, data_root=root, mode=args.mode, quick=args.quick, seed=args.seed)))
    return 0
