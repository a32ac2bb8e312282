"""compare: the medical gain beside the general-domain change, for the same runs."""

from __future__ import annotations

import pytest

from jmedllm.evaluate import EvalConfig, run_eval

from test_evaluate import ScriptedEngine  # noqa: E402  (the scripted engine of the runner tests)


def test_medical_gain_beside_general_change(tmp_path, data_root):
    from jmedllm.report import compare, compare_markdown

    def run(out, answer):
        return run_eval(EvalConfig(model="scripted", benchmarks=["igakuqa:2022:A", "jmmlu-med"], out=str(tmp_path / out),
                                   data_root=str(data_root), limit=10, chunk_size=4, bootstrap=200),
                        engine=ScriptedEngine(answer))

    a, b = run("a", "答え：c"), run("b", "答え：d")
    result = compare([a, b], ["base", "tuned"], ["accuracy"], n_resamples=300, general=["jmmlu-med"])  # standing in for a general set (the data has no non-medical JMMLU)
    entry = result["paired"][0]
    med, gen = entry["domains"]["medical"]["accuracy"], entry["domains"]["general"]["accuracy"]
    groups = {g.split("/")[0]: c["accuracy"] for g, c in entry["by"].items()}
    assert set(groups) == {"igakuqa", "jmmlu-med"}
    # one benchmark per domain: each domain's paired difference is that benchmark's
    assert (med["n"], med["diff"]) == (groups["igakuqa"]["n"], pytest.approx(groups["igakuqa"]["diff"]))
    assert (gen["n"], gen["diff"]) == (groups["jmmlu-med"]["n"], pytest.approx(groups["jmmlu-med"]["diff"]))
    assert med["n"] == 10 and med["diff"] == pytest.approx(0.2)  # igakuqa 2022 A, first 10: c right 3, d right 5
    text = compare_markdown(result)
    assert "Medical gain beside general change (general: jmmlu-med)" in text
    assert f"| tuned | accuracy | 10 | {100 * med['diff']:+.1f}" in text
    assert "domains" not in compare([a, b], n_resamples=100)["paired"][0]


def test_general_names_match_custom_mapping_files():
    from jmedllm.report.compare import is_general

    assert is_general("custom:maps/jmmlu-history.yaml", ["jmmlu-history"])
    assert is_general("custom:maps/jmmlu-history.yaml:limit=5", ["jmmlu-history"])
    assert is_general("jmmlu-med:anatomy", ["jmmlu-med"])
    assert not is_general("custom:maps/jmmlu-history.yaml", ["custom:other.yaml"])
    assert not is_general("igakuqa:2022", ["jmmlu-med"])
