"""The HTML report in a real browser (headless Chromium): no console error, the tables, plots and
item rows are there, the filters change the visible rows, the Markdown twin holds the same
numbers, and with the network off the page renders completely."""

from __future__ import annotations

import re
import shutil

import pytest

from jmedllm.report.build import build_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
PLOTS = ("category-igakuqa/ja", "ja-en-igakuqa", "reliability-base", "positions-base", "methods", "steps",
         "train-loss")


def _browser():
    sync = pytest.importorskip("playwright.sync_api")
    if CHROMIUM is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium; scripts/bootstrap does it)")
    return sync.sync_playwright()


@pytest.fixture(scope="module")
def report(report_runs, data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    paths = [report_runs[k] for k in ("base", "cpt", "cpt+lora", "cpt+lora-generate", "sft-training")]
    return build_report(paths, out, data_root=data_root, title="test report")


def _md_tables(text: str) -> dict[str, list[list[str]]]:
    tables, title, rows = {}, None, []
    for line in text.splitlines() + [""]:
        if line.startswith("## "):
            title = line[3:]
        elif line.startswith("|"):
            if not line.startswith("|---"):
                cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
                rows.append(cells)
        elif rows:
            tables[title] = rows
            rows = []
    return tables


def test_report_in_chromium(report, tmp_path):
    errors: list[str] = []
    with _browser() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(report.html.resolve().as_uri())
        page.wait_for_selector("#items tbody tr")

        # tables and plots
        for table in ("runs", "leaderboard", "exams", "pairs", "calibration", "positions", "methods", "steps",
                      "training", "by-category"):
            assert page.locator(f"#table-{table} tbody tr").count() > 0, table
        leaderboard = page.locator("#table-leaderboard tbody tr").all_inner_texts()
        assert any("cpt+lora" in r and "igakuqa-en/en" in r for r in leaderboard)
        for plot in PLOTS:
            assert page.locator(f'svg[data-plot="{plot}"]').count() == 1, plot
            assert page.locator(f'svg[data-plot="{plot}"] .mark').count() > 0, plot
        pairs = page.locator("#table-pairs").inner_text()
        assert "same items, ja vs en" in pairs and "checkpoints, step 0 vs 2" in pairs

        # item explorer: rows, filters, disagreement, details
        def count() -> int:
            return page.locator("#items tbody tr").count()

        total = count()
        assert total == 12  # base: 6 Japanese + 6 English items
        shown = {}
        for verdict in ("correct", "wrong", "unparsed"):
            page.select_option("#f-verdict", verdict)
            shown[verdict] = count()
            assert all(c == verdict for c in page.locator("#items tbody tr td:nth-child(6)").all_inner_texts())
        assert sum(shown.values()) == total  # the verdict filter partitions the rows
        page.select_option("#f-verdict", "")
        page.select_option("#f-group", "igakuqa-en/en")
        assert count() == 6  # a filter changes the visible rows
        assert all(g == "igakuqa-en/en" for g in page.locator("#items tbody tr td:nth-child(2)").all_inner_texts())
        page.select_option("#f-group", "")
        page.select_option("#f-run", label="cpt+lora-generate")
        assert count() == 4
        page.select_option("#f-other", label="base")
        disagreeing = count()
        page.select_option("#f-other", "")
        assert disagreeing < 4 or shown["correct"] in (0, 12)
        page.locator("#items tbody tr").first.click()
        detail = page.locator("#detail").inner_text()
        assert "prompt" in detail and "raw output" in detail and "gold:" in detail
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        html_tables = {t: page.locator(f"#table-{t} tbody tr").evaluate_all(
            "rows => rows.map(r => Array.from(r.cells).map(c => c.textContent))")
            for t in ("leaderboard", "exams", "pairs", "calibration", "positions", "steps")}
        browser.close()
    assert errors == []
    assert (tmp_path / "report.png").stat().st_size > 10_000

    # the Markdown twin: the same rows, cell for cell
    md = _md_tables(report.markdown.read_text(encoding="utf-8"))
    titles = {"leaderboard": "Leaderboard", "exams": "Exams (full-exam verdict)",
              "pairs": "Paired comparisons (same items)", "calibration": "Calibration (choice log-probabilities)",
              "positions": "Answer positions (single-answer items)", "steps": "Score against training step"}
    for table, title in titles.items():
        assert md[title][1:] == html_tables[table], table


def test_report_renders_with_the_network_off(report, tmp_path):
    html = report.html.read_text(encoding="utf-8")
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", html)  # nothing to fetch
    requested: list[str] = []
    errors: list[str] = []
    with _browser() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        context = browser.new_context(offline=True)
        context.route("**/*", lambda route: (requested.append(route.request.url),
                                             route.continue_() if route.request.url.startswith("file:")
                                             else route.abort()))
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(report.html.resolve().as_uri())
        page.wait_for_selector("#items tbody tr")
        assert page.locator("svg.plot").count() >= len(PLOTS)
        assert page.locator("#items tbody tr").count() == 12
        assert page.evaluate("document.readyState") == "complete"
        page.screenshot(path=str(tmp_path / "offline.png"))
        browser.close()
    assert errors == []
    assert all(u.startswith("file:") for u in requested), requested
