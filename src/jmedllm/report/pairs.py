"""Paired comparisons between runs on their common items (McNemar and paired bootstrap from
scoring.stats), and the default pairs: what the runs share decides what is worth comparing."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Sequence

from jmedllm.report.common import _correct, _settings, base_benchmark, group_of
from jmedllm.report.collect import RunData
from jmedllm.scoring.aggregate import _seed_for
from jmedllm.scoring.stats import mcnemar, paired_bootstrap


def _paired_numbers(a: list[float], b: list[float], seed: int, n_resamples: int, *names: str) -> dict[str, Any]:
    boot = paired_bootstrap(a, b, n_resamples=n_resamples, seed=_seed_for(seed, *names))
    mc = mcnemar([x > 0.5 for x in a], [y > 0.5 for y in b])
    return {"n": len(a), "mean_a": boot.mean_a, "mean_b": boot.mean_b, "diff": boot.difference, "low": boot.low,
            "high": boot.high, "bootstrap_p": boot.p_value, "mcnemar_b": mc.b, "mcnemar_c": mc.c,
            "mcnemar_p": mc.p_value}


def compare_runs(a: RunData, b: RunData, why: str) -> list[dict[str, Any]]:
    """a vs b on the items both answered, overall and per benchmark/language."""
    seed, n_res = _settings(a)
    common = sorted(a.records.keys() & b.records.keys())
    rows = []
    groups: dict[str, list[str]] = defaultdict(list)
    for k in common:
        groups[group_of(a.records[k])].append(k)
    scopes = ([("all", common)] if len(groups) > 1 else []) + sorted(groups.items())
    for group, keys in scopes:
        xs = [_correct(a.records[k]) for k in keys]
        ys = [_correct(b.records[k]) for k in keys]
        rows.append({"a": a.label, "b": b.label, "why": why, "group": group,
                     **_paired_numbers(xs, ys, seed, n_res, "pair", a.label, b.label, group)})
    return rows


def compare_languages(ja: RunData, en: RunData, why: str) -> list[dict[str, Any]]:
    """The same items in Japanese (run ``ja``) and English (run ``en``), matched by benchmark and id."""
    seed, n_res = _settings(ja)

    def index(run: RunData, language: str) -> dict[tuple[str, str], dict[str, Any]]:
        return {(base_benchmark(group_of(r)), str(r["id"])): r for r in run.records.values() if r["language"] == language}

    a, b = index(ja, "ja"), index(en, "en")
    rows = []
    for bench in sorted({k[0] for k in a.keys() & b.keys()}):
        keys = sorted(k for k in a.keys() & b.keys() if k[0] == bench)
        xs = [_correct(a[k]) for k in keys]
        ys = [_correct(b[k]) for k in keys]
        label_a = f"{ja.label} (ja)"
        label_b = f"{en.label} (en)"
        rows.append({"a": label_a, "b": label_b, "why": why, "group": f"{bench} ja→en",
                     **_paired_numbers(xs, ys, seed, n_res, "ja-en", ja.label, en.label, bench)})
    return rows


def _languages(run: RunData) -> set[str]:
    return {r["language"] for r in run.records.values()}


def _setup(run: RunData) -> tuple:
    r = run.resolved
    return (r.get("mode"), r.get("prompt"), r.get("shots"), r.get("shuffle"))


def default_pairs(runs: Sequence[RunData]) -> list[tuple[str, str, str]]:
    """(label a, label b, why): what the runs share decides what is worth comparing.

    - the same model with and without an adapter, or with different adapters (same mode and prompt);
    - the same items in Japanese and English (within a run holding both, or between two runs of
      the same model and adapter, one per language);
    - a training run's first and last evaluated checkpoints;
    - failing all of these, every run against the first.
    """
    pairs: list[tuple[str, str, str]] = []
    by_model: dict[tuple, list[RunData]] = defaultdict(list)
    for run in runs:
        if run.step is None:
            by_model[(run.model, _setup(run))].append(run)
    for (model, _), group in by_model.items():
        adapters = {r.adapter for r in group}
        if len(adapters) < 2:
            continue
        bare = [r for r in group if not r.adapter]
        first = bare[0] if bare else group[0]
        for r in group:
            if r is not first and r.adapter != first.adapter and (not bare or r.adapter):
                pairs.append((first.label, r.label, "same model, adapter added" if not first.adapter
                              else "same model, other adapter"))
    for run in runs:
        if {"ja", "en"} <= _languages(run):
            pairs.append((run.label, run.label, "same items, ja vs en"))
    singles = [r for r in runs if len(_languages(r)) == 1]
    for ja in singles:
        for en in singles:
            if _languages(ja) == {"ja"} and _languages(en) == {"en"} and (ja.model, ja.adapter, _setup(ja), ja.step) == (
                    en.model, en.adapter, _setup(en), en.step):
                pairs.append((ja.label, en.label, "same model, ja vs en"))
    series: dict[str, list[RunData]] = defaultdict(list)
    for run in runs:
        if run.step is not None:
            series[str(run.training.get("output_dir", ""))].append(run)
    for group in series.values():
        group.sort(key=lambda r: r.step)
        if len(group) > 1:
            pairs.append((group[0].label, group[-1].label, f"checkpoints, step {group[0].step} vs {group[-1].step}"))
    if not pairs and len(runs) > 1:
        pairs = [(runs[0].label, r.label, "against the first run") for r in runs[1:]]
    return pairs


def paired(runs: Sequence[RunData], pairs: Iterable[tuple[str, str, str]]) -> list[dict[str, Any]]:
    by_label = {r.label: r for r in runs}
    rows = []
    for a, b, why in pairs:
        ra, rb = by_label[a], by_label[b]
        if "ja vs en" in why:
            rows += compare_languages(ra, rb, why)
        else:
            rows += compare_runs(ra, rb, why)
    return rows
