"""Build a report: collect runs and training folders, compute, write the HTML page and its Markdown twin."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from jmedllm.errors import UserError
from jmedllm.report.analysis import analyse
from jmedllm.report.items import explorer
from jmedllm.report.collect import collect
from jmedllm.report.html import report_html
from jmedllm.report.markdown import report_markdown


@dataclass(frozen=True)
class Written:
    html: Path
    markdown: Path
    n_runs: int
    n_trainings: int


def parse_pairs(specs: Sequence[str], labels: Sequence[str]) -> list[tuple[str, str, str]]:
    """'A,B' (run labels, or 1-based positions) -> (A, B, 'asked for')."""
    out = []
    for spec in specs:
        parts = [p.strip() for p in spec.split(",")]
        if len(parts) != 2:
            raise UserError(f"--pair {spec!r}: expected two runs separated by a comma (labels or 1-based positions)")
        names = []
        for part in parts:
            if part in labels:
                names.append(part)
            elif part.isdigit() and 1 <= int(part) <= len(labels):
                names.append(labels[int(part) - 1])
            else:
                raise UserError(f"--pair {spec!r}: no run {part!r} (runs: {', '.join(labels)})")
        out.append((names[0], names[1], "asked for"))
    return out


def build_report(paths: Sequence[str | Path], out: str | Path, *, labels: Sequence[str] | None = None,
                 pairs: Sequence[str] = (), data_root: str | Path | None = None, title: str = "jmedllm report",
                 markdown_out: str | Path | None = None) -> Written:
    collected = collect(paths, labels, data_root)
    run_labels = [r.label for r in collected.runs]
    chosen = parse_pairs(pairs, run_labels) if pairs else None
    data = analyse(collected, chosen)
    html_path = Path(out)
    md_path = Path(markdown_out) if markdown_out else html_path.with_suffix(".md")
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(report_html(data, explorer(collected.runs), title), encoding="utf-8")
    md_path.write_text(report_markdown(data, title), encoding="utf-8")
    return Written(html_path, md_path, len(collected.runs), len(collected.trainings))
