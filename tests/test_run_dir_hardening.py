"""Issue 10, faults 2, 3, 4, 7 (--out a file), 10 and 11: the run directory under crashes,
concurrent use, symlinks and changed selections. Real subprocesses where a lock is at stake; the
scripted engine of test_evaluate.py where only the runner's bookkeeping is. Two concurrent
`jmedllm eval` processes on a tiny real model: test_eval_e2e.py::test_two_concurrent_evals_one_runs_one_is_refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from test_evaluate import ScriptedEngine, cfg

from jmedllm.cli import main
from jmedllm.errors import UserError
from jmedllm.evaluate import run_eval
from jmedllm.runs import CONFIG_FILE, ITEMS_FILE, LOCK_FILE, RunDirError, lock_run_dir, open_run

ENV = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
CLI = [sys.executable, "-m", "jmedllm.cli"]


def test_second_process_is_refused_while_the_first_holds_the_directory(tmp_path):
    run = open_run(tmp_path / "r", {"m": 1}, {})
    probe = ("import sys\nfrom jmedllm.runs import open_run, RunDirError\n"
             "try:\n    open_run(sys.argv[1], {'m': 1}, {})\nexcept RunDirError as e:\n    print(e); sys.exit(2)\n")
    other = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "r")], env=ENV, capture_output=True,
                           text=True, timeout=120)
    assert other.returncode == 2
    assert f"run directory {tmp_path / 'r'} in use by pid {os.getpid()}" in other.stdout
    run.close()
    again = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "r")], env=ENV, capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom jmedllm.runs import lock_run_dir\n"
                               "l = lock_run_dir(sys.argv[1]); print('locked', flush=True); time.sleep(600)",
                               str(tmp_path / "r")], env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirError, match=f"in use by pid {holder.pid}"):
            lock_run_dir(tmp_path / "r")
    finally:
        holder.kill()
        holder.wait()
    lock_run_dir(tmp_path / "r").release()  # the kernel dropped the dead holder's lock


def test_leftover_config_tmp_is_a_run_that_never_started(tmp_path, data_root):
    """Fault 3: a kill between writing config.json.tmp and renaming it made the directory unusable."""
    out = tmp_path / "run"
    out.mkdir()
    (out / (CONFIG_FILE + ".tmp")).write_text('{"identity": {"half": ', encoding="utf-8")
    (out / LOCK_FILE).write_text("12345\n")
    done = run_eval(cfg(tmp_path, data_root, out=str(out), limit=3), engine=ScriptedEngine())
    assert json.loads((done / CONFIG_FILE).read_text())["identity"]["config"]["benchmarks"] == ["igakuqa:2022:A"]
    assert not (out / (CONFIG_FILE + ".tmp")).exists()
    assert len((out / ITEMS_FILE).read_text().splitlines()) == 3
    # summary leftovers of a kill while the summary was written are removed, the summary rewritten
    (out / "summary.json.tmp").write_text("{")
    run_eval(cfg(tmp_path, data_root, out=str(out), limit=3), engine=ScriptedEngine())
    assert not (out / "summary.json.tmp").exists()


def test_items_symlink_is_refused_before_anything_is_truncated(tmp_path, data_root):
    """Fault 4: resume truncated the last line of the symlink's target, outside the run directory."""
    out = tmp_path / "run"
    run_eval(cfg(tmp_path, data_root, out=str(out), limit=3), engine=ScriptedEngine())
    outside = tmp_path / "precious.jsonl"
    outside.write_bytes((out / ITEMS_FILE).read_bytes() + b'{"key": "half')
    before = outside.read_bytes()
    (out / ITEMS_FILE).unlink()
    (out / ITEMS_FILE).symlink_to(outside)
    with pytest.raises(RunDirError, match="items.jsonl is a symbolic link"):
        run_eval(cfg(tmp_path, data_root, out=str(out), limit=3), engine=ScriptedEngine())
    assert outside.read_bytes() == before


@pytest.mark.parametrize("name", ["summary.json", "summary.md.tmp", CONFIG_FILE, LOCK_FILE])
def test_no_file_of_a_run_directory_may_be_a_symlink(tmp_path, data_root, name):
    out = tmp_path / "run"
    run_eval(cfg(tmp_path, data_root, out=str(out), limit=2), engine=ScriptedEngine())
    target = tmp_path / "target.txt"
    target.write_text("keep me\n")
    (out / name).unlink(missing_ok=True)
    (out / name).symlink_to(target)
    with pytest.raises(RunDirError, match="symbolic link"):
        run_eval(cfg(tmp_path, data_root, out=str(out), limit=2), engine=ScriptedEngine())
    assert target.read_text() == "keep me\n"


def test_a_corrupt_line_is_reported_before_the_partial_tail_is_cut(tmp_path):
    run = open_run(tmp_path, {"m": 1}, {})
    run.append([{"key": "a", "v": 1}])
    run.close()
    items = tmp_path / ITEMS_FILE
    items.write_bytes(b'{"key": "a"}\nnot json\n{"key": "c", "v"')
    before = items.read_bytes()
    with pytest.raises(RunDirError, match=r"items.jsonl:2"):
        open_run(tmp_path, {"m": 1}, {})
    assert items.read_bytes() == before  # validated first: nothing truncated


def test_out_naming_an_existing_file_is_a_user_error(tmp_path, tiny_model_dir, data_root, capsys):
    """Fault 7: `--out` naming an existing file ended in a traceback."""
    a_file = tmp_path / "results.txt"
    a_file.write_text("mine\n")
    code = main(["eval", "--model", str(tiny_model_dir), "--out", str(a_file), "--data-root", str(data_root),
                 "--benchmark", "igakuqa:2022:A:limit=2"])
    err = capsys.readouterr().err
    assert code == 2 and f"--out {a_file} is an existing file, not a directory" in err
    assert a_file.read_text() == "mine\n"
    with pytest.raises(UserError, match="existing file"):
        open_run(a_file, {"m": 1}, {})


def test_loglik_resumes_whatever_max_new_tokens_says(tmp_path, data_root):
    """Fault 11: in loglik mode a different --max-new-tokens was refused although it plays no part."""
    out = run_eval(cfg(tmp_path, data_root, mode="loglik", limit=4, max_new_tokens=64), engine=ScriptedEngine())
    before = (out / ITEMS_FILE).read_bytes()
    again = ScriptedEngine()
    run_eval(cfg(tmp_path, data_root, mode="loglik", limit=4, max_new_tokens=8, stop=["\n"], first_line_only=True),
             engine=again)
    assert again.calls == 0 and (out / ITEMS_FILE).read_bytes() == before
    # a directory written before this rule (its stored identity still holds max_new_tokens) resumes too
    config = json.loads((out / CONFIG_FILE).read_text())
    config["identity"]["config"] |= {"max_new_tokens": 64, "stop": [], "first_line_only": False, "limit": 4}
    (out / CONFIG_FILE).write_text(json.dumps(config))
    run_eval(cfg(tmp_path, data_root, mode="loglik", limit=4, max_new_tokens=8), engine=again)
    assert again.calls == 0
    # in generate mode it does play a part
    gen = cfg(tmp_path, data_root, out=str(tmp_path / "gen"), limit=4)
    run_eval(gen, engine=ScriptedEngine())
    with pytest.raises(RunDirError, match="differs in: config.max_new_tokens"):
        run_eval(cfg(tmp_path, data_root, out=str(tmp_path / "gen"), limit=4, max_new_tokens=8),
                 engine=ScriptedEngine())


def test_a_narrower_limit_is_refused_or_summarised_as_a_subset(tmp_path, data_root):
    """Fault 10: `--limit 10` on a 40-item run rewrote summary.json for 10 items while items.jsonl held 40."""
    out = run_eval(cfg(tmp_path, data_root, limit=40), engine=ScriptedEngine())
    items = (out / ITEMS_FILE).read_bytes()
    summary = (out / "summary.json").read_bytes()
    with pytest.raises(RunDirError, match=r"records 40 items, 30 of them outside this command's selection.*"
                                          r"--summary-subset"):
        run_eval(cfg(tmp_path, data_root, limit=10), engine=ScriptedEngine())
    assert (out / ITEMS_FILE).read_bytes() == items and (out / "summary.json").read_bytes() == summary
    run_eval(cfg(tmp_path, data_root, limit=10, summary_subset=True), engine=ScriptedEngine())
    sub = json.loads((out / "summary.json").read_text())
    assert sub["overall"]["n"] == 10
    assert sub["run"]["items_done"] == 10 and sub["run"]["items_recorded"] == 40 and sub["run"]["subset"] is True
    assert "this summary covers 10 of 40 recorded items" in (out / "summary.md").read_text()
    assert (out / ITEMS_FILE).read_bytes() == items
    # the whole selection again: the full summary, byte for byte
    run_eval(cfg(tmp_path, data_root, limit=40), engine=ScriptedEngine())
    assert (out / "summary.json").read_bytes() == summary
