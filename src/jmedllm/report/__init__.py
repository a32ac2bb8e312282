"""Reports over finished runs: multi-run comparison with paired tests."""

from jmedllm.report.compare import compare, compare_markdown

__all__ = ["compare", "compare_markdown"]
