"""`jmedllm eval`: evaluate a model (optionally with a PEFT adapter) on benchmarks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "evaluate a model on medical benchmarks (generate / loglik / letter); resumable"

# flag -> EvalConfig field; flags left unset keep the config file's (or the default) value
_FLAGS = {
    "model": "model", "benchmark": "benchmarks", "out": "out", "data_root": "data_root",
    "engine": "engine", "dtype": "dtype", "device": "device", "batch_size": "batch_size",
    "max_length": "max_length", "mode": "mode", "prompt": "prompt", "language": "language", "shots": "shots",
    "shot_pool": "shot_pool", "seed": "seed", "limit": "limit", "max_new_tokens": "max_new_tokens",
    "stop": "stop", "chunk_size": "chunk_size", "bootstrap": "bootstrap",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file with EvalConfig fields (flags and key=value override it)")
    p.add_argument("--model", help="local model directory or hub id")
    p.add_argument("--adapter", action="append",
                   help="PEFT adapter directory, evaluated without merging; repeat (or comma-separate) to "
                        "evaluate several against one loaded base, each in --out/<folder name> "
                        "('none' adds the bare base model, in --out/base)")
    p.add_argument("--benchmark", help="comma-separated benchmark specs, e.g. igakuqa:2022,igakuqa-en:2022")
    p.add_argument("--out", help="run directory (re-running the same command resumes it)")
    p.add_argument("--data-root", help="data root (default: $JMEDLLM_DATA_ROOT)")
    p.add_argument("--engine", help="engine kind (default hf)")
    p.add_argument("--dtype", help="auto, float32, bfloat16, float16")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--batch-size", help="integer or 'auto' (backs off on out-of-memory)")
    p.add_argument("--max-length", type=int, help="model context length (prompts are cut from the left)")
    p.add_argument("--mode", choices=["generate", "loglik", "letter"])
    p.add_argument("--prompt", help="prompt family (alpaca, medpalm, terse, chat) or a .j2 template file")
    p.add_argument("--language", choices=["ja", "en"], help="prompt language (default: each question's own)")
    p.add_argument("--shots", type=int, help="number of few-shot exemplars")
    p.add_argument("--shot-pool", help="benchmark spec to draw exemplars from (default: another exam year)")
    p.add_argument("--shared-shots", action="store_true", default=None,
                   help="the same exemplars for every question (a prompt prefix the engine computes once)")
    p.add_argument("--shuffle", action="store_true", default=None, help="shuffle choices (seeded, per item)")
    p.add_argument("--seed", type=int)
    p.add_argument("--limit", type=int, help="first N items of each benchmark")
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--stop", action="append", help="stop string for generation (repeatable)")
    p.add_argument("--first-line-only", action="store_true", default=None,
                   help="score only the first line of each answer, as the reference harness does")
    p.add_argument("--chunk-size", type=int, help="items per durable chunk")
    p.add_argument("--bootstrap", type=int, help="bootstrap resamples for confidence intervals")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="override any EvalConfig field")


def build_config(args: argparse.Namespace):
    from jmedllm.config import apply_overrides, from_mapping, load_yaml
    from jmedllm.evaluate import EvalConfig

    data = load_yaml(args.config) if args.config else {}
    for flag, key in _FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            data[key] = value
    for flag in ("shuffle", "first_line_only", "shared_shots"):
        if getattr(args, flag, None):
            data[flag] = True
    data = apply_overrides(data, args.overrides or [])
    return from_mapping(EvalConfig, data, where=args.config or "eval")


def run(args: argparse.Namespace) -> int:
    from jmedllm.benchmarks import BenchmarkSpecError, LoaderError
    from jmedllm.cli import UserError
    from jmedllm.config import ConfigError
    from jmedllm.engines.adapters import AdapterError
    from jmedllm.evaluate import EvalError, run_eval, run_eval_adapters
    from jmedllm.paths import DataRootError
    from jmedllm.prompts import PromptTemplateError
    from jmedllm.runs import RunDirError

    user_errors = (ConfigError, EvalError, DataRootError, RunDirError, FileNotFoundError, LoaderError,
                   BenchmarkSpecError, PromptTemplateError, AdapterError)

    try:
        cfg = build_config(args)
        if not cfg.model:
            raise UserError("no model given (--model DIR_OR_HUB_ID)")
        adapters = [a.strip() for value in (args.adapter or []) for a in value.split(",") if a.strip()]
        if len(adapters) > 1:
            for path in run_eval_adapters(cfg, adapters, argv=sys.argv):
                print(f"== {path.name}")
                print(headline(path / "summary.md"))
            print(f"run directories: {', '.join(str(p) for p in sorted(Path(cfg.out).iterdir()))}")
            return 0
        if adapters:
            cfg.adapter = None if adapters[0] == "none" else adapters[0]
        path = run_eval(cfg, argv=sys.argv)
    except user_errors as exc:
        raise UserError(str(exc)) from exc
    print(headline(path / "summary.md"))
    print(f"full summary: {path / 'summary.md'}; run directory: {path}")
    return 0


HEADLINE_SECTIONS = ("# Summary", "## Overall", "## By benchmark language", "## Exams", "## Notes")


def headline(summary_md) -> str:
    """The parts of summary.md worth printing: overall, per benchmark and language, exams, notes."""
    sections: list[list[str]] = []
    for line in summary_md.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not sections:
            sections.append([])
        sections[-1].append(line)
    keep = [sec for sec in sections if sec and sec[0].startswith(HEADLINE_SECTIONS)]
    return "\n".join("\n".join(sec).rstrip() + "\n" for sec in keep)
