"""Every number a report shows, computed once into one JSON-ready dict that both the HTML
page and its Markdown twin render (so the two cannot disagree).

Intervals are percentile bootstrap intervals from scoring.stats, seeded like the run's own
summary (``SeedSequence([seed, crc32(group name + metric)])``, the run's seed and number of
resamples): a run's accuracy per benchmark and language here is the number in its summary.json.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, Sequence

from jmedllm.report.collect import Collected, RunData
from jmedllm.report.common import _ci, _correct, _settings, base_benchmark, group_of
from jmedllm.report.pairs import default_pairs, paired
from jmedllm.report.fmt import SECTION_NAMES
from jmedllm.schema import Question
from jmedllm.scoring import exam as exam_rules
from jmedllm.scoring.form import answer_form, form_counts
from jmedllm.scoring.calibration import choice_confidence, expected_calibration_error, position_bias, reliability

BREAKDOWNS = ("year", "section", "category", "n_select", "text_only")
N_BINS = 10


def dimension_value(q: Question | None, dimension: str) -> str | None:
    if q is None:
        return None
    meta = q.meta
    if dimension == "year":
        year = meta.get("year")
        return None if year in (None, "") else str(year)
    if dimension == "section":
        if meta.get("exam") in exam_rules.PASS_LINES and ("section" in meta or "block" in meta):
            section = exam_rules.section_of(q)
            return SECTION_NAMES.get(section, section)
        section = meta.get("section")
        return None if section in (None, "") else str(section)
    if dimension == "category":
        category = meta.get("category")
        return None if category in (None, "") else str(category)
    if dimension == "n_select":
        return {"all": "all that apply", "order": "ordering"}.get(q.selection, str(q.n_select))
    if dimension == "text_only":
        with_images = bool(q.images) or meta.get("text_only") is False
        return "with images" if with_images else "text only"
    raise ValueError(f"unknown dimension {dimension!r}")


# ---------------------------------------------------------------------------
# per-run tables
# ---------------------------------------------------------------------------

def leaderboard(runs: Sequence[RunData]) -> list[dict[str, Any]]:
    rows = []
    for run in runs:
        seed, b = _settings(run)
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for rec in run.records.values():
            groups[group_of(rec)].append(rec)
        for group in sorted(groups):
            recs = groups[group]
            rows.append({
                "run": run.label, "group": group, "n": len(recs),
                "unparsed": sum(not r["verdict"]["parsed"] for r in recs),
                "accuracy": _ci([_correct(r) for r in recs], seed, b, f"benchmark_language={group}", "accuracy"),
            })
    return rows


def exams(runs: Sequence[RunData]) -> list[dict[str, Any]]:
    out = []
    for run in runs:
        years = {q.meta.get("exam"): q.meta.get("year") for q in run.questions.values() if q.meta.get("exam")}
        for e in run.summary.get("exams", []):
            sections = {}
            for s in exam_rules.SECTIONS:
                sec = e[s]
                ci = sec.get("points_ci")
                sections[s] = {"points": sec["points"], "max": sec["official_max"], "line": sec["line"],
                               "margin": sec["margin"], "low": ci["low"] if ci else None,
                               "high": ci["high"] if ci else None}
            out.append({"run": run.label, "exam": e["exam"], "year": years.get(e["exam"]), "language": e["language"],
                        "benchmark": e["benchmark"], "n": e["n_items"], "sections": sections,
                        "kinki": e["kinki_count"] if e.get("kinki_checked") else None, "kinki_max": e.get("kinki_max"),
                        "passed": bool(e["passed"]), "complete": bool(e["complete"])})
    return out


def breakdowns(runs: Sequence[RunData]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    values_of: dict[int, tuple[str | None, ...]] = {}  # id(question) -> its value per dimension (shared by runs)

    def dims_of(q: Question | None) -> tuple[str | None, ...]:
        if q is None:
            return (None,) * len(BREAKDOWNS)
        v = values_of.get(id(q))
        if v is None:
            v = values_of[id(q)] = tuple(dimension_value(q, d) for d in BREAKDOWNS)
        return v

    for d, dimension in enumerate(BREAKDOWNS):
        rows = []
        for run in runs:
            seed, b = _settings(run)
            groups: dict[tuple[str, str], list[float]] = defaultdict(list)
            for key, rec in run.records.items():
                value = dims_of(run.questions.get(key))[d]
                if value is not None:
                    groups[(group_of(rec), value)].append(_correct(rec))
            for (group, value), values in sorted(groups.items()):
                rows.append({"run": run.label, "group": group, "key": value,
                             "accuracy": _ci(values, seed, b, f"{group}|{dimension}={value}", "accuracy")})
        # a dimension with one value everywhere tells nothing
        if len({r["key"] for r in rows}) > 1:
            out[dimension] = rows
    return out


# ---------------------------------------------------------------------------
# plots' data
# ---------------------------------------------------------------------------

def calibration(runs: Sequence[RunData]) -> list[dict[str, Any]]:
    """Reliability bins and ECE of runs with choice log-probabilities (single-answer items)."""
    out = []
    for run in runs:
        conf, ok = [], []
        for key, rec in run.records.items():
            scores = rec.get("scores")
            q = run.questions.get(key)
            single = len(q.answer) == 1 and q.selection == "n" if q else len(rec["verdict"].get("predicted", [])) == 1
            if not scores or not single:
                continue
            _, p = choice_confidence([[s["logprob"] for s in g] for g in scores])
            conf.append(p)
            ok.append(bool(rec["verdict"]["correct"]))
        if not conf:
            continue
        bins = reliability(conf, ok, N_BINS)
        out.append({"run": run.label, "n": len(conf), "ece": expected_calibration_error(conf, ok, N_BINS),
                    "mean_confidence": sum(conf) / len(conf), "accuracy": sum(ok) / len(ok),
                    "bins": [{"low": x.low, "high": x.high, "n": x.n, "confidence": x.confidence,
                              "accuracy": x.accuracy} for x in bins]})
    return out


def positions(runs: Sequence[RunData]) -> list[dict[str, Any]]:
    """Chosen vs gold answer positions on single-answer items the run answered with one choice."""
    out = []
    for run in runs:
        pred, gold, width = [], [], 0
        for key, rec in run.records.items():
            q = run.questions.get(key)
            chosen = rec["verdict"].get("predicted") or []
            if q is None or len(q.answer) != 1 or q.selection != "n" or len(chosen) != 1:
                continue
            pred.append(int(chosen[0]))
            gold.append(next(iter(q.answer)))
            width = max(width, len(q.choices))
        if not pred:
            continue
        pb = position_bias(pred, gold, width)
        out.append({"run": run.label, "n": len(pred), "letters": pb.letters, "predicted": list(pb.predicted),
                    "gold": list(pb.gold), "total_variation": pb.total_variation, "most_chosen": pb.most_chosen,
                    "most_chosen_share": pb.most_chosen_share})
    return out


def answer_methods(runs: Sequence[RunData]) -> list[dict[str, Any]]:
    """How each answer was found (extraction step), and how many were not found at all."""
    out = []
    for run in runs:
        methods = Counter(r["verdict"].get("method", "?") for r in run.records.values())
        out.append({"run": run.label, "n": len(run.records), "unparsed": sum(not r["verdict"]["parsed"]
                                                                           for r in run.records.values()),
                    "methods": dict(sorted(methods.items()))})
    return out


def answer_forms(runs: Sequence[RunData]) -> list[dict[str, Any]]:
    """Generate-mode runs: how many answers were well-formed (scoring.form), per benchmark/language."""
    out = []
    for run in runs:
        groups: dict[str, list[str]] = defaultdict(list)
        for key, rec in run.records.items():
            q = run.questions.get(key)
            if q is None or "output" not in rec or q.is_numeric:
                continue
            v = rec["verdict"]
            groups[group_of(rec)].append(answer_form(q, rec["output"], v.get("predicted") or [], bool(v["parsed"])))
        for group, forms in sorted(groups.items()):
            counts = form_counts(forms)
            out.append({"run": run.label, "group": group, "n": len(forms), "step": run.step, "forms": counts,
                        "well_formed": counts["well-formed"] / len(forms)})
    return out


def step_series(runs: Sequence[RunData]) -> list[dict[str, Any]]:
    """Accuracy against training step, one series per training folder and benchmark/language."""
    lb = {(row["run"], row["group"]): row for row in leaderboard([r for r in runs if r.step is not None])}
    series: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        if run.step is None:
            continue
        for (label, group), row in lb.items():
            if label == run.label and row["accuracy"]:
                series[(str(run.training.get("output_dir", "")), group)].append(
                    {"step": run.step, "run": run.label, **row["accuracy"]})
    return [{"training": t, "group": g, "points": sorted(p, key=lambda x: x["step"])}
            for (t, g), p in sorted(series.items())]


def language_scatter(board: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One point per run and benchmark holding both languages: ja accuracy vs en accuracy."""
    by: dict[tuple[str, str], dict[str, Any]] = defaultdict(dict)
    for row in board:
        lang = row["group"].split("/")[1]
        if lang in ("ja", "en") and row["accuracy"]:
            by[(row["run"], base_benchmark(row["group"]))][lang] = row["accuracy"]
    return [{"run": run, "benchmark": bench, "ja": v["ja"], "en": v["en"]}
            for (run, bench), v in sorted(by.items()) if "ja" in v and "en" in v]


def training_curves(collected: Collected) -> list[dict[str, Any]]:
    keys = ("loss", "eval_loss", "learning_rate", "grad_norm", "tokens_per_second", "memory_gb")
    out = []
    for t in collected.trainings:
        series: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for entry in t.history:
            step = entry.get("step")
            if step is None:
                continue
            for k in keys:
                if isinstance(entry.get(k), (int, float)):
                    series[k].append((float(step), float(entry[k])))
        out.append({"label": t.label, "stage": t.stage, "path": str(t.path),
                    "series": {k: v for k, v in series.items() if v}})
    return out


def analyse(collected: Collected, pairs: Sequence[tuple[str, str, str]] | None = None) -> dict[str, Any]:
    runs = collected.runs
    board = leaderboard(runs)
    chosen = list(pairs) if pairs is not None else default_pairs(runs)
    return {
        "runs": [{"label": r.label, "path": str(r.path), "model": r.model, "adapter": r.adapter, "mode": r.mode,
                  "prompt": r.resolved.get("prompt"), "n": len(r.records), "step": r.step} for r in runs],
        "leaderboard": board,
        "exams": exams(runs),
        "breakdowns": breakdowns(runs),
        "pairs": paired(runs, chosen),
        "calibration": calibration(runs),
        "positions": positions(runs),
        "methods": answer_methods(runs),
        "forms": answer_forms(runs),
        "steps": step_series(runs),
        "scatter": language_scatter(board),
        "training": training_curves(collected),
        "notes": list(collected.notes),
    }
