"""jmedllm: adapt open LLMs to Japanese medicine and evaluate them bilingually."""

__version__ = "0.1.0"
