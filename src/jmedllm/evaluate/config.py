"""What `jmedllm eval` is asked to do: the typed configuration and its error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any




MODES = ("generate", "loglik", "letter")


@dataclass
class EvalConfig:
    """Everything `jmedllm eval` needs. All fields but those run_identity calls volatile (out, limit,
    device, batch size, data root, chunk size, bootstrap, summary_subset) and those the mode does
    not use (MODE_UNUSED) must match to resume a run directory."""

    model: str = ""
    benchmarks: list[str] = field(default_factory=list)
    out: str = ""
    data_root: str | None = None
    adapter: str | None = None
    engine: str = "hf"
    dtype: str = "auto"
    device: str = "auto"
    batch_size: str = "auto"
    max_length: int | None = None
    mode: str = "generate"
    prompt: str = "alpaca"  # a family name, or the path of a Jinja2 template file
    language: str | None = None  # prompt language; default: each question's own
    shots: int = 0
    shot_pool: str | None = None  # benchmark spec; default: see default_shot_pool()
    shared_shots: bool = False  # the same exemplars for every question (see select_shots)
    shuffle: bool = False
    seed: int = 0
    limit: int | None = None
    max_new_tokens: int = 64
    stop: list[str] = field(default_factory=list)
    first_line_only: bool = False
    chunk_size: int = 32  # items per durable chunk (resume granularity)
    bootstrap: int = 2000
    trust_remote_code: bool = False
    allow_outside_paths: bool = False  # let a custom mapping name files outside its folder
    answer_pattern: str | None = None  # regex with a named group "answer" (precedence: see answer_pattern.py)
    extract_with: str | None = None  # judge model asked about rule-unparsed answers (see judge.py)
    extract_engine: str = "hf"  # engine kind of the judge model
    summary_subset: bool = False  # allow a summary of fewer items than the run directory records
    # engine-specific keyword options (openai: base_url, api, api_key_env, concurrency, ...);
    # only what the engine's describe() reports enters the run identity
    engine_options: dict[str, Any] = field(default_factory=dict)
    top_logprobs: int = 20  # letter mode through top-k log-probs: k
    samples: int = 1  # generate: answers sampled per item (seeds seed, seed+1, ...); scored by majority vote
    temperature: float = 0.0  # generate: 0 = greedy
    letter_grammar: bool = False  # generate: each answer constrained to its item's choice labels (engine support)


class EvalError(ValueError):
    """A problem with the evaluation's configuration or inputs (shown to the user as is)."""
