"""`jmedllm merge`: fold a LoRA adapter into its base model (safetensors + tokenizer)."""

from __future__ import annotations

import argparse

HELP = "merge a LoRA / QLoRA adapter into its base model and save it as safetensors"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("adapter", help="adapter folder (the output of `jmedllm train sft`)")
    p.add_argument("output", help="folder for the merged model")
    p.add_argument("--base", help="base model (default: the one recorded in adapter_config.json)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="dtype of the merged weights (float32 keeps merged logits equal to base + adapter)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")


def run(args: argparse.Namespace) -> int:
    from jmedllm.train.merge import merge_adapter

    out = merge_adapter(args.adapter, args.output, base_model=args.base, dtype=args.dtype, overwrite=args.overwrite)
    print(out)
    return 0
