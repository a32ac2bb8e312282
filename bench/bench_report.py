"""Benchmark: `jmedllm report` over 20 runs x 2,000 items (target: under 10 s).

The runs are real run directories written by the runner (evaluate.run_eval) on the 2,000
IgakuQA items of 2018-2022 (Japanese), loglik mode, with a seeded random-score engine in
place of a model (each run its own seed and its own bias towards one answer position), so
that the report has real prompts, real questions and varied verdicts. Writing the runs is
not timed (they are kept in --work and reused); building the report is: collecting the runs
and their questions, every interval and paired test, the plots, the HTML and the Markdown.
Wall time and the process's CPU time are both printed: on a shared machine the first
depends on the load (printed too), the second much less.

    JMEDLLM_DATA_ROOT=../shared/data .venv/bin/python bench/bench_report.py --runs 20
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

from jmedllm.evaluate import EvalConfig, run_eval
from jmedllm.schema import ContinuationScore


class RandomScores:
    """Seeded random log-likelihoods (a stand-in model that never loads weights)."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.favourite = seed % 5
        self.seed = seed

    def loglikelihoods(self, requests):
        out = []
        for req in requests:
            out.append([ContinuationScore(self.rng.gauss(-20, 3) + (2.0 if i == self.favourite else 0.0), 10, 10)
                        for i, _ in enumerate(req.continuations)])
        return out

    def describe(self):
        return {"engine": "random-scores", "seed": self.seed}


def make_runs(work: Path, n_runs: int, data_root: str | None) -> list[Path]:
    paths = []
    for i in range(n_runs):
        out = work / f"run-{i:02d}"
        if not (out / "summary.json").is_file():
            cfg = EvalConfig(model=f"random-{i}", benchmarks=["igakuqa"], out=str(out), data_root=data_root,
                             mode="loglik", seed=i, bootstrap=1000, chunk_size=500)
            run_eval(cfg, engine=RandomScores(i), argv=["bench_report"])
        paths.append(out)
    return paths


def main() -> None:
    from jmedllm.report.build import build_report

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--work", default="/tmp/jmedllm-bench-report")
    ap.add_argument("--data-root")
    args = ap.parse_args()
    work = Path(args.work)
    t = time.perf_counter()
    paths = make_runs(work, args.runs, args.data_root)
    print(f"{len(paths)} run directories ready in {time.perf_counter() - t:.1f} s (not part of the timing)")
    t, cpu = time.perf_counter(), time.process_time()
    written = build_report(paths, work / "report.html", data_root=args.data_root, title="bench_report")
    elapsed, cpu = time.perf_counter() - t, time.process_time() - cpu
    items = sum(1 for p in paths for _ in open(p / "items.jsonl", encoding="utf-8"))
    size = written.html.stat().st_size / 1e6
    load = os.getloadavg()[0]
    print(f"report over {written.n_runs} runs / {items} item records: {elapsed:.2f} s wall, {cpu:.2f} s CPU "
          f"(load average {load:.1f} on {os.cpu_count()} cores) "
          f"({written.html}, {size:.1f} MB; {written.markdown})")


if __name__ == "__main__":
    main()
