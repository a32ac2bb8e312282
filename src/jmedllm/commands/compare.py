"""`jmedllm compare`: compare runs against a baseline with paired tests on shared items."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "compare run directories (the first is the baseline): intervals, paired bootstrap, McNemar"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", help="run directories; the first is the baseline")
    p.add_argument("--label", action="append", help="a label per run, in order (default: directory names)")
    p.add_argument("--metric", action="append", help="metric(s) to compare (default: accuracy)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bootstrap", type=int, default=5000, help="bootstrap resamples")
    p.add_argument("--general", action="append", default=[],
                   help="a benchmark name that is general-domain (repeatable): the report puts the medical "
                        "gain beside the general change")
    p.add_argument("--json", help="also write the comparison as JSON to this file")
    p.add_argument("--markdown", help="also write the Markdown table to this file")


def run(args: argparse.Namespace) -> int:
    from jmedllm.cli import UserError
    from jmedllm.report import compare, compare_markdown
    from jmedllm.runs import RunDirError

    metrics = args.metric or ["accuracy"]
    if args.label and len(args.label) != len(args.runs):
        raise UserError(f"{len(args.label)} --label value(s) for {len(args.runs)} runs")
    try:
        result = compare(args.runs, args.label, metrics, seed=args.seed, n_resamples=args.bootstrap,
                         general=args.general)
    except (ValueError, RunDirError) as exc:
        raise UserError(str(exc)) from exc
    text = compare_markdown(result, metrics)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    if args.markdown:
        Path(args.markdown).write_text(text, encoding="utf-8")
    return 0
