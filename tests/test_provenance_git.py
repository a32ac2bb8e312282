"""The checkout's commit in run records: clean, modified, outside git, and git status failing."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from jmedllm.provenance import git_commit, git_state
from jmedllm.train import provenance as train_provenance

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(repo, *args):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo,
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    _git(tmp_path, "init", "-q")
    (tmp_path / "a.txt").write_text("one\n")
    _git(tmp_path, "add", "a.txt")
    _git(tmp_path, "commit", "-qm", "first")
    return tmp_path


def test_clean_and_modified_checkouts(repo):
    head = _git(repo, "rev-parse", "HEAD")
    assert git_state(repo) == (head, False)
    assert git_commit(repo) == head
    assert train_provenance.git_commit(repo) == {"commit": head, "dirty": False}
    (repo / "new.txt").write_text("untracked files do not count\n")
    assert git_commit(repo) == head
    (repo / "a.txt").write_text("two\n")
    assert git_commit(repo) == head + "+dirty"
    assert train_provenance.git_commit(repo) == {"commit": head, "dirty": True}


def test_outside_git(tmp_path):
    assert git_state(tmp_path) is None and git_commit(tmp_path) is None
    assert train_provenance.git_commit(tmp_path) is None


def test_a_failing_status_keeps_the_commit(repo):
    head = _git(repo, "rev-parse", "HEAD")
    (repo / ".git" / "index").write_bytes(b"not an index")  # rev-parse still works, status does not
    with pytest.raises(subprocess.CalledProcessError):
        _git(repo, "status", "--porcelain")
    assert git_state(repo) == (head, None)
    assert git_commit(repo) == head + "+dirty?"
    assert train_provenance.git_commit(repo) == {"commit": head, "dirty": None}
