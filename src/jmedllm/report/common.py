"""Small helpers shared by the report's computations: item groups, seeds, intervals."""

from __future__ import annotations

from typing import Any, Sequence

from jmedllm.report.collect import RunData
from jmedllm.scoring.aggregate import _seed_for
from jmedllm.scoring.stats import bootstrap_mean_ci


def group_of(record: dict[str, Any]) -> str:
    """'benchmark/language' without a benchmark's subset (igakuqa-en:2022 -> igakuqa-en/en)."""
    return f"{record['benchmark'].split(':')[0]}/{record['language']}"


def base_benchmark(group: str) -> str:
    """The benchmark an English translation belongs to: igakuqa-en/en -> igakuqa."""
    name = group.split("/")[0]
    return name[:-3] if name.endswith("-en") else name


def _settings(run: RunData) -> tuple[int, int]:
    return int(run.summary.get("seed", run.resolved.get("seed") or 0)), int(run.summary.get("n_resamples", 2000))


def _ci(values: Sequence[float], seed: int, n_resamples: int, *names: str) -> dict[str, Any] | None:
    if not values:
        return None
    ci = bootstrap_mean_ci(values, n_resamples=n_resamples, seed=_seed_for(seed, *names))
    return {"mean": ci.estimate, "low": ci.low, "high": ci.high, "n": ci.n}


def _correct(record: dict[str, Any]) -> float:
    return 1.0 if record["verdict"]["correct"] else 0.0
