"""Benchmark: loading every registered benchmark from the data root (parsing, validation, hashing).

Each run loads every benchmark once, in a fresh interpreter (``--fresh``, the default: what a
user's ``jmedllm eval`` pays at start-up, nothing cached) or in this process. Reports wall and
process CPU seconds per run, their median, and the questions loaded per benchmark.
The target (was a timed test until issue 14's CI showed 2.003 s against its 2.0 s bound on
a machine whose own speed drifts by more than that margin): under 2 s of CPU for everything.

    JMEDLLM_DATA_ROOT=../shared/data .venv/bin/python bench/bench_loading.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from jmedllm.benchmarks import list_benchmarks, load_benchmark
from jmedllm.paths import resolve_data_root


def load_all(data_root: str) -> dict:
    """Load every benchmark once; wall and CPU seconds and the question counts."""
    wall, cpu = time.perf_counter(), time.process_time()
    counts = {name: len(load_benchmark(name, data_root)) for name in list_benchmarks()}
    return {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu, "counts": counts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--in-process", action="store_true",
                        help="load in this process, one run after another (the OS file cache stays warm either way)")
    parser.add_argument("--one-run", action="store_true", help=argparse.SUPPRESS)  # a fresh interpreter's run
    args = parser.parse_args()
    data_root = str(resolve_data_root(args.data_root))
    if args.one_run:
        print(json.dumps(load_all(data_root)))
        return
    runs = []
    for _ in range(args.repeats):
        if args.in_process:
            runs.append(load_all(data_root))
        else:
            out = subprocess.run([sys.executable, __file__, "--one-run", "--data-root", data_root],
                                 check=True, capture_output=True, text=True).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{'in process' if args.in_process else 'fresh interpreter per run'}; load average after: {load}")
    print("| run | wall s | CPU s |")
    print("|---|---|---|")
    for i, run in enumerate(runs, 1):
        print(f"| {i} | {run['wall_s']:.2f} | {run['cpu_s']:.2f} |")
    print(f"| median | {statistics.median(r['wall_s'] for r in runs):.2f} | "
          f"{statistics.median(r['cpu_s'] for r in runs):.2f} |")
    counts = runs[-1]["counts"]
    print(f"\n{sum(counts.values())} questions: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
