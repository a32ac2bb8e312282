"""Recipe sections of the stages beyond CPT and SFT: preference tuning, GRPO, scaling.

Kept apart from jmedllm.train.recipe so that the core recipe stays small; recipe.StageSpec holds
one field of each type. Every field is documented in docs/training.md. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class PreferenceSourceSpec:
    """One source of preference data: a user JSONL file or a benchmark's questions."""

    path: str | None = None  # JSONL: prompt/chosen/rejected (paired) or prompt/completion/label (kto)
    benchmark: str | None = None  # a jmedllm.benchmarks spec, e.g. "igakuqa:2018-2021"
    filters: dict[str, Any] = field(default_factory=dict)  # passed to load_benchmark
    answer_style: Literal["text", "letter", "explanation"] = "text"  # chosen / rejected as in sft's answer_style
    rejected: Literal["kinki_first", "any_wrong"] = "kinki_first"  # which wrong choice becomes the rejected answer
    limit: int | None = None  # first N records of this source


@dataclass
class PreferenceSpec:
    """Preference data and loss of a ``dpo`` / ``orpo`` / ``kto`` stage (TRL's trainers)."""

    sources: list[PreferenceSourceSpec] = field(default_factory=list)
    family: str = "alpaca"  # prompt family, as in `jmedllm eval --prompt` (the same prompts as eval and sft)
    language: str | None = None
    max_length: int = 1024  # tokens of prompt + completion (TRL truncates the completion)
    beta: float = 0.1  # dpo / kto: strength of the reference-model KL; orpo: weight of the odds-ratio term
    loss_type: str = "sigmoid"  # dpo: any TRL DPO loss (sigmoid, ipo, ...); kto: kto | apo_zero_unpaired
    seed: int = 0  # which wrong choice is drawn, when several qualify
    overlong: Literal["error", "drop"] = "error"  # a prompt + answer longer than max_length: stop, or drop (recorded)


@dataclass
class RewardSpec:
    """The exam-verified reward of a ``grpo`` stage: jmedllm's own scoring of each generated answer."""

    correct: float = 1.0  # the extracted answer set equals an accepted answer set
    partial_credit: bool = False  # else: ``correct`` x F1 of the extracted set against the answer
    kinki_penalty: float = 1.0  # subtracted when a forbidden choice (kinki) is selected
    format: float = 0.1  # added when the answer extractor parses an answer at all
    target_length: int | None = None  # reasoning-length control: completion tokens allowed before the penalty
    length_penalty: float = 0.0  # subtracted per token beyond target_length (0: off)


@dataclass
class GrpoSpec:
    """Group-relative policy optimisation on exam questions (TRL's GRPOTrainer)."""

    sources: list[PreferenceSourceSpec] = field(default_factory=list)  # benchmarks (or question JSONL: path)
    toy: int = 0  # > 0: that many items of the learnable toy task instead of sources (tests, demo)
    toy_choices: int = 2  # choices per toy item (2-12): the marked one is the answer
    family: str = "alpaca"
    language: str | None = None
    answer_style: Literal["text", "letter", "explanation"] = "letter"  # what the prompt asks for
    num_generations: int = 8  # completions per prompt (the group)
    max_prompt_length: int = 1024  # longer prompts: error or drop (instructions.overlong rules)
    max_completion_length: int = 256  # hard cap on reasoning + answer tokens
    temperature: float = 1.0
    top_p: float = 1.0
    beta: float = 0.0  # KL to the reference model (0: none, no reference model kept)
    loss_type: str = "dapo"  # TRL's GRPO loss (grpo | dr_grpo | dapo | bnpo | ...)
    scale_rewards: str = "group"  # group | batch | none
    mask_truncated_completions: bool = False  # completions cut by max_completion_length get no loss
    use_vllm: bool | None = None  # None (auto): vLLM when installed and a CUDA GPU is present; else HF generate
    vllm_mode: Literal["colocate", "server"] = "colocate"
    vllm_server_base_url: str | None = None
    vllm_gpu_memory_utilization: float = 0.3
    rewards: RewardSpec = field(default_factory=RewardSpec)
    overlong: Literal["error", "drop"] = "error"


@dataclass
class ScalingSpec:
    """Memory and speed options beyond TrainingSpec (large models on few GPUs)."""

    use_liger_kernel: bool | None = False  # Liger's fused kernels (RMSNorm, RoPE, SwiGLU, fused linear CE); None: when installed and CUDA
    activation_offloading: bool = False  # keep activations in CPU memory between forward and backward (TRL)
