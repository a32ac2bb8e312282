import json

import pytest

from jmedllm.provenance import data_hashes, sha256_file
from jmedllm.runs import RunDirError, load_run, open_run


def _rec(key, value):
    return {"key": key, "output": value}


def test_new_run_writes_config_and_appends(tmp_path):
    run = open_run(tmp_path / "r", {"model": "m", "seed": 0}, {"argv": ["x"]})
    run.append([_rec("b::1", "a"), _rec("b::2", "b")])
    config, records = load_run(tmp_path / "r")
    assert config["identity"] == {"model": "m", "seed": 0}
    assert config["context"] == {"argv": ["x"]}
    assert [r["key"] for r in records] == ["b::1", "b::2"]


def test_resume_same_identity_sees_done_items(tmp_path):
    run = open_run(tmp_path, {"model": "m"}, {})
    run.append([_rec("b::1", "a")])
    again = open_run(tmp_path, {"model": "m"}, {"argv": ["other"]})
    assert again.is_done("b::1") and not again.is_done("b::2")


def test_other_identity_is_refused_and_named(tmp_path):
    open_run(tmp_path, {"model": "m", "prompt": {"family": "alpaca"}}, {})
    with pytest.raises(RunDirError, match="prompt.family"):
        open_run(tmp_path, {"model": "m", "prompt": {"family": "terse"}}, {})


def test_foreign_directory_is_never_overwritten(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="not a jmedllm run directory"):
        open_run(tmp_path, {"model": "m"}, {})


def test_half_written_last_line_is_dropped_and_rewritten(tmp_path):
    run = open_run(tmp_path, {"m": 1}, {})
    run.append([_rec("b::1", "a")])
    with open(tmp_path / "items.jsonl", "a") as f:
        f.write('{"key": "b::2", "outp')  # a SIGKILL in the middle of a write
    resumed = open_run(tmp_path, {"m": 1}, {})
    assert resumed.recovered_partial_line
    assert set(resumed.done) == {"b::1"}
    resumed.append([_rec("b::2", "b")])
    lines = (tmp_path / "items.jsonl").read_text().splitlines()
    assert [json.loads(x)["key"] for x in lines] == ["b::1", "b::2"]


def test_corrupt_middle_line_names_file_and_line(tmp_path):
    open_run(tmp_path, {"m": 1}, {})
    (tmp_path / "items.jsonl").write_text('{"key": "a"}\nnot json\n{"key": "c"}\n')
    with pytest.raises(RunDirError, match=r"items.jsonl:2"):
        open_run(tmp_path, {"m": 1}, {})


def test_duplicate_append_is_an_error(tmp_path):
    run = open_run(tmp_path, {"m": 1}, {})
    run.append([_rec("b::1", "a")])
    with pytest.raises(RunDirError, match="already recorded"):
        run.append([_rec("b::1", "a")])


def test_hashes(tmp_path):
    f = tmp_path / "d" / "x.jsonl"
    f.parent.mkdir()
    f.write_bytes(b"abc")
    # sha256("abc"), the FIPS 180-2 test vector
    expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert sha256_file(f) == expected
    assert data_hashes([f], tmp_path) == {"d/x.jsonl": expected}
