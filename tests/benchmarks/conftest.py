"""Fixture for the benchmark tests: real benchmarks loaded once per session."""

from __future__ import annotations

from typing import Callable

import pytest

from jmedllm.benchmarks import Benchmark, load_benchmark


@pytest.fixture(scope="session")
def bench(data_root) -> Callable[[str], Benchmark]:
    """``bench("igakuqa")`` loads a spec from the shared data once per session."""
    cache: dict[str, Benchmark] = {}

    def get(spec: str) -> Benchmark:
        if spec not in cache:
            cache[spec] = load_benchmark(spec, data_root)
        return cache[spec]

    return get
