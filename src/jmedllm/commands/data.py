"""`jmedllm data list|check`: which benchmarks exist, and whether a data root holds them intact."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, TextIO

HELP = "list the benchmarks, or check a data root (counts, points per section, problems)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="{list,check}", required=True)
    p_list = sub.add_parser("list", help="benchmark names, languages, descriptions (and counts with a data root)")
    p_list.add_argument("--data-root", help="data folder (default $JMEDLLM_DATA_ROOT); adds question counts")
    p_check = sub.add_parser("check", help="load benchmarks and report counts and problems; exit 1 on errors")
    p_check.add_argument("--data-root", help="data folder (default $JMEDLLM_DATA_ROOT)")
    p_check.add_argument("--benchmark", "-b", action="append", metavar="SPEC",
                         help="benchmark spec, e.g. igakuqa or igakuqa-en:2022 (repeatable; default: all)")
    p_check.add_argument("--show", type=int, default=10, metavar="N",
                         help="list at most N ids / lines per problem (default 10, 0 for all)")
    p_check.add_argument("--allow-outside-paths", action="store_true",
                         help="let a custom mapping name files outside its own folder")


def run(args: argparse.Namespace) -> int:
    from jmedllm.cli import UserError
    from jmedllm.paths import DataRootError, resolve_data_root

    if args.data_command == "list":
        root = None
        if args.data_root or os.environ.get("JMEDLLM_DATA_ROOT"):
            try:
                root = resolve_data_root(args.data_root)
            except DataRootError as exc:
                raise UserError(str(exc)) from None
        print_list(root, sys.stdout)
        return 0
    from jmedllm.benchmarks.registry import BenchmarkSpecError, list_benchmarks, parse_spec

    specs = args.benchmark or list(list_benchmarks())
    names = []
    for spec in specs:
        try:
            names.append(parse_spec(spec)[0])
        except BenchmarkSpecError as exc:
            raise UserError(str(exc)) from None
    root = None
    if any(name != "custom" for name in names):  # custom: mappings need no data root
        try:
            root = resolve_data_root(args.data_root)
        except DataRootError as exc:
            raise UserError(str(exc)) from None
    return print_check(specs, root, sys.stdout, show=args.show, allow_outside_paths=args.allow_outside_paths)


def print_list(data_root: Any, out: TextIO) -> None:
    """One line per benchmark: name, language, [question count], selectors, description."""
    from jmedllm.benchmarks.registry import CUSTOM_DESCRIPTION, list_benchmarks, load_benchmark

    rows = []
    for name, entry in list_benchmarks().items():
        count = ""
        if data_root is not None:
            try:
                count = str(len(load_benchmark(name, data_root)))
            except (ValueError, OSError) as exc:
                count = f"not loadable ({type(exc).__name__})"
        selectors = ",".join(entry.selectors) or "-"
        rows.append((name, entry.language, count, selectors, entry.description))
    rows.append(("custom:<mapping.yaml>", "-", "", "-", CUSTOM_DESCRIPTION))
    header = ("name", "lang", "questions" if data_root is not None else "", "selectors", "description")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths)) + "  " + row[4], file=out)


def print_check(specs: list[str], data_root: Any, out: TextIO, show: int = 10,
                allow_outside_paths: bool = False) -> int:
    """Check each spec, print its report, and return 1 if any problem is an error, else 0."""
    from jmedllm.benchmarks.check import check_spec

    failed = False
    for spec in specs:
        report = check_spec(spec, data_root, allow_outside_paths=allow_outside_paths)
        failed |= report.has_errors
        print(f"== {spec}", file=out)
        s = report.summary
        if s is not None:
            print(f"  questions: {s['questions']} ({s['language']}), files read: {s['files']}", file=out)
            print(f"  per split: {_fmt(s['by_split'])}; per language: {_fmt(s['by_language'])}", file=out)
            print(f"  per number of gold answers: {_fmt(s['by_n_answers'])}; numeric-answer items: {s['numeric']}",
                  file=out)
            print(f"  per number of choices: {_fmt(s['by_n_choices'])}", file=out)
            print(f"  text-only: {s['text_only']} (per number of choices: {_fmt(s['text_only_by_n_choices'])})",
                  file=out)
            for exam, sections in s.get("section_points", {}).items():
                print(f"  exam {exam} points per section: {_fmt(sections)}", file=out)
            if set(s.get("by_selection", {})) - {"n"}:
                print(f"  per kind of answer (n: pick n_select, all: select all, order: ordering): "
                      f"{_fmt(s['by_selection'])}", file=out)
            if s.get("excluded"):
                print(f"  excluded (not scored): {s['excluded']}", file=out)
        for problem in report.problems:
            print(f"  {problem.severity.upper()}: {problem.message}", file=out)
            listed = problem.details if show == 0 else problem.details[:show]
            for detail in listed:
                print(f"    {detail}", file=out)
            if len(listed) < len(problem.details):
                print(f"    … and {len(problem.details) - len(listed)} more (--show 0 lists all)", file=out)
        if not report.problems:
            print("  no problems found", file=out)
    print("errors found" if failed else "no errors", file=out)
    return 1 if failed else 0


def _fmt(counts: dict[Any, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counts.items()) or "-"
