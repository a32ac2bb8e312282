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
    "stop": "stop", "chunk_size": "chunk_size", "bootstrap": "bootstrap", "answer_pattern": "answer_pattern",
    "extract_with": "extract_with", "extract_engine": "extract_engine", "top_logprobs": "top_logprobs",
    "samples": "samples", "temperature": "temperature",
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
    p.add_argument("--engine", help="engine kind: hf (default), openai, llamacpp, vllm")
    p.add_argument("--engine-option", action="append", metavar="KEY=VALUE",
                   help="an engine option, repeatable: openai base_url=, api=chat|completions, api_key_env=, "
                        "concurrency=, max_requests=; llamacpp n_ctx=, n_threads=; vllm tensor_parallel_size=, ...")
    p.add_argument("--quantize", choices=["4bit", "8bit"], help="hf engine: load the base through bitsandbytes (GPU)")
    p.add_argument("--device-map", help="hf engine: 'auto' spreads the model over every visible GPU")
    p.add_argument("--max-memory", help="hf engine with --device-map auto: per-device caps, e.g. 0=38GiB,1=38GiB")
    p.add_argument("--thinking", choices=["on", "off"],
                   help="reasoning models: enable_thinking in the chat template (hf, vllm; for a server pass "
                        "--engine-option extra_body.chat_template_kwargs.enable_thinking=false)")
    p.add_argument("--reasoning-effort", help="openai engine: the API's reasoning effort (low, medium, high)")
    p.add_argument("--samples", type=int, help="generate: answers sampled per item (majority vote + mean accuracy)")
    p.add_argument("--temperature", type=float, help="generate: sampling temperature (default 0, greedy)")
    p.add_argument("--letter-grammar", action="store_true", default=None,
                   help="generate: constrain each answer to its item's choice labels (e.g. 'c' or 'a,d'), per item, "
                        "through a grammar (llamacpp) or structured output (vllm)")
    p.add_argument("--top-logprobs", type=int, help="letter mode through the first token's top-k log-probs: k")
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
    p.add_argument("--allow-outside-paths", action="store_true", default=None,
                   help="let a custom mapping name files (data, exam rules, images) outside its own folder")
    add_extraction_arguments(p)
    p.add_argument("--chunk-size", type=int, help="items per durable chunk")
    p.add_argument("--bootstrap", type=int, help="bootstrap resamples for confidence intervals")
    p.add_argument("--summary-subset", action="store_true", default=None,
                   help="on a run directory recording more items than this command selects (a smaller --limit), "
                        "write a summary of the selected items only (it says 'N of M recorded items')")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="override any EvalConfig field")
    p.set_defaults(_trailing="overrides")  # key=value after the options, too


def add_extraction_arguments(p: argparse.ArgumentParser) -> None:
    """Flags shared by `eval` and `score`: the user's answer pattern and the judge extraction."""
    p.add_argument("--answer-pattern", metavar="REGEX",
                   help="your answer style: a regex with a named group 'answer', e.g. '【解答】\\s*(?P<answer>[a-e]+)'; "
                        "wins over a prompt file's and a mapping's (docs/rescoring.md)")
    p.add_argument("--extract-with", metavar="MODEL",
                   help="judge model asked which answer a rule-unparsed response chose; reported apart "
                        "(method 'judge', accuracy with and without it)")
    p.add_argument("--extract-engine", help="engine kind of the judge model (default hf)")


def build_config(args: argparse.Namespace):
    from jmedllm.config import ConfigError, FieldLocator, apply_overrides, from_mapping, load_yaml_lines
    from jmedllm.evaluate import EvalConfig

    file_data, lines = load_yaml_lines(args.config) if args.config else ({}, {})
    data = dict(file_data)
    for flag, key in _FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            data[key] = value
    for flag in ("shuffle", "first_line_only", "allow_outside_paths", "summary_subset", "shared_shots",
                 "letter_grammar"):
        if getattr(args, flag, None):
            data[flag] = True
    engine_options = [f"engine_options.{o}" for o in (getattr(args, "engine_option", None) or [])]
    for flag in ("quantize", "device_map", "max_memory", "reasoning_effort"):
        if getattr(args, flag, None):
            engine_options.append(f"engine_options.{flag}={getattr(args, flag)}")
    if getattr(args, "thinking", None):
        engine_options.append(f"engine_options.chat_template_kwargs.enable_thinking={args.thinking == 'on'}")
    data = apply_overrides(data, engine_options + (args.overrides or []))
    try:
        return from_mapping(EvalConfig, data, where="eval")
    except ConfigError as exc:
        if not args.config:
            raise
        raise FieldLocator(args.config, lines, file_data, data).wrap(exc, "eval") from None


def run(args: argparse.Namespace) -> int:
    from jmedllm.benchmarks import BenchmarkSpecError, LoaderError
    from jmedllm.cli import UserError
    from jmedllm.config import ConfigError
    from jmedllm.engines.adapters import AdapterError
    from jmedllm.engines.base import EngineError
    from jmedllm.engines.hf_loading import PlacementError
    from jmedllm.evaluate import EvalError, run_eval, run_eval_adapters
    from jmedllm.paths import DataRootError
    from jmedllm.prompts import PromptTemplateError
    from jmedllm.runs import RunDirError

    user_errors = (ConfigError, EvalError, DataRootError, RunDirError, FileNotFoundError, LoaderError,
                   BenchmarkSpecError, PromptTemplateError, AdapterError, EngineError, PlacementError)

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


HEADLINE_SECTIONS = ("# Summary", "## Overall", "## By benchmark language", "## Exams", "## Judge extraction",
                     "## Notes")


def headline(summary_md) -> str:
    """The parts of summary.md worth printing: overall, per benchmark and language, exams, notes."""
    sections: list[list[str]] = []
    for line in summary_md.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not sections:
            sections.append([])
        sections[-1].append(line)
    keep = [sec for sec in sections if sec and sec[0].startswith(HEADLINE_SECTIONS)]
    return "\n".join("\n".join(sec).rstrip() + "\n" for sec in keep)
