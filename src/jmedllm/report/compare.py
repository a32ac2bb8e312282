"""Compare runs: which model, adapter or prompt is better, on the items they share.

For every run: the headline metrics with their 95 % intervals (from its summary.json).
For every run against the first (the baseline), on the items both answered: the paired
difference with a paired-bootstrap interval and p-value, and McNemar's exact test for
the all-or-nothing verdicts, overall and per benchmark/language group; and, for IgakuQA,
each exam's points and verdict side by side.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from jmedllm.runs import SUMMARY_JSON, RunDirError, load_run
from jmedllm.scoring.stats import mcnemar, paired_bootstrap

# metric -> ItemVerdict field holding the per-item value (bool or float; None = not applicable)
PAIRED_METRICS: dict[str, str] = {
    "accuracy": "correct",
    "accuracy_norm": "correct_norm",
    "exact_match": "exact_match",
    "gestalt": "gestalt",
    "gestalt_accuracy": "gestalt_correct",
    "f1": "f1",
}
BINARY = {"accuracy", "accuracy_norm", "exact_match", "gestalt_accuracy"}


@dataclass(frozen=True)
class LoadedRun:
    path: Path
    label: str
    summary: dict[str, Any]
    verdicts: dict[str, dict[str, Any]]  # item key -> stored verdict dict
    groups: dict[str, str]  # item key -> "benchmark/language"
    benchmarks: dict[str, str] | None = None  # item key -> the benchmark spec as run (custom:path/x.yaml)


def load_for_comparison(path: str | Path, label: str | None = None) -> LoadedRun:
    path = Path(path)
    config, records = load_run(path)
    summary_path = path / SUMMARY_JSON
    if not summary_path.exists():
        raise RunDirError(f"{path} has no {SUMMARY_JSON}: the run has not finished (re-run its command to resume)")
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    verdicts = {r["key"]: r["verdict"] for r in records}
    groups = {r["key"]: f"{r['benchmark'].split(':')[0]}/{r['language']}" for r in records}
    benchmarks = {r["key"]: r["benchmark"] for r in records}
    return LoadedRun(path, label or path.name, summary, verdicts, groups, benchmarks)


def is_general(spec: str, general: Sequence[str]) -> bool:
    """Whether a benchmark spec is one of the ``general`` names: the spec, its name before ':', or for a
    custom mapping the mapping file's name (``custom:maps/jmmlu-history.yaml`` -> ``jmmlu-history``)."""
    names = {spec, spec.split(":")[0]}
    if spec.startswith("custom:"):
        names.add(Path(spec[len("custom:"):].split(":")[0]).stem)
    return bool(names & set(general))


def _values(run: LoadedRun, keys: Sequence[str], field: str) -> list[float | None]:
    out = []
    for k in keys:
        v = run.verdicts[k].get(field)
        out.append(None if v is None else float(v))
    return out


def paired_comparison(base: LoadedRun, other: LoadedRun, metric: str, keys: Sequence[str], seed: int,
                      n_resamples: int) -> dict[str, Any] | None:
    field = PAIRED_METRICS[metric]
    a, b = _values(base, keys, field), _values(other, keys, field)
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    if not pairs:
        return None
    xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
    boot = paired_bootstrap(xs, ys, n_resamples=n_resamples, seed=seed)
    out: dict[str, Any] = {
        "n": len(pairs), "mean_base": boot.mean_a, "mean_other": boot.mean_b,
        "diff": boot.difference, "diff_low": boot.low, "diff_high": boot.high, "bootstrap_p": boot.p_value,
    }
    if metric in BINARY:
        mc = mcnemar([x > 0.5 for x in xs], [y > 0.5 for y in ys])
        out |= {"mcnemar_b": mc.b, "mcnemar_c": mc.c, "mcnemar_p": mc.p_value}
    return out


def compare(paths: Sequence[str | Path], labels: Sequence[str] | None = None, metrics: Sequence[str] = ("accuracy",),
            seed: int = 0, n_resamples: int = 5000, general: Sequence[str] = ()) -> dict[str, Any]:
    """Compare runs against the first one; returns a JSON-ready dict.

    ``general``: benchmark names that are general-domain (e.g. a custom mapping of JMMLU's
    non-medical subjects); each paired entry then also holds ``domains``: the paired difference on
    the medical items and on the general ones, so a medical gain is read beside the general change.
    """
    if len(paths) < 2:
        raise ValueError("compare needs at least two run directories (the first is the baseline)")
    unknown = [m for m in metrics if m not in PAIRED_METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; valid: {', '.join(PAIRED_METRICS)}")
    labels = list(labels) if labels else [None] * len(paths)
    runs = [load_for_comparison(p, lab) for p, lab in zip(paths, labels)]
    base = runs[0]
    result: dict[str, Any] = {"baseline": base.label, "runs": [], "paired": [], "exams": []}
    for run in runs:
        result["runs"].append({"label": run.label, "path": str(run.path), "n": run.summary["n_items"],
                               "overall": run.summary["overall"]["metrics"],
                               "by": run.summary["by"].get("benchmark_language", {})})
        for e in run.summary.get("exams", []):
            result["exams"].append({"label": run.label} | e)
    for other in runs[1:]:
        common = sorted(set(base.verdicts) & set(other.verdicts))
        entry: dict[str, Any] = {"label": other.label, "n_common": len(common), "overall": {}, "by": {}}
        for metric in metrics:
            entry["overall"][metric] = paired_comparison(base, other, metric, common, seed, n_resamples)
            for group in sorted({base.groups[k] for k in common}):
                keys = [k for k in common if base.groups[k] == group]
                entry["by"].setdefault(group, {})[metric] = paired_comparison(base, other, metric, keys, seed,
                                                                              n_resamples)
        if general:
            flags = {k: is_general((base.benchmarks or {}).get(k, base.groups[k].split("/")[0]), general)
                     for k in common}
            entry["domains"] = {
                domain: {metric: paired_comparison(base, other, metric, [k for k in common if flags[k] == flag],
                                                   seed, n_resamples) for metric in metrics}
                for domain, flag in (("medical", False), ("general", True))}
        result["paired"].append(entry)
    result["general"] = list(general)
    return result


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _ci(m: dict[str, Any] | None) -> str:
    if not m:
        return "–"
    return f"{_pct(m['mean'])} [{_pct(m['low'])}, {_pct(m['high'])}]"


def _p(p: float) -> str:
    return f"{p:.3g}" if p >= 0.001 else "<0.001"


def compare_markdown(result: dict[str, Any], metrics: Sequence[str] = ("accuracy",)) -> str:
    out = ["# Comparison", "", f"Baseline: **{result['baseline']}**. Values in %, 95 % intervals.", ""]
    groups = sorted({g for r in result["runs"] for g in r["by"]})
    header = ["run", "items"] + [f"{m} (all)" for m in metrics] + [f"{m} {g}" for g in groups for m in metrics]
    out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in result["runs"]:
        cells = [r["label"], str(r["n"])] + [_ci(r["overall"].get(m)) for m in metrics]
        cells += [_ci(r["by"].get(g, {}).get("metrics", {}).get(m)) for g in groups for m in metrics]
        out.append("| " + " | ".join(cells) + " |")
    out += ["", f"## Paired against {result['baseline']} (same items)", ""]
    header = ["run", "group", "metric", "n", "difference [95 % CI]", "bootstrap p", "McNemar b / c", "McNemar p"]
    out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for entry in result["paired"]:
        rows = [("all", entry["overall"])] + sorted(entry["by"].items())
        for group, per_metric in rows:
            for metric, c in per_metric.items():
                if c is None:
                    continue
                mc = (f"{c['mcnemar_b']} / {c['mcnemar_c']}", _p(c["mcnemar_p"])) if "mcnemar_p" in c else ("–", "–")
                out.append("| " + " | ".join([
                    entry["label"], group, metric, str(c["n"]),
                    f"{100 * c['diff']:+.1f} [{100 * c['diff_low']:+.1f}, {100 * c['diff_high']:+.1f}]",
                    _p(c["bootstrap_p"]), *mc]) + " |")
    if result.get("general"):
        out += ["", f"## Medical gain beside general change (general: {', '.join(result['general'])})", ""]
        header = ["run", "metric", "medical n", "medical difference [95 % CI]", "general n",
                  "general difference [95 % CI]"]
        out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

        def cell(c: dict[str, Any] | None) -> tuple[str, str]:
            if c is None:
                return "0", "–"
            return str(c["n"]), f"{100 * c['diff']:+.1f} [{100 * c['diff_low']:+.1f}, {100 * c['diff_high']:+.1f}]"

        for entry in result["paired"]:
            for metric in metrics:
                med = cell(entry["domains"]["medical"][metric])
                gen = cell(entry["domains"]["general"][metric])
                out.append("| " + " | ".join([entry["label"], metric, *med, *gen]) + " |")
    if result["exams"]:
        out += ["", "## Exams (full-exam verdict)", ""]
        header = ["run", "exam", "lang", "sections: points / max (line)", "禁忌肢", "verdict"]
        out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for e in result["exams"]:
            names = e.get("section_order") or ["hisshu", "ippan_rinsho"]
            sections = "; ".join(f"{e[n].get('label') or n} {e[n]['points']} / {e[n]['official_max']} "
                                 f"(line {e[n]['line']})" for n in names)
            kinki = str(e["kinki_count"]) if e.get("kinki_checked") else "not checked"
            out.append("| " + " | ".join([
                e["label"], str(e["exam"]), e["language"], sections, kinki,
                "PASS" if e["passed"] else "FAIL"]) + " |")
    return "\n".join(out) + "\n"
