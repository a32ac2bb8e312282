"""Benchmarks: one loader per source format, a registry of names, filters and data checks.

    from jmedllm.benchmarks import load_benchmark
    bench = load_benchmark("igakuqa:2022", data_root)   # -> Benchmark(questions=(Question, ...), files=...)

See :mod:`jmedllm.benchmarks.registry` for the spec syntax and the list of names.
"""

from jmedllm.benchmarks.parsing import LoaderError
from jmedllm.benchmarks.record import Benchmark, Filters
from jmedllm.benchmarks.registry import (
    BENCHMARKS,
    BenchmarkSpecError,
    benchmark_names,
    list_benchmarks,
    load_benchmark,
    parse_spec,
)

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "BenchmarkSpecError",
    "Filters",
    "LoaderError",
    "benchmark_names",
    "list_benchmarks",
    "load_benchmark",
    "parse_spec",
]
