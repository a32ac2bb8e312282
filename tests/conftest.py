"""Shared fixtures: the data root and tiny real models built at test time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA_ROOT = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_root() -> Path:
    # absolute: CI gives a relative JMEDLLM_DATA_ROOT, and some tests change the working directory
    root = Path(os.environ.get("JMEDLLM_DATA_ROOT", DEFAULT_DATA_ROOT)).resolve()
    if not root.is_dir():
        pytest.fail(f"data root {root} not found: set JMEDLLM_DATA_ROOT to the shared data folder")
    return root


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, data_root) -> Path:
    """A tokenizer trained on the shared data + a random 2-layer Llama, saved like a hub model."""
    from jmedllm.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"), data_root, "test")


@pytest.fixture(scope="session")
def tiny_qwen2_dir(tmp_path_factory, data_root) -> Path:
    from jmedllm.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-qwen2"), data_root, "test-qwen2")
