"""Aggregate item verdicts into a run summary (a JSON-ready dict) and render it as Markdown.

``aggregate`` reports, overall and per benchmark / benchmark+language / language /
section / category / n_select / text_only: the number of items, the unparsed count,
and each metric's mean with a percentile bootstrap 95 % interval (over the items
where the metric applies). Where exam rules apply (built-in IgakuQA exams, or rules a
custom mapping declares) it adds one exam result per (benchmark, language, exam): points
per section against the maxima and lines, a bootstrap interval of the points,
forbidden-choice selections, pass/fail and the margin on each criterion. Exams present
without a verdict are listed in ``exams_without_verdict`` with the reason (no pass lines
known, no points in the source, part of the exam missing from the data root).

Deterministic given ``seed``: each (group, metric) draws from its own generator,
seeded by ``SeedSequence([seed, crc32(group name + metric)])``, and items are put in
(benchmark, language, id) order first, so a number depends neither on which other
groups exist nor on the order in which the items were given.
"""

from __future__ import annotations

import zlib
from collections import Counter, defaultdict
from typing import Any, Callable, Sequence

import numpy as np

from jmedllm.schema import Question
from jmedllm.scoring import exam as exam_rules
from jmedllm.scoring.exam_result import exam_result
from jmedllm.scoring.stats import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, bootstrap_mean_ci, exam_points_ci
from jmedllm.scoring.verdict import ItemVerdict

# metric name -> how to read it off a verdict (None = not applicable to that item)
METRICS: dict[str, Callable[[ItemVerdict], float | None]] = {
    "accuracy": lambda v: float(v.correct),
    "accuracy_norm": lambda v: None if v.correct_norm is None else float(v.correct_norm),
    "f1": lambda v: v.f1,
    "precision": lambda v: v.precision,
    "recall": lambda v: v.recall,
    "exact_match": lambda v: None if v.exact_match is None else float(v.exact_match),
    "gestalt": lambda v: v.gestalt,
    "gestalt_accuracy": lambda v: None if v.gestalt_correct is None else float(v.gestalt_correct),
    "kinki_rate": lambda v: None if v.kinki_selected is None else float(v.kinki_selected),
}
METRIC_LABELS = {
    "accuracy": "accuracy",
    "accuracy_norm": "accuracy (length-norm.)",
    "f1": "set F1",
    "precision": "set precision",
    "recall": "set recall",
    "exact_match": "exact match",
    "gestalt": "Gestalt score",
    "gestalt_accuracy": "Gestalt accuracy",
    "kinki_rate": "kinki selection rate",
}
DIMENSIONS = ("benchmark", "benchmark_language", "language", "section", "category", "n_select", "text_only")


def _seed_for(seed: int, *names: str) -> np.random.SeedSequence:
    return np.random.SeedSequence([seed, zlib.crc32("\x1f".join(names).encode("utf-8"))])


def _group_key(question: Question, dimension: str) -> str | None:
    meta = question.meta
    if dimension == "benchmark":
        return question.benchmark
    if dimension == "benchmark_language":
        return f"{question.benchmark}/{question.language}"
    if dimension == "language":
        return question.language
    if dimension == "section":
        if exam_rules.rules_for(question) is not None and ("section" in meta or "block" in meta):
            return exam_rules.section_of(question)  # checked: 必修 / 一般+臨床 from the block, or declared
        section = meta.get("section")  # other exams' own sections (YakugakuQA: hissu / riron / jissen)
        return str(section) if section not in (None, "") else None
    if dimension == "category":
        category = meta.get("category")
        return str(category) if category not in (None, "") else None
    if dimension == "n_select":
        return str(question.n_select)
    if dimension == "text_only":
        return None if meta.get("text_only") is None else str(bool(meta["text_only"])).lower()
    raise ValueError(f"unknown dimension {dimension!r}")


def summarize_group(
    verdicts: Sequence[ItemVerdict], name: str, *, seed: int, n_resamples: int, confidence: float
) -> dict[str, Any]:
    """n, unparsed count, methods used, and each applicable metric's mean with its interval."""
    metrics: dict[str, Any] = {}
    for metric, read in METRICS.items():
        values = [x for x in (read(v) for v in verdicts) if x is not None]
        if not values:
            continue
        ci = bootstrap_mean_ci(
            values, n_resamples=n_resamples, confidence=confidence, seed=_seed_for(seed, name, metric)
        )
        metrics[metric] = {"mean": ci.estimate, "low": ci.low, "high": ci.high, "n": ci.n}
    kinki = [v.kinki_selected for v in verdicts if v.kinki_selected is not None]
    return {
        "n": len(verdicts),
        "unparsed": sum(not v.parsed for v in verdicts),
        "kinki_selected": sum(kinki) if kinki else None,
        "methods": dict(sorted(Counter(v.method for v in verdicts).items())),
        "metrics": metrics,
    }


def _exam_summaries(
    items: Sequence[tuple[Question, ItemVerdict]], *, seed: int, n_resamples: int, confidence: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Exam verdicts, and the exams present without one (each with its reason)."""
    groups: dict[tuple[str, str, Any], list[tuple[Question, ItemVerdict]]] = defaultdict(list)
    without: dict[tuple[str, Any], str] = {}
    for q, v in items:
        exam = q.meta.get("exam")
        if exam_rules.is_exam_item(q):
            groups[(q.benchmark, q.language, exam_rules.exam_of(q))].append((q, v))
        elif exam_rules.exam_without_points(q) is not None:
            without[(q.benchmark, exam)] = "the source gives no points per item"
        elif exam_rules.exam_without_pass_lines(q) is not None:
            without[(q.benchmark, exam)] = f"no pass lines known for exam {exam}"
    out = []
    for (benchmark, language, exam), group in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        incomplete = next((q.meta["exam_incomplete"] for q, _ in group if q.meta.get("exam_incomplete")), None)
        if incomplete:
            without[(benchmark, exam)] = f"exam {exam}: {incomplete}; no verdict"
            continue
        result = exam_result(exam, group)
        entry: dict[str, Any] = {"benchmark": benchmark, "language": language, **result.to_dict()}
        for section in result.sections:
            name = section.section
            in_section = [(q, v) for q, v in group if exam_rules.section_of(q) == name]
            if not in_section:
                entry[name]["points_ci"] = None
                continue
            ci = exam_points_ci(
                [exam_rules.points_of(q) for q, _ in in_section],
                [v.correct for _, v in in_section],
                n_resamples=n_resamples,
                confidence=confidence,
                seed=_seed_for(seed, "exam", benchmark, language, str(exam), name),
            )
            entry[name]["points_ci"] = {"low": ci.low, "high": ci.high}
        out.append(entry)
    no_verdict = [{"benchmark": b, "exam": e, "reason": r}
                  for (b, e), r in sorted(without.items(), key=lambda kv: tuple(map(str, kv[0])))]
    return out, no_verdict


def aggregate(
    items: Sequence[tuple[Question, ItemVerdict]],
    seed: int = 0,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
) -> dict[str, Any]:
    """The run summary: overall, per dimension, and per exam (see the module docstring)."""
    if not items:
        raise ValueError("aggregate needs at least one scored item")
    seen: set[tuple[str, str, str]] = set()
    for q, v in items:
        if q.id != v.question_id:
            raise ValueError(f"verdict for {v.question_id!r} paired with question {q.id!r}")
        key = (q.benchmark, q.language, q.id)
        if key in seen:
            raise ValueError(f"item {q.benchmark}/{q.language}/{q.id} appears twice")
        seen.add(key)
    # A canonical order, so that the resamples (and the numbers) do not depend on input order.
    items = sorted(items, key=lambda qv: (qv[0].benchmark, qv[0].language, qv[0].id))
    kwargs = dict(seed=seed, n_resamples=n_resamples, confidence=confidence)
    verdicts = [v for _, v in items]
    by: dict[str, dict[str, Any]] = {}
    for dimension in DIMENSIONS:
        groups: dict[str, list[ItemVerdict]] = defaultdict(list)
        for q, v in items:
            key = _group_key(q, dimension)
            if key is not None:
                groups[key].append(v)
        if groups:
            by[dimension] = {
                key: summarize_group(groups[key], f"{dimension}={key}", **kwargs) for key in sorted(groups)
            }
    exams, no_verdict = _exam_summaries(items, **kwargs)
    return {
        "n_items": len(items),
        "seed": seed,
        "n_resamples": n_resamples,
        "confidence": confidence,
        "modes": dict(sorted(Counter(v.mode for v in verdicts).items())),
        "overall": summarize_group(verdicts, "overall", **kwargs),
        "by": by,
        "exams": exams,
        "exams_without_points": sorted({e for q, _ in items if (e := exam_rules.exam_without_points(q)) is not None}),
        "exams_without_verdict": no_verdict,
    }


# ---------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------

def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _cell(metric: dict[str, Any] | None) -> str:
    if metric is None:
        return "–"
    return f"{_pct(metric['mean'])} [{_pct(metric['low'])}, {_pct(metric['high'])}]"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _metric_order(groups: Sequence[dict[str, Any]]) -> list[str]:
    present = {m for g in groups for m in g["metrics"]}
    return [m for m in METRICS if m in present]


def summary_markdown(summary: dict[str, Any]) -> str:
    """Readable Markdown tables of an ``aggregate`` summary (percentages with 95 % intervals)."""
    conf = round(100 * summary["confidence"])
    overall = summary["overall"]
    out = [
        "# Summary",
        "",
        f"{summary['n_items']} items; modes: "
        + ", ".join(f"{k} {v}" for k, v in summary["modes"].items())
        + f"; unparsed: {overall['unparsed']}. Values in %, [{conf} % percentile bootstrap interval, "
        f"{summary['n_resamples']} resamples, seed {summary['seed']}].",
        "",
        "## Overall",
        "",
    ]
    rows = [[METRIC_LABELS[m], _cell(overall["metrics"][m]), overall["metrics"][m]["n"]]
            for m in _metric_order([overall])]
    out += _table(["metric", f"mean [{conf} % CI]", "n"], rows)
    for dimension, groups in summary["by"].items():
        metrics = _metric_order(list(groups.values()))
        out += ["", f"## By {dimension.replace('_', ' ')}", ""]
        header = [dimension, "n", "unparsed"] + [METRIC_LABELS[m] for m in metrics]
        rows = [[key, g["n"], g["unparsed"]] + [_cell(g["metrics"].get(m)) for m in metrics]
                for key, g in groups.items()]
        out += _table(header, rows)
    if summary.get("exams_without_verdict") or summary.get("exams_without_points"):
        out += ["", "## Exams without a verdict", ""]
        listed = summary.get("exams_without_verdict") or [
            {"benchmark": "-", "exam": e, "reason": "the source gives no points per item"}
            for e in summary.get("exams_without_points", [])]
        for e in listed:
            out.append(f"- exam {e['exam']} ({e['benchmark']}): {e['reason']} (accuracy above is per item).")
    if summary["exams"]:
        out += ["", "## Exams (full-exam verdict: items not in the run count as wrong)", ""]
        header = ["exam", "benchmark", "lang", "items", "section", "points [CI] / max", "line", "margin",
                  "禁忌肢", "verdict"]
        rows = []
        for e in summary["exams"]:
            verdict = "PASS" if e["passed"] else "FAIL"
            if not e["complete"]:
                verdict += " (partial run)"
            kinki = f"{e['kinki_count']} (max {e['kinki_max']})" if e["kinki_checked"] else "not checked"
            for k, name in enumerate(e.get("section_order", exam_rules.SECTIONS)):
                sec = e[name]
                ci = sec.get("points_ci")
                ci_text = f" [{ci['low']:.0f}, {ci['high']:.0f}]" if ci else ""
                subset = "" if sec["subset_max"] == sec["official_max"] else f" (run max {sec['subset_max']})"
                first = k == 0
                rows.append([e["exam"] if first else "", e["benchmark"] if first else "",
                             e["language"] if first else "", e["n_items"] if first else "",
                             sec.get("label") or name,
                             f"{sec['points']}{ci_text} / {sec['official_max']}{subset}", sec["line"],
                             f"{sec['margin']:+d}", kinki if first else "", verdict if first else ""])
        out += _table(header, rows)
    return "\n".join(out) + "\n"


__all__ = ["DIMENSIONS", "METRICS", "METRIC_LABELS", "aggregate", "summarize_group", "summary_markdown"]
