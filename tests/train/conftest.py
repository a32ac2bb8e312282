"""Fixtures for the training tests."""

from __future__ import annotations

import json

import pytest

from train_helpers import QA


@pytest.fixture
def qa_jsonl(tmp_path):
    """Twelve user instruction/output pairs as JSONL."""
    path = tmp_path / "qa.jsonl"
    path.write_text("\n".join(json.dumps({"instruction": q, "output": a}, ensure_ascii=False) for q, a in QA) + "\n",
                    encoding="utf-8")
    return path
