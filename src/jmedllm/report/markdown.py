"""The Markdown twin of the HTML report: the same tables, the same numbers (report.fmt)."""

from __future__ import annotations

from typing import Any, Sequence

from jmedllm.report import fmt


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    def cell(x: Any) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    return ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(cell(c) for c in row) + " |" for row in rows)]


def leaderboard_rows(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["run", "benchmark/language", "items", "unparsed", "accuracy % [95 % CI]"]
    rows = [[r["run"], r["group"], str(r["n"]), str(r["unparsed"]), fmt.ci(r["accuracy"])] for r in data["leaderboard"]]
    return header, rows


def exam_rows(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["run", "exam (year)", "lang", "items", "必修 points [CI] / max", "必修 margin",
              "一般+臨床 points [CI] / max", "一般+臨床 margin", "禁忌肢", "verdict"]
    rows = []
    for e in data["exams"]:
        h, g = e["sections"]["hisshu"], e["sections"]["ippan_rinsho"]
        year = f" ({e['year']})" if e["year"] else ""
        rows.append([e["run"], f"{e['exam']}{year}", e["language"], str(e["n"]), fmt.points(h), fmt.margin(h),
                     fmt.points(g), fmt.margin(g), fmt.kinki(e), fmt.verdict(e)])
    return header, rows


def pair_rows(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["A", "B", "why", "items", "A %", "B %", "B − A [95 % CI]", "reading", "bootstrap p",
              "McNemar A✓B✗ / A✗B✓", "McNemar p"]
    rows = [[r["a"], r["b"], r["why"] + ("" if r["group"] == "all" else f" · {r['group']}"), str(r["n"]),
             fmt.pct(r["mean_a"]), fmt.pct(r["mean_b"]), fmt.diff(r), fmt.direction(r), fmt.p(r["bootstrap_p"]),
             f"{r['mcnemar_b']} / {r['mcnemar_c']}", fmt.p(r["mcnemar_p"])] for r in data["pairs"]]
    return header, rows


def breakdown_table(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Rows: value (with benchmark/language); columns: runs."""
    runs = list(dict.fromkeys(r["run"] for r in rows))
    keys = list(dict.fromkeys((r["group"], r["key"]) for r in rows))
    by = {(r["run"], r["group"], r["key"]): r["accuracy"] for r in rows}
    header = ["benchmark/language", "value"] + runs
    body = [[g, k] + [fmt.ci(by.get((run, g, k))) for run in runs] for g, k in keys]
    return header, body


def calibration_rows(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["run", "items", "mean confidence %", "accuracy %", "ECE"]
    rows = [[c["run"], str(c["n"]), fmt.pct(c["mean_confidence"]), fmt.pct(c["accuracy"]), f"{c['ece']:.3f}"]
            for c in data["calibration"]]
    return header, rows


def position_rows(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["run", "items", "chosen (a b c …)", "gold (a b c …)", "most chosen", "bias (TV distance)"]
    rows = [[p["run"], str(p["n"]), " ".join(map(str, p["predicted"])), " ".join(map(str, p["gold"])),
             f"{p['most_chosen']} ({fmt.pct(p['most_chosen_share'])} %)", f"{p['total_variation']:.3f}"]
            for p in data["positions"]]
    return header, rows


def method_rows(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    methods = sorted({m for r in data["methods"] for m in r["methods"]})
    header = ["run", "items", "unparsed"] + methods
    rows = [[r["run"], str(r["n"]), str(r["unparsed"])] + [str(r["methods"].get(m, 0)) for m in methods]
            for r in data["methods"]]
    return header, rows


def form_rows(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    from jmedllm.scoring.form import FORMS

    header = ["run", "benchmark/language", "items", "well-formed %"] + list(FORMS)
    rows = [[f["run"], f["group"], str(f["n"]), fmt.pct(f["well_formed"])] + [str(f["forms"][k]) for k in FORMS]
            for f in data["forms"]]
    return header, rows


def step_rows(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["training", "benchmark/language", "step", "run", "accuracy % [95 % CI]"]
    rows = [[s["training"], s["group"], str(p["step"]), p["run"], fmt.ci(p)] for s in data["steps"] for p in s["points"]]
    return header, rows


def run_rows(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["run", "model", "adapter", "mode", "prompt", "items", "step"]
    rows = [[r["label"], r["model"], r["adapter"] or "–", r["mode"], str(r["prompt"]), str(r["n"]), fmt.step(r["step"])]
            for r in data["runs"]]
    return header, rows


def training_rows(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["training folder", "stage", "logged steps", "first loss", "last loss", "last eval loss"]
    rows = []
    for t in data["training"]:
        loss = t["series"].get("loss", [])
        ev = t["series"].get("eval_loss", [])
        rows.append([t["label"], t["stage"], str(len(loss)), f"{loss[0][1]:.4f}" if loss else "–",
                     f"{loss[-1][1]:.4f}" if loss else "–", f"{ev[-1][1]:.4f}" if ev else "–"])
    return header, rows


SECTIONS = (
    ("Runs", run_rows),
    ("Leaderboard", leaderboard_rows),
    ("Exams (full-exam verdict)", exam_rows),
    ("Paired comparisons (same items)", pair_rows),
    ("Calibration (choice log-probabilities)", calibration_rows),
    ("Answer positions (single-answer items)", position_rows),
    ("How answers were found", method_rows),
    ("Answer form (generate mode)", form_rows),
    ("Score against training step", step_rows),
    ("Training", training_rows),
)


def report_markdown(data: dict[str, Any], title: str) -> str:
    out = [f"# {title}", "", "Values in %, with 95 % percentile bootstrap intervals.", ""]
    for name, build in SECTIONS:
        header, rows = build(data)
        if not rows:
            continue
        out += [f"## {name}", "", *_table(header, rows), ""]
    for dimension, rows in data["breakdowns"].items():
        header, body = breakdown_table(rows)
        out += [f"## By {dimension.replace('_', ' ')}", "", *_table(header, body), ""]
    if data["notes"]:
        out += ["## Notes", "", *(f"- {n}" for n in data["notes"]), ""]
    return "\n".join(out)
