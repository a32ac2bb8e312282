"""One self-contained HTML page per report: tables, inline SVG plots, and an item explorer.

Nothing is fetched when the page is viewed: the style, the script (report/explorer.js, a few
dozen lines of plain JavaScript) and the item data (JSON in a <script type="application/json">)
are inlined. The tables are built by the same row builders as the Markdown twin.
"""

from __future__ import annotations

import json
from html import escape
from importlib import resources
from typing import Any, Callable, Sequence

from jmedllm.report import fmt, markdown, svg

CSS = """
body{font-family:system-ui,sans-serif;margin:1.5rem auto;max-width:1200px;padding:0 1rem;color:#222}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:.2rem .45rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.plots{display:flex;flex-wrap:wrap;gap:1rem}.plot{background:#fff;border:1px solid #eee}
.pass{color:#1a7f37;font-weight:bold}.fail{color:#c62828;font-weight:bold}
.better{color:#1a7f37}.worse{color:#c62828}
#explorer .controls{display:flex;flex-wrap:wrap;gap:.6rem;align-items:center;margin:.5rem 0}
#items tr{cursor:pointer}#items tr.correct td:nth-child(6){color:#1a7f37}
#items tr.wrong td:nth-child(6){color:#c62828}#items tr.unparsed td:nth-child(6){color:#a15c00}
#detail pre{white-space:pre-wrap;background:#f7f7f7;padding:.5rem;max-height:20rem;overflow:auto}
.note{color:#555;font-size:.85rem}nav a{margin-right:.8rem}
"""


def _cell(text: str, header: str) -> str:
    cls = ""
    if text.startswith("PASS"):
        cls = "pass"
    elif text.startswith("FAIL"):
        cls = "fail"
    elif header == "reading":
        cls = {"B better": "better", "A better": "worse"}.get(text, "")
    elif text[:1].isdigit() or text[:1] in "+-–<":
        cls = "num"
    return f'<td class="{cls}">{escape(text)}</td>' if cls else f"<td>{escape(text)}</td>"


def table(table_id: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(c, h) for c, h in zip(row, header)) + "</tr>" for row in rows)
    return f'<table id="{escape(table_id)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _section(sid: str, title: str, *parts: str) -> str:
    content = "".join(p for p in parts if p)
    return f'<section id="{sid}"><h2>{escape(title)}</h2>{content}</section>' if content else ""


def _tab(sid: str, build: Callable[[dict[str, Any]], tuple[list[str], list[list[str]]]], data: dict[str, Any]) -> str:
    header, rows = build(data)
    return table(f"table-{sid}", header, rows) if rows else ""


# ---------------------------------------------------------------------------
# plots
# ---------------------------------------------------------------------------

def category_plots(data: dict[str, Any]) -> list[str]:
    rows = data["breakdowns"].get("category", [])
    out = []
    for group in sorted({r["group"] for r in rows}):
        sub = [r for r in rows if r["group"] == group and r["accuracy"]]
        cats = sorted({r["key"] for r in sub})
        runs = list(dict.fromkeys(r["run"] for r in sub))
        values = {(r["key"], r["run"]): r["accuracy"] for r in sub}
        out.append(svg.dot_intervals(f"category-{group}", f"Accuracy by category · {group}", cats, runs, values))
    return out


def scatter_plots(data: dict[str, Any]) -> list[str]:
    out = []
    for bench in sorted({p["benchmark"] for p in data["scatter"]}):
        pts = [{"label": p["run"], "x": p["ja"], "y": p["en"]} for p in data["scatter"] if p["benchmark"] == bench]
        out.append(svg.scatter(f"ja-en-{bench}", f"Japanese vs English · {bench}", pts, "ja accuracy (%)",
                               "en accuracy (%)"))
    return out


def calibration_plots(data: dict[str, Any]) -> list[str]:
    return [svg.reliability_diagram(f"reliability-{c['run']}", c["run"], c["bins"], c["ece"], c["n"])
            for c in data["calibration"]]


def position_plots(data: dict[str, Any]) -> list[str]:
    out = []
    for p in data["positions"]:
        n = p["n"]
        out.append(svg.grouped_bars(f"positions-{p['run']}", f"Answer positions · {p['run']}", list(p["letters"]),
                                    [("chosen", [x / n for x in p["predicted"]]), ("gold", [x / n for x in p["gold"]])],
                                    "share of items"))
    return out


def method_plot(data: dict[str, Any]) -> list[str]:
    rows = data["methods"]
    if not rows:
        return []
    methods = sorted({m for r in rows for m in r["methods"]})
    series = [(r["run"], [r["methods"].get(m, 0) / max(1, r["n"]) for m in methods]) for r in rows]
    return [svg.grouped_bars("methods", "How answers were found (share of items; 'unparsed' = no answer)", methods,
                             series, "share")]


def step_plots(data: dict[str, Any]) -> list[str]:
    if not data["steps"]:
        return []
    series = [(f"{s['group']} · {s['training'].rstrip('/').split('/')[-1] or 'training'}",
               [{"x": p["step"], "y": p["mean"], "low": p["low"], "high": p["high"]} for p in s["points"]])
              for s in data["steps"]]
    plots = [svg.lines("steps", "Accuracy against training step (95 % band)", series, "step", "accuracy (%)",
                       percent=True, band=True)]
    forms: dict[str, list[dict[str, float]]] = {}
    for f in data["forms"]:
        if f["step"] is not None:
            forms.setdefault(f["group"], []).append({"x": f["step"], "y": f["well_formed"]})
    if forms:
        plots.append(svg.lines("steps-forms", "Well-formed answers against training step", sorted(forms.items()),
                               "step", "well-formed (%)", percent=True))
    return plots


def training_plots(data: dict[str, Any]) -> list[str]:
    out = []
    names = {"loss": "training loss", "eval_loss": "validation loss", "learning_rate": "learning rate",
             "grad_norm": "gradient norm", "tokens_per_second": "tokens / s", "memory_gb": "memory (GB)"}
    for key, title in names.items():
        series = [(f"{t['label']}", [{"x": x, "y": y} for x, y in t["series"][key]])
                  for t in data["training"] if key in t["series"]]
        if series:
            out.append(svg.lines(f"train-{key}", title, series, "step", title))
    return out


def _plots(parts: list[str]) -> str:
    parts = [p for p in parts if p]
    return '<div class="plots">' + "".join(parts) + "</div>" if parts else ""


# ---------------------------------------------------------------------------
# page
# ---------------------------------------------------------------------------

def _explorer(explorer: dict[str, Any], runs: Sequence[str]) -> str:
    options = "".join(f'<option value="{i}">{escape(r)}</option>' for i, r in enumerate(runs))
    cats = sorted({it["c"] for it in explorer["items"] if it["c"]})
    years = sorted({it["y"] for it in explorer["items"] if it["y"]})
    groups = sorted({it["g"] for it in explorer["items"]})

    def select(sid: str, label: str, values: Sequence[str]) -> str:
        opts = '<option value="">all</option>' + "".join(f'<option>{escape(v)}</option>' for v in values)
        return f'<label>{label} <select id="{sid}">{opts}</select></label>'

    script = resources.files("jmedllm.report").joinpath("explorer.js").read_text(encoding="utf-8")
    payload = json.dumps(explorer, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    return (
        '<section id="explorer"><h2>Item explorer</h2><div class="controls">'
        f'<label>run <select id="f-run">{options}</select></label>'
        + select("f-verdict", "verdict", ["correct", "wrong", "unparsed"])
        + select("f-group", "benchmark", groups) + select("f-category", "category", cats)
        + select("f-year", "year", years)
        + f'<label>disagrees with <select id="f-other"><option value="">–</option>{options}</select></label>'
        + '<span id="count"></span></div>'
        '<table id="items"><thead><tr><th>item</th><th>benchmark</th><th>year</th><th>category</th>'
        '<th>answer</th><th>verdict</th><th>gold</th><th>forbidden</th><th>how found</th></tr></thead>'
        '<tbody></tbody></table><div id="detail"></div>'
        f'<script type="application/json" id="explorer-data">{payload}</script>'
        f"<script>{script}</script></section>"
    )


def report_html(data: dict[str, Any], explorer: dict[str, Any], title: str) -> str:
    breakdown_parts = []
    for dimension, rows in data["breakdowns"].items():
        header, body = markdown.breakdown_table(rows)
        breakdown_parts.append(f"<h3>By {escape(dimension.replace('_', ' '))}</h3>"
                               + table(f"table-by-{dimension}", header, body))
    sections = [
        _section("runs", "Runs", _tab("runs", markdown.run_rows, data)),
        _section("leaderboard", "Leaderboard", '<p class="note">Accuracy in %, 95 % percentile bootstrap '
                 "interval.</p>", _tab("leaderboard", markdown.leaderboard_rows, data)),
        _section("exams", "Exams (full-exam verdict)", _tab("exams", markdown.exam_rows, data)),
        _section("pairs", "Paired comparisons (same items)", '<p class="note">B − A in percentage points; '
                 "McNemar exact test on the discordant items.</p>", _tab("pairs", markdown.pair_rows, data)),
        _section("breakdowns", "Breakdowns", _plots(category_plots(data)), *breakdown_parts),
        _section("languages", "Japanese vs English", _plots(scatter_plots(data))),
        _section("calibration", "Calibration (choice log-probabilities)", _plots(calibration_plots(data)),
                 _tab("calibration", markdown.calibration_rows, data)),
        _section("positions", "Answer positions and unparsed answers",
                 _plots(position_plots(data) + method_plot(data)), _tab("positions", markdown.position_rows, data),
                 _tab("methods", markdown.method_rows, data),
                 "<h3>Answer form (generate mode)</h3>" + _tab("forms", markdown.form_rows, data)
                 if data["forms"] else ""),
        _section("steps", "Score against training step", _plots(step_plots(data)), _tab("steps", markdown.step_rows, data)),
        _section("training", "Training", _plots(training_plots(data)), _tab("training", markdown.training_rows, data)),
    ]
    notes = "".join(f"<li>{escape(n)}</li>" for n in data["notes"])
    nav = "".join(f'<a href="#{sid}">{escape(name)}</a>' for sid, name, s in zip(
        ("runs", "leaderboard", "exams", "pairs", "breakdowns", "languages", "calibration", "positions", "steps",
         "training"),
        ("runs", "leaderboard", "exams", "pairs", "breakdowns", "ja/en", "calibration", "positions", "steps",
         "training"), sections) if s)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1><nav>{nav}<a href=\"#explorer\">items</a></nav>"
        + "".join(sections)
        + (f'<section id="notes"><h2>Notes</h2><ul>{notes}</ul></section>' if notes else "")
        + _explorer(explorer, [r["label"] for r in data["runs"]])
        + "</body></html>\n"
    )


__all__ = ["report_html", "table", "fmt"]
