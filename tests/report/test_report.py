"""`jmedllm report` without a browser: its numbers are the runs' own, pairs are chosen from what
runs share, the Markdown twin and the page come from one computation, bad input is a clear error."""

from __future__ import annotations

import json

import pytest

from jmedllm.cli import main
from jmedllm.report import fmt
from jmedllm.report.analysis import analyse, default_pairs
from jmedllm.report.collect import collect


@pytest.fixture(scope="module")
def collected(report_runs, data_root):
    return collect([report_runs[k] for k in ("base", "cpt", "cpt+lora", "cpt+lora-generate", "sft-training")],
                   data_root=data_root)


def test_leaderboard_numbers_are_the_runs_own(collected):
    data = analyse(collected)
    for run in collected.runs:
        summary = json.loads((run.path / "summary.json").read_text())
        for group, entry in summary["by"]["benchmark_language"].items():
            row = next(r for r in data["leaderboard"] if r["run"] == run.label and r["group"] == group)
            expected = entry["metrics"]["accuracy"]
            assert row["accuracy"] == pytest.approx({k: expected[k] for k in ("mean", "low", "high", "n")})
            assert row["unparsed"] == entry["unparsed"]


def test_default_pairs_follow_what_runs_share(collected):
    labels = [r.label for r in collected.runs]
    assert labels[:4] == ["base", "cpt", "cpt+lora", "cpt+lora-generate"]
    pairs = default_pairs(collected.runs)
    assert ("cpt", "cpt+lora", "same model, adapter added") in pairs
    assert ("base", "base", "same items, ja vs en") in pairs
    steps = [p for p in pairs if p[2].startswith("checkpoints")]
    assert steps == [("step-000000", "step-000002", "checkpoints, step 0 vs 2")]
    rows = analyse(collected)["pairs"]
    lang = next(r for r in rows if r["a"] == "base (ja)" and r["b"] == "base (en)")
    assert lang["n"] == 6 and lang["group"] == "igakuqa ja→en"  # the first six 2022 items in both languages
    # the size and sign of the difference are the paired means'
    assert lang["diff"] == pytest.approx(lang["mean_b"] - lang["mean_a"])


def test_calibration_and_positions_cover_the_loglik_runs(collected):
    data = analyse(collected)
    cal = {c["run"]: c for c in data["calibration"]}
    assert set(cal) == {"base", "cpt", "cpt+lora", "step-000000", "step-000002"}  # generate mode has no confidence
    for c in cal.values():
        assert sum(b["n"] for b in c["bins"]) == c["n"] and 0 <= c["ece"] <= 1
    pos = {p["run"]: p for p in data["positions"]}
    assert sum(pos["base"]["predicted"]) == sum(pos["base"]["gold"]) == pos["base"]["n"]
    forms = [f for f in data["forms"] if f["run"] == "cpt+lora-generate"]
    assert [f["n"] for f in forms] == [2, 2]


def test_cli_writes_both_files_with_the_same_numbers(report_runs, data_root, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", str(report_runs["base"]), str(report_runs["cpt"]), "--out", str(out),
                 "--data-root", str(data_root), "--pair", "base,cpt"]) == 0
    assert "report:" in capsys.readouterr().out
    md, html = (tmp_path / "r.md").read_text(), out.read_text()
    data = analyse(collect([report_runs["base"], report_runs["cpt"]], data_root=data_root), [("base", "cpt", "x")])
    for row in data["leaderboard"]:
        assert fmt.ci(row["accuracy"]) in md and fmt.ci(row["accuracy"]) in html
    assert "asked for" in md and "asked for" in html


def test_bad_input_is_a_clear_error(tmp_path, report_runs, capsys):
    assert main(["report", str(tmp_path / "nothing"), "--out", str(tmp_path / "r.html")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "r.html")]) == 2
    assert "neither a run directory" in capsys.readouterr().err
    assert main(["report", str(report_runs["base"]), "--pair", "base,nosuch", "--out", str(tmp_path / "r.html")]) == 2
    assert "no run 'nosuch'" in capsys.readouterr().err
