"""`jmedllm demo --quick`: the README's main command, at its smallest, end to end."""

import json

from jmedllm.cli import main


def test_demo_quick_runs_the_whole_loop(tmp_path, data_root, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--data-root", str(data_root), "--out", str(out), "--quick"]) == 0
    printed = capsys.readouterr().out
    for label in ("base", "cpt", "cpt+lora"):
        assert f"| {label} |" in printed
    assert "igakuqa/ja" in printed and "igakuqa-en/en" in printed and "Exams" in printed
    # training really happened: a full-parameter CPT model and a LoRA adapter, each with its record
    assert (out / "train" / "cpt" / "model.safetensors").is_file()
    assert (out / "train" / "sft" / "adapter_model.safetensors").is_file()
    cpt_record = json.loads((out / "train" / "cpt" / "jmedllm_train.json").read_text())
    assert cpt_record
    # the training data holds no 2018-2021 item the guard matched to the 2022 exam
    report = json.loads((out / "train" / "sft" / "contamination_report.json").read_text())
    assert report["overlaps"] == []
    # the adapter run is evaluated on top of the CPT model, without merging
    config = json.loads((out / "runs" / "cpt+lora" / "config.json").read_text())
    assert config["identity"]["config"]["adapter"].endswith("sft")
    assert (out / "comparison.md").read_text() in printed
    # what each stage moved: held-out perplexity (CPT) and answer form at the adapter's checkpoints (SFT)
    assert "| CPT | perplexity of held-out MedTxt text" in printed
    assert "| SFT | well-formed answers in generate mode, igakuqa/ja" in printed
    assert sorted(p.name for p in (out / "train" / "sft" / "evals").glob("step-*")) == ["step-000000", "step-000003"]
    # and the HTML report of every run, its path printed last
    assert (out / "report.html").is_file() and (out / "report.md").is_file()
    assert printed.strip().endswith(str((out / "report.html").resolve()))
    assert "sft@step-000003" in (out / "report.md").read_text()
