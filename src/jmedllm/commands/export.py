"""`jmedllm export gguf`: a merged checkpoint, or a base plus a PEFT adapter, to a GGUF file."""

from __future__ import annotations

import argparse

HELP = "export a model (or base + adapter) to GGUF for llama.cpp, with llama.cpp's own converter"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("format", choices=["gguf"], help="output format")
    p.add_argument("--model", required=True, help="merged model folder, or the base when --adapter is given")
    p.add_argument("--adapter", help="PEFT adapter folder, merged into --model before conversion")
    p.add_argument("--out", required=True, help="output .gguf file")
    p.add_argument("--outtype", default="f16", choices=["f32", "f16", "bf16", "q8_0"])
    p.add_argument("--overwrite", action="store_true")


def run(args: argparse.Namespace) -> int:
    from jmedllm.export import export_gguf

    path = export_gguf(args.model, args.out, adapter=args.adapter, outtype=args.outtype, overwrite=args.overwrite)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {args.outtype})")
    return 0
