"""`jmedllm synth`: have a model write question-answer pairs about medical documents (instruction data)."""

from __future__ import annotations

import argparse

HELP = "synthesise instruction data: a model writes QA pairs about passages of a corpus (parsed, filtered, deduplicated)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="generator: local model folder or hub id")
    p.add_argument("--adapter", help="PEFT adapter for the generator")
    p.add_argument("--engine", default="hf", help="engine kind: hf (default), openai, llamacpp, vllm")
    p.add_argument("--engine-option", action="append", default=[], metavar="KEY=VALUE",
                   help="engine option, repeatable (openai: base_url=..., api=chat, api_key_env=..., "
                        "concurrency=..., max_requests=..., cache=PATH)")
    p.add_argument("--corpus", nargs="+", required=True,
                   help="documents: files or folders of .txt / .jsonl / MedTxt .xml (as for continued pretraining)")
    p.add_argument("--out", required=True, help="instruction JSONL to write (counts go to <name>.stats.json)")
    p.add_argument("--text-field", default="text", help="JSONL field holding the document text")
    p.add_argument("--text-unit", default="paragraph", choices=["file", "paragraph", "line"],
                   help="what one document is in a plain text file")
    p.add_argument("--pairs", type=int, default=3, help="pairs asked for per passage")
    p.add_argument("--language", default="ja", choices=["ja", "en"], help="language of the instruction")
    p.add_argument("--max-passage-chars", type=int, default=800)
    p.add_argument("--limit", type=int, help="first N documents only")
    p.add_argument("--chat", action="store_true", help="wrap the instruction in the model's chat template")
    p.add_argument("--max-new-tokens", type=int, default=512)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=8, help="passages per generate call")
    p.add_argument("--dtype", help="model dtype for the engine (auto, float32, bfloat16, float16)")
    p.add_argument("--device", help="engine device (auto, cpu, cuda, ...)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from jmedllm.cli import UserError
    from jmedllm.engines import load_engine
    from jmedllm.schema import GenerationParams
    from jmedllm.train.corpus import CorpusError, read_corpus
    from jmedllm.train.synth import run_synth, write_synth

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise UserError(f"{out} exists: choose another --out or pass --overwrite")
    try:
        corpus = read_corpus(args.corpus, text_field=args.text_field, text_unit=args.text_unit)
    except CorpusError as exc:
        raise UserError(str(exc)) from None
    documents = corpus.documents[: args.limit] if args.limit else corpus.documents
    from jmedllm.config import ConfigError, apply_overrides
    from jmedllm.engines.base import EngineError

    options = {"model": args.model}
    for key in ("adapter", "dtype", "device"):
        if getattr(args, key):
            options[key] = getattr(args, key)
    try:
        options |= apply_overrides({}, args.engine_option)
        if args.engine == "openai":  # the response cache next to the output: an interrupted synth resumes for free
            options.setdefault("cache", str(out.with_name(out.name + ".api_cache.sqlite")))
        engine = load_engine(args.engine, **options)
    except (ConfigError, EngineError) as exc:
        raise UserError(str(exc)) from None
    params = GenerationParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                              seed=args.seed)
    try:
        result = run_synth(documents, engine, pairs_per_passage=args.pairs, language=args.language,
                           max_passage_chars=args.max_passage_chars, chat=args.chat, params=params,
                           batch_size=args.batch_size)
    except EngineError as exc:
        raise UserError(str(exc)) from None
    path, stats_path = write_synth(result, out)
    s = result.stats
    print(f"{s['kept_pairs']} pairs kept from {s['parsed_pairs']} parsed in {s['generations']} generations "
          f"({s['generations_without_pairs']} without any pair; rejected: {s['rejected'] or 'none'})")
    print(f"wrote {path} and {stats_path}")
    return 0
