"""`jmedllm eval` end to end on a tiny real model (random Llama, tokenizer trained on the shared data)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from jmedllm.cli import main

BENCHMARKS = "igakuqa:2022:A:limit=3,igakuqa-en:2022:A:limit=3,jjsimqa:limit=3,medqa:limit=3"


@pytest.fixture(scope="module")
def custom_mapping(tmp_path_factory):
    d = tmp_path_factory.mktemp("custom")
    (d / "bank.jsonl").write_text(
        json.dumps({"qid": "h-1", "q": "高カリウム血症で正しいのはどれか。", "opts": ["T波増高", "U波出現", "QT延長"],
                    "ans": "a"}, ensure_ascii=False) + "\n"
        + json.dumps({"qid": "h-2", "q": "ループ利尿薬の副作用はどれか。2つ選べ。",
                      "opts": ["高カリウム血症", "低カリウム血症", "高尿酸血症", "低血糖"], "ans": "b,c"},
                     ensure_ascii=False) + "\n", encoding="utf-8")
    (d / "bank.yaml").write_text("name: hospital-bank\ndata: bank.jsonl\nid: qid\nquestion: q\nchoices: opts\n"
                                 "answer: ans\nanswer_style: letters\nanswer_separator: ','\n", encoding="utf-8")
    return d / "bank.yaml"


def _eval(model, out, data_root, *extra):
    argv = ["eval", "--model", str(model), "--out", str(out), "--data-root", str(data_root), "--bootstrap", "200",
            "--max-new-tokens", "8", *extra]
    assert main(argv) == 0


@pytest.mark.parametrize("mode", ["generate", "loglik", "letter"])
def test_each_mode_end_to_end(mode, tiny_model_dir, data_root, custom_mapping, tmp_path):
    out = tmp_path / mode
    _eval(tiny_model_dir, out, data_root, "--mode", mode, "--benchmark", f"{BENCHMARKS},custom:{custom_mapping}")
    config = json.loads((out / "config.json").read_text())
    assert config["identity"]["config"]["mode"] == mode
    assert config["identity"]["engine"]["n_parameters"] > 0
    assert "model.safetensors" in config["identity"]["model_fingerprint"]
    assert any("116-A.jsonl" in k for k in config["identity"]["data_hashes"])
    records = [json.loads(x) for x in (out / "items.jsonl").read_text().splitlines()]
    assert len(records) == 14
    assert {r["benchmark"] for r in records} == {*BENCHMARKS.split(","), f"custom:{custom_mapping}"}
    for r in records:
        assert r["prompt"] and "verdict" in r
        if mode == "generate":
            assert isinstance(r["output"], str)
        else:
            assert len(r["scores"]) == len(r["continuations"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["overall"]["n"] == 14 and summary["run"]["items_done"] == 14
    assert set(summary["by"]["benchmark_language"]) >= {"igakuqa/ja", "igakuqa-en/en", "jjsimqa/ja", "medqa/en"}


def test_same_command_twice_gives_identical_records(tiny_model_dir, data_root, tmp_path):
    args = ("--mode", "loglik", "--benchmark", "igakuqa:2022:A:limit=4", "--shots", "1")
    _eval(tiny_model_dir, tmp_path / "one", data_root, *args)
    _eval(tiny_model_dir, tmp_path / "two", data_root, *args)
    assert (tmp_path / "one" / "items.jsonl").read_bytes() == (tmp_path / "two" / "items.jsonl").read_bytes()
    assert (tmp_path / "one" / "summary.json").read_bytes() == (tmp_path / "two" / "summary.json").read_bytes()


CLI = [sys.executable, "-m", "jmedllm.cli"]
ENV = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}


def _generate_args(model, data_root):
    return ["eval", "--model", str(model), "--data-root", str(data_root), "--mode", "generate",
            "--benchmark", "igakuqa:2022:A:limit=24", "--chunk-size", "2", "--max-new-tokens", "12",
            "--bootstrap", "200"]


@pytest.fixture(scope="module")
def whole_generate_run(tiny_model_dir, data_root, tmp_path_factory):
    """One uninterrupted, unshared run of _generate_args: what a killed or contended run must equal."""
    out = tmp_path_factory.mktemp("whole") / "run"
    subprocess.run(CLI + _generate_args(tiny_model_dir, data_root) + ["--out", str(out)], env=ENV, check=True,
                   capture_output=True)
    return out


def _start_and_wait(args, out, ready):
    """Start `eval` into ``out`` and wait until ``ready(proc)`` (the run must still be going)."""
    proc = subprocess.Popen(CLI + args + ["--out", str(out)], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None and not ready(proc):
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be interfered with"
    return proc


def _n_items(out):
    items = out / "items.jsonl"
    return len(items.read_bytes().splitlines()) if items.exists() else 0


def _holds_lock(out):
    lock = out / "run.lock"
    return lambda proc: lock.exists() and lock.read_text().strip() == str(proc.pid)


def test_sigkill_then_rerun_gives_the_uninterrupted_summary(tiny_model_dir, data_root, tmp_path, whole_generate_run):
    args = _generate_args(tiny_model_dir, data_root)
    killed = tmp_path / "killed"
    proc = _start_and_wait(args, killed, lambda proc: _n_items(killed) >= 4)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_before = len((killed / "items.jsonl").read_bytes().splitlines())
    assert 4 <= n_before < 24
    subprocess.run(CLI + args + ["--out", str(killed)], env=ENV, check=True, capture_output=True)
    for name in ("items.jsonl", "summary.json", "summary.md"):
        assert (killed / name).read_bytes() == (whole_generate_run / name).read_bytes(), name


def test_two_concurrent_evals_one_runs_one_is_refused(tiny_model_dir, data_root, tmp_path, whole_generate_run):
    """Issue 10, fault 2: two processes on one --out both exited 0 and items.jsonl held every item twice.
    Now the second is refused at once (before loading its model), and the first's result is that of a
    single run."""
    args = _generate_args(tiny_model_dir, data_root)
    shared = tmp_path / "shared"
    first = _start_and_wait(args, shared, _holds_lock(shared))  # locked before its model loads
    second = subprocess.run(CLI + args + ["--out", str(shared)], env=ENV, capture_output=True, text=True,
                            timeout=300)
    still_running = first.poll() is None
    _, first_err = first.communicate(timeout=600)
    assert first.returncode == 0, first_err[-2000:]
    assert still_running, "the refused process must have met a running one"
    assert second.returncode == 2, second.stderr[-2000:]
    assert f"jmedllm eval: error: run directory {shared} in use by pid {first.pid}" in second.stderr
    assert "Traceback" not in second.stderr
    for name in ("items.jsonl", "summary.json", "summary.md"):
        assert (shared / name).read_bytes() == (whole_generate_run / name).read_bytes(), name


def test_user_errors_are_one_clear_line(tiny_model_dir, data_root, tmp_path, capsys):
    assert main(["eval", "--model", str(tiny_model_dir), "--out", str(tmp_path / "x"), "--data-root", str(data_root),
                 "--benchmark", "igakuqa:2022", "--prompt", "nope"]) == 2
    assert "valid: alpaca" in capsys.readouterr().err
    assert main(["eval", "--model", str(tiny_model_dir), "--out", str(tmp_path / "y"), "--data-root", str(data_root),
                 "--benchmark", "igakua"]) == 2
    assert "igakuqa" in capsys.readouterr().err
    assert main(["eval", "--model", str(tmp_path / "no-such-model"), "--out", str(tmp_path / "z"),
                 "--data-root", str(data_root), "--benchmark", "igakuqa:2022"]) == 2
    assert "no-such-model" in capsys.readouterr().err
    assert main(["eval", "--model", str(tiny_model_dir), "--adapter", str(tmp_path / "no-adapter"),
                 "--out", str(tmp_path / "w"), "--data-root", str(data_root), "--benchmark", "igakuqa:2022"]) == 2
    assert "no-adapter" in capsys.readouterr().err


def _random_lora(base_dir, out_dir, seed):
    import peft
    import torch
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    torch.manual_seed(seed)
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft.get_peft_model(base, config).save_pretrained(out_dir)
    return out_dir


def test_several_adapters_against_one_loaded_base(tiny_model_dir, data_root, tmp_path, capsys):
    a = _random_lora(tiny_model_dir, tmp_path / "lora-a", seed=1)
    b = _random_lora(tiny_model_dir, tmp_path / "lora-b", seed=2)
    args = ("--mode", "loglik", "--benchmark", "igakuqa:2022:A:limit=4")
    _eval(tiny_model_dir, tmp_path / "many", data_root, *args, "--adapter", f"none,{a}", "--adapter", str(b))
    assert sorted(p.name for p in (tmp_path / "many").iterdir()) == ["base", "lora-a", "lora-b"]
    capsys.readouterr()
    # each equals the run of that adapter alone (same identity, same scores): adapters switch cleanly
    _eval(tiny_model_dir, tmp_path / "only-b", data_root, *args, "--adapter", str(b))
    _eval(tiny_model_dir, tmp_path / "bare", data_root, *args)
    read = lambda d: [json.loads(x)["scores"] for x in (d / "items.jsonl").read_text().splitlines()]
    assert read(tmp_path / "many" / "lora-b") == read(tmp_path / "only-b")
    assert read(tmp_path / "many" / "base") == read(tmp_path / "bare")
    assert read(tmp_path / "many" / "lora-a") != read(tmp_path / "many" / "lora-b")
    ident = lambda d: json.loads((d / "config.json").read_text())["identity"]["engine"]
    assert ident(tmp_path / "many" / "lora-b") == ident(tmp_path / "only-b")
    assert "adapter" not in ident(tmp_path / "many" / "base")


def test_overlong_prompts_are_cut_from_the_left_and_counted(tiny_model_dir, data_root, tmp_path):
    out = tmp_path / "short"
    _eval(tiny_model_dir, out, data_root, "--mode", "loglik", "--benchmark", "igakuqa:2022:A:limit=3",
          "--max-length", "48")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["prompts_truncated"] == 3 and summary["run"]["items_done"] == 3
    records = [json.loads(x) for x in (out / "items.jsonl").read_text().splitlines()]
    assert all(r["truncated_tokens"] > 0 for r in records)
    assert "cut from the left" in (out / "summary.md").read_text()
