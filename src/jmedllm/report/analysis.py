"""Every number a report shows, computed once into one JSON-ready dict that both the HTML
page and its Markdown twin render (so the two cannot disagree).

Intervals are percentile bootstrap intervals from scoring.stats, seeded like the run's own
summary (``SeedSequence([seed, crc32(group name + metric)])``, the run's seed and number of
resamples): a run's accuracy per benchmark and language here is the number in its summary.json.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, Iterable, Sequence

from jmedllm.report.collect import Collected, RunData
from jmedllm.report.fmt import SECTION_NAMES
from jmedllm.schema import LETTERS, Question
from jmedllm.scoring import exam as exam_rules
from jmedllm.scoring.aggregate import _seed_for
from jmedllm.scoring.form import answer_form, form_counts
from jmedllm.scoring.calibration import choice_confidence, expected_calibration_error, position_bias, reliability
from jmedllm.scoring.stats import bootstrap_mean_ci, mcnemar, paired_bootstrap

BREAKDOWNS = ("year", "section", "category", "n_select", "text_only")
N_BINS = 10


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

    def values(q: Question | None) -> tuple[str | None, ...]:
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
                value = values(run.questions.get(key))[d]
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
# paired comparisons
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# the item explorer
# ---------------------------------------------------------------------------

def _letters(indices: Iterable[int]) -> str:
    return "".join(LETTERS[i] for i in sorted(indices) if 0 <= i < len(LETTERS))


def explorer(runs: Sequence[RunData]) -> dict[str, Any]:
    """Compact item data: static facts once per item, each run's answer per item, prompts and
    outputs de-duplicated through a string table."""
    strings: list[str] = []
    index: dict[str, int] = {}

    def s(text: str | None) -> int:
        if text is None:
            return -1
        if text not in index:
            index[text] = len(strings)
            strings.append(text)
        return index[text]

    keys: list[str] = []
    seen: set[str] = set()
    for run in runs:
        for k in run.records:
            if k not in seen:
                seen.add(k)
                keys.append(k)
    position = {k: i for i, k in enumerate(keys)}
    items = []
    for k in keys:
        rec = next(r.records[k] for r in runs if k in r.records)
        q = next((r.questions[k] for r in runs if k in r.questions), None)
        meta = q.meta if q else {}
        kinki = meta.get("kinki") or ()
        items.append({
            "k": k, "g": group_of(rec), "y": str(meta.get("year", "")), "c": str(meta.get("category", "") or ""),
            "gold": (_letters(q.answer) if q and not q.is_numeric else (q.numeric_answer if q else "")) or "",
            "f": _letters(kinki) if kinki else "",
            "ch": [s(c) for c in q.choices] if q else [],
        })
    results = []
    for run in runs:
        rows = []
        for k, rec in run.records.items():
            v = rec["verdict"]
            q = run.questions.get(k)
            if rec.get("scores"):
                out_text = "\n".join(LETTERS[i] + ": " + ", ".join("%.3f" % sc["logprob"] for sc in g)
                                     for i, g in enumerate(rec["scores"]))
            else:
                out_text = rec.get("output")
            verdict = "unparsed" if not v["parsed"] else ("correct" if v["correct"] else "wrong")
            shown_gold = _letters(q.answer) if q and not q.is_numeric else None
            rows.append([position[k], v.get("predicted_letters") or v.get("numeric_predicted") or "", v.get("method", ""),
                         verdict, s(rec.get("prompt")), s(out_text), s(v.get("matched")),
                         shown_gold if shown_gold is not None and shown_gold != items[position[k]]["gold"] else None])
        results.append(rows)
    return {"items": items, "results": results, "strings": strings}


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
