"""The engine protocol: everything the runner (or `jmedllm synth`) may call on an engine.

An engine knows nothing of benchmarks. Prefix sharing, batching, caching and
truncation live inside the engine.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

from jmedllm.schema import Completion, ContinuationScore, GenerationParams, LoglikRequest


@runtime_checkable
class Engine(Protocol):
    #: short identifier recorded in run configs, e.g. "hf"
    kind: str

    def loglikelihoods(self, requests: Sequence[LoglikRequest]) -> list[list[ContinuationScore]]:
        """For each request, one score per continuation, in order."""
        ...

    def generate(self, prompts: Sequence[str], params: GenerationParams) -> list[Completion]:
        """One completion per prompt, in order."""
        ...

    def format_chat(self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """Render chat messages with the model's chat template into one prompt string."""
        ...

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable description (model id, revision/hash, dtype, device, adapter, ...)."""
        ...
