"""`jmedllm score`: re-score outputs produced elsewhere into a normal run directory."""

from __future__ import annotations

import argparse
import sys

HELP = "re-score another tool's (or an earlier run's) raw responses into a run directory; lists disagreements"

# flag -> ScoreConfig field; unset flags keep the --fields file's (or the default) value
_FLAGS = {
    "benchmark": "benchmarks", "out": "out", "data_root": "data_root", "name": "name", "format": "format",
    "records": "records", "delimiter": "delimiter", "id_field": "id_field", "response_field": "response_field",
    "reference_verdict_field": "reference_verdict_field", "reference_answer_field": "reference_answer_field",
    "id_normalize": "id_normalize", "benchmark_field": "benchmark_field", "prompt": "prompt", "answer_pattern": "answer_pattern",
    "extract_with": "extract_with", "extract_engine": "extract_engine", "device": "device", "dtype": "dtype",
    "limit": "limit", "seed": "seed", "bootstrap": "bootstrap",
}
SHOWN = 50  # ids printed per list in the terminal; summary.json lists every one


def add_arguments(p: argparse.ArgumentParser) -> None:
    from jmedllm.commands.eval import add_extraction_arguments

    p.add_argument("input", help="JSONL, CSV or JSON file with one record per item: its id and the raw response")
    p.add_argument("--benchmark", required=True, help="benchmark spec(s) the ids belong to, e.g. igakuqa:2022, "
                                                      "igakuqa119, custom:my.yaml (comma-separated)")
    p.add_argument("--out", required=True, help="run directory to write (re-running the same command resumes it)")
    p.add_argument("--data-root", help="data root (default: $JMEDLLM_DATA_ROOT; not needed for custom: only)")
    p.add_argument("--fields", help="YAML file naming the input's fields (keys: id, response, reference_verdict, "
                                    "reference_answer, benchmark, records, format, delimiter, id_normalize); flags override it")
    p.add_argument("--id-field", help="field holding the item id (default id; dotted paths reach nested values)")
    p.add_argument("--response-field", help="field holding the raw response (default response)")
    p.add_argument("--reference-verdict-field", help="field holding the other tool's verdict (true/false, 1/0, ○/×)")
    p.add_argument("--reference-answer-field", help="field holding the other tool's parsed answer (letters or number)")
    p.add_argument("--benchmark-field", help="field naming each row's benchmark (a spec or a name such as "
                                             "igakuqa-en), when several --benchmark specs share ids")
    p.add_argument("--id-normalize", choices=["exact", "loose"],
                   help="exact (default): ids as jmedllm writes them; loose: ignore case, width, separators and "
                        "leading zeros (116-A-001 = 116A1)")
    p.add_argument("--format", choices=["jsonl", "csv", "json"], help="input format (default: from the extension)")
    p.add_argument("--records", help="JSON object input: dotted path of the array of records (e.g. results)")
    p.add_argument("--delimiter", help="CSV delimiter (default ',', tab for .tsv)")
    p.add_argument("--name", help="label of this run (recorded as its model; default: the input file's stem)")
    p.add_argument("--prompt", help="the prompt template file the responses answered; only its declared "
                                    "answer_pattern is used")
    p.add_argument("--first-line-only", action="store_true", default=None,
                   help="score only the first line of each response")
    add_extraction_arguments(p)
    p.add_argument("--device", help="judge model device (auto, cpu, cuda, ...)")
    p.add_argument("--dtype", help="judge model dtype")
    p.add_argument("--limit", type=int, help="first N items of each benchmark")
    p.add_argument("--seed", type=int)
    p.add_argument("--bootstrap", type=int, help="bootstrap resamples for confidence intervals")


def build_config(args: argparse.Namespace):
    from jmedllm.config import from_mapping
    from jmedllm.rescore import ScoreConfig, read_fields_file

    data = read_fields_file(args.fields) if args.fields else {}
    data["input"] = args.input
    for flag, key in _FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            data[key] = value
    if getattr(args, "first_line_only", None):
        data["first_line_only"] = True
    return from_mapping(ScoreConfig, data, where=args.fields or "score")


def report(result) -> str:
    """What the terminal shows after the summary's headline: input matching and every disagreement."""
    from jmedllm.rescore import input_notes, reference

    section = result.summary["score"]
    lines = [f"input: {section['rows']} record(s), {section['matched']} scored"]
    lines += input_notes(section, SHOWN)
    for kind, c in section.get("agreement", {}).items():
        rate = "–" if c["rate"] is None else f"{100 * c['rate']:.1f} %"
        lines.append(f"agreement with the reference {kind} ({c['field']}): {c['agree']} / {c['compared']} = {rate}"
                     + (f"; {c['no_reference']} without a reference value" if c["no_reference"] else ""))
    if "agreement" in section:
        lines.append(f"disagreements: {len(result.disagreements)}")
        for d in result.disagreements:
            mine, theirs = reference.describe(d)
            lines.append(f"  {d['key']}  jmedllm: {mine}  reference: {theirs}  | {d['response']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from jmedllm.benchmarks import BenchmarkSpecError, LoaderError
    from jmedllm.cli import UserError
    from jmedllm.commands.eval import headline
    from jmedllm.config import ConfigError
    from jmedllm.evaluate import EvalError
    from jmedllm.paths import DataRootError
    from jmedllm.rescore import run_score
    from jmedllm.rescore.inputs import InputError
    from jmedllm.runs import RunDirError

    try:
        cfg = build_config(args)
        result = run_score(cfg, argv=sys.argv)
    except (ConfigError, EvalError, DataRootError, RunDirError, FileNotFoundError, LoaderError,
            BenchmarkSpecError, InputError) as exc:
        raise UserError(str(exc)) from exc
    print(headline(result.path / "summary.md"))
    print(report(result))
    print(f"full summary: {result.path / 'summary.md'}; run directory: {result.path}")
    return 0
