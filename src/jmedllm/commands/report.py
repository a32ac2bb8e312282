"""`jmedllm report`: one self-contained HTML page (and a Markdown twin) over runs and training folders."""

from __future__ import annotations

import argparse

HELP = "HTML report over run directories and training folders: leaderboard, paired tests, plots, item explorer"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="RUN",
                   help="run directories, training output folders (curves + checkpoint evaluations), or folders of them")
    p.add_argument("--out", default="report.html", help="HTML file to write (the Markdown twin goes beside it, .md)")
    p.add_argument("--markdown", help="Markdown twin path (default: --out with .md)")
    p.add_argument("--label", action="append", help="a label per run directory, in order (default: folder names)")
    p.add_argument("--pair", action="append", default=[],
                   help="runs to compare on their common items, 'A,B' (labels or 1-based positions); "
                        "default: pairs chosen from what the runs share")
    p.add_argument("--data-root", help="where to read the benchmarks' questions (default: each run's own, "
                                       "then $JMEDLLM_DATA_ROOT)")
    p.add_argument("--title", default="jmedllm report")


def run(args: argparse.Namespace) -> int:
    from jmedllm.report.build import build_report

    written = build_report(args.paths, args.out, labels=args.label, pairs=args.pair, data_root=args.data_root,
                           title=args.title, markdown_out=args.markdown)
    print(f"report: {written.html} (Markdown: {written.markdown}); {written.n_runs} run(s), "
          f"{written.n_trainings} training folder(s)")
    return 0
