"""Training recipes: typed dataclasses, loaded from YAML, overridden with ``key=value``.

A recipe names a model and one or more *stages* (continued pretraining ``cpt`` or
instruction tuning ``sft``); each stage writes its own output directory
``<output_dir>/<stage name>``. A later stage may start from an earlier one's output
with ``model.name_or_path: "@<stage name>"`` (JMedLLM-v1: full-parameter CPT, then
LoRA SFT on the result). Every field is documented in docs/training.md.

Nothing here imports torch: a recipe can be loaded, overridden, validated and
printed on any machine.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from jmedllm.errors import UserError
from jmedllm.config import ConfigError, FieldLocator, FieldPath, from_mapping, load_yaml_lines, parse_override
from jmedllm.train.specs import GrpoSpec, PreferenceSpec, ScalingSpec

DATA_ROOT_VAR = "${data_root}"


@dataclass
class ModelSpec:
    """Which model a stage starts from and how it is loaded."""

    name_or_path: str = ""  # hub id, local directory, or "@<stage>" for an earlier stage's output
    revision: str | None = None
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"  # auto: follows training.precision
    attn_implementation: str = "sdpa"  # sdpa | eager | flash_attention_2 | ...
    trust_remote_code: bool = False


@dataclass
class LoraSpec:
    """PEFT LoRA settings (used when ``method`` is ``lora`` or ``qlora``)."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: str | list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj"])  # or "all-linear"
    bias: str = "none"


@dataclass
class QLoraSpec:
    """bitsandbytes 4-bit quantisation of the frozen base (``method: qlora``; CUDA only)."""

    quant_type: str = "nf4"
    double_quant: bool = True
    compute_dtype: str = "bfloat16"


@dataclass
class TrainingSpec:
    """Optimisation and checkpointing, mapped one to one onto TRL's ``SFTConfig``."""

    epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides epochs
    learning_rate: float = 2e-5
    lr_scheduler: str = "linear"  # any transformers SchedulerType: linear | cosine | constant_with_warmup | ...
    warmup_ratio: float = 0.0
    warmup_steps: int = 0  # > 0 overrides warmup_ratio
    weight_decay: float = 0.0
    batch_size: int = 8  # per device
    gradient_accumulation_steps: int = 1
    gradient_checkpointing: bool = False
    max_grad_norm: float = 1.0
    optim: str = "adamw_torch"
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"  # auto: bf16 on a bf16-capable CUDA GPU, else fp32
    packed_layout: Literal["auto", "rows", "flat"] = "auto"  # packed batches: see jmedllm.train.collate
    logging_steps: int = 10
    save_steps: int = 500
    save_total_limit: int | None = 2


@dataclass
class CorpusSpec:
    """Continued-pretraining text (``kind: cpt``); see jmedllm.train.corpus."""

    paths: list[str] = field(default_factory=list)  # files or folders: .txt/.md, .jsonl, MedTxt .xml
    text_field: str = "text"  # JSONL field holding the document text
    text_unit: Literal["file", "paragraph", "line"] = "paragraph"  # plain text files: what one document is
    block_size: int = 1024  # tokens per training block
    last_block: Literal["keep", "drop"] = "keep"  # the shorter final block: train on it, or drop it (recorded)
    isolate_documents: bool = True  # documents packed in one block do not attend to each other
    weights: list[float] = field(default_factory=list)  # one per paths entry: token shares (medical + general); see train.mixing


@dataclass
class InstructionSourceSpec:
    """One source of instruction data: a JSONL file or a benchmark's questions."""

    path: str | None = None  # instruction JSONL (prompt/completion, messages, or instruction/input/output)
    benchmark: str | None = None  # a jmedllm.benchmarks spec, e.g. "yakugakuqa"
    filters: dict[str, Any] = field(default_factory=dict)  # passed to load_benchmark
    answer_style: Literal["text", "letter", "explanation"] = "text"  # benchmark sources
    limit: int | None = None  # first N records of this source


@dataclass
class InstructionsSpec:
    """Instruction-tuning data (``kind: sft``) and how it is batched."""

    sources: list[InstructionSourceSpec] = field(default_factory=list)
    family: str = "alpaca"  # prompt family of jmedllm.prompts (or a .j2 file), as in `jmedllm eval --prompt`
    language: str | None = None  # prompt language; None: the question's own
    chat: bool = False  # render user instructions as chat messages (the model's chat template)
    max_length: int = 1024  # tokens of prompt + completion
    batching: Literal["padded", "packed", "padding_free"] = "padded"
    overlong: Literal["error", "drop"] = "error"  # an example that cannot fit max_length: stop, or drop (recorded)


@dataclass
class ContaminationSpec:
    """The guard that compares training text with evaluation questions before training."""

    enabled: bool = True
    benchmarks: str | list[str] = "all"  # "all": every registered benchmark found under the data root
    exclude: list[str] = field(default_factory=list)
    ngram: int = 13  # characters per n-gram (after normalisation)
    threshold: float = 0.4  # share of an item's informative n-grams (stem, and whole item) found in one training record
    min_exact_chars: int = 20  # shortest normalised question stem that counts alone as an exact match
    generic_df: int = 5  # an n-gram found in this many exam items (evaluation + reference) is phrasing (0: none)
    reference: str | list[str] = "all"  # exam items that teach the guard phrasing: "all" under the data root, a list, or []
    min_informative: int = 30  # informative stem n-grams an item needs before its stem alone can flag it
    choice_share: float = 0.5  # share of its choices a short-stem item needs found beside its stem
    allow_overlap: bool = False  # proceed anyway and record the report in the output directory


@dataclass
class ObserveSpec:
    """What a stage reports while it trains (see jmedllm.train.observe and docs/training.md)."""

    report_to: list[str] = field(default_factory=lambda: ["tensorboard"])  # tensorboard | wandb | none
    validation: float = 0.0  # share (< 1) or number (>= 1) of training rows held out: validation loss
    eval_every: int = 0  # steps between checkpoint evaluations (and validation losses); 0: never
    eval_at_start: bool = True  # with eval_every: evaluate the starting model too (step 0)
    benchmarks: list[str] = field(default_factory=list)  # checkpoint evaluation: benchmark specs, as `jmedllm eval`
    mode: Literal["loglik", "letter", "generate"] = "loglik"
    prompt: str = "alpaca"
    limit: int | None = None  # first N items per benchmark
    max_new_tokens: int = 64
    bootstrap: int = 1000


@dataclass
class StageSpec:
    """One training stage: continued pretraining or instruction tuning."""

    name: str = ""
    kind: Literal["cpt", "sft", "dpo", "orpo", "kto", "grpo"] = "sft"
    method: Literal["full", "lora", "qlora"] = "lora"
    model: ModelSpec = field(default_factory=ModelSpec)
    lora: LoraSpec = field(default_factory=LoraSpec)
    qlora: QLoraSpec = field(default_factory=QLoraSpec)
    training: TrainingSpec = field(default_factory=TrainingSpec)
    corpus: CorpusSpec = field(default_factory=CorpusSpec)
    instructions: InstructionsSpec = field(default_factory=InstructionsSpec)
    observe: ObserveSpec = field(default_factory=ObserveSpec)
    preference: PreferenceSpec = field(default_factory=PreferenceSpec)  # dpo / orpo / kto (jmedllm.train.preference)
    grpo: GrpoSpec = field(default_factory=GrpoSpec)  # grpo (jmedllm.train.grpo)
    scaling: ScalingSpec = field(default_factory=ScalingSpec)


@dataclass
class Recipe:
    """A named sequence of stages with a seed, an output directory and the contamination guard."""

    name: str = ""
    description: str = ""
    seed: int = 42
    output_dir: str = ""  # default: outputs/<name>
    data_root: str | None = None  # default: --data-root or $JMEDLLM_DATA_ROOT
    contamination: ContaminationSpec = field(default_factory=ContaminationSpec)
    stages: list[StageSpec] = field(default_factory=list)

    # -- helpers ---------------------------------------------------------------------------------

    def stage(self, name_or_kind: str | None = None) -> StageSpec:
        """The stage with this name; else the only stage of this kind; else the only stage."""
        if name_or_kind is None:
            if len(self.stages) != 1:
                raise UserError(f"recipe {self.name!r} has {len(self.stages)} stages: name one "
                                f"({', '.join(s.name for s in self.stages)})")
            return self.stages[0]
        for s in self.stages:
            if s.name == name_or_kind:
                return s
        of_kind = [s for s in self.stages if s.kind == name_or_kind]
        if len(of_kind) == 1:
            return of_kind[0]
        if not of_kind:
            raise UserError(f"recipe {self.name!r} has no stage named or of kind {name_or_kind!r} "
                            f"(stages: {', '.join(f'{s.name} ({s.kind})' for s in self.stages)})")
        raise UserError(f"recipe {self.name!r} has several {name_or_kind} stages: name one "
                        f"({', '.join(s.name for s in of_kind)})")

    def stage_dir(self, stage: StageSpec | str) -> Path:
        name = stage if isinstance(stage, str) else stage.name
        return Path(self.output_dir) / name

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


# -- loading -------------------------------------------------------------------------------------


def _set_path(tree: dict[str, Any], keys: list[str], value: Any) -> None:
    node: Any = tree
    for i, key in enumerate(keys[:-1]):
        if isinstance(node, list):
            node = node[int(key)]
            continue
        nxt = node.get(key)
        if nxt is None:
            nxt = node[key] = {}
        node = nxt
    last = keys[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key=value`` overrides to a raw recipe mapping (before typing).

    Keys are dotted paths. ``stages.<name or index>.x`` addresses one stage; a key whose first part
    names a stage (``sft.training.learning_rate``) addresses that stage; a key whose first part is
    not a top-level recipe field (``training.max_steps``) applies to *every* stage. Values are read
    as YAML (``[q_proj,v_proj]``, ``true``, ``null``) and then typed against the field.
    """
    data = copy.deepcopy(data)
    stages = data.setdefault("stages", [])
    top = {f.name for f in dataclasses.fields(Recipe)}
    for item in overrides:
        try:
            parts, value = parse_override(item)
        except ConfigError as exc:
            raise UserError(str(exc)) from None
        names = [s.get("name") for s in stages if isinstance(s, dict)]
        if parts[0] == "stages" and len(parts) > 2:
            sel = parts[1]
            if sel.isdigit():
                idx = int(sel)
                if idx >= len(stages):
                    raise UserError(f"override {item!r}: the recipe has {len(stages)} stages")
            elif sel in names:
                idx = names.index(sel)
            else:
                raise UserError(f"override {item!r}: no stage named {sel!r} (stages: {', '.join(map(str, names))})")
            _set_path(stages[idx], parts[2:], value)
        elif parts[0] in names and len(parts) > 1:
            _set_path(stages[names.index(parts[0])], parts[1:], value)
        elif parts[0] in top:
            _set_path(data, parts, value)
        else:
            if not stages:
                raise UserError(f"override {item!r}: {parts[0]!r} is not a recipe field and the recipe has no stages")
            for stage in stages:
                _set_path(stage, parts, value)
    return data


# Ranges of the numeric recipe fields: (section, field) -> (test, what it must be).
_POSITIVE = (lambda v: v > 0, "> 0")
_AT_LEAST_1 = (lambda v: v >= 1, ">= 1")
_NON_NEGATIVE = (lambda v: v >= 0, ">= 0")
_RATIO = (lambda v: 0 <= v < 1, "in [0, 1)")
RANGES: dict[tuple[str, str], tuple[Any, str]] = {
    ("training", "epochs"): _POSITIVE,
    ("training", "max_steps"): (lambda v: v == -1 or v >= 1, "-1 (train for `epochs`) or >= 1"),
    ("training", "learning_rate"): _NON_NEGATIVE,  # 0: a run that looks at the batches without learning
    ("training", "warmup_ratio"): _RATIO,
    ("training", "warmup_steps"): _NON_NEGATIVE,
    ("training", "weight_decay"): _NON_NEGATIVE,
    ("training", "batch_size"): _AT_LEAST_1,
    ("training", "gradient_accumulation_steps"): _AT_LEAST_1,
    ("training", "max_grad_norm"): _NON_NEGATIVE,
    ("training", "logging_steps"): _AT_LEAST_1,
    ("training", "save_steps"): _AT_LEAST_1,
    ("training", "save_total_limit"): _AT_LEAST_1,
    ("lora", "r"): _AT_LEAST_1,
    ("lora", "alpha"): _POSITIVE,
    ("lora", "dropout"): _RATIO,
    ("corpus", "block_size"): (lambda v: v >= 2, ">= 2"),
    ("instructions", "max_length"): (lambda v: v >= 2, ">= 2"),
    ("grpo", "toy"): _NON_NEGATIVE,
    ("grpo", "toy_choices"): (lambda v: 2 <= v <= 12, "in [2, 12] (the toy has 12 words)"),
}
_CONTAMINATION_RANGES: dict[str, tuple[Any, str]] = {
    "ngram": _AT_LEAST_1,
    "threshold": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "min_exact_chars": _NON_NEGATIVE,
    "generic_df": _NON_NEGATIVE,
    "min_informative": _NON_NEGATIVE,
    "choice_share": (lambda v: 0 <= v <= 1, "in [0, 1]"),
}


def _check_ranges(recipe: Recipe, where: FieldLocator) -> None:
    if not 0 <= recipe.seed < 2**32:
        raise where.error(("seed",), f"must be in [0, 2**32), got {recipe.seed}")
    for name, (ok, what) in _CONTAMINATION_RANGES.items():
        value = getattr(recipe.contamination, name)
        if not ok(value):
            raise where.error(("contamination", name), f"must be {what}, got {value}")
    for i, stage in enumerate(recipe.stages):
        for (section, name), (ok, what) in RANGES.items():
            value = getattr(getattr(stage, section), name)
            if value is not None and not ok(value):
                raise where.error(("stages", i, section, name), f"must be {what}, got {value}")
        for j, src in enumerate(stage.instructions.sources):
            if src.limit is not None and src.limit < 1:
                raise where.error(("stages", i, "instructions", "sources", j, "limit"), f"must be >= 1, got {src.limit}")


def recipe_from_dict(data: dict[str, Any], *, source: str = "recipe", lines: dict[FieldPath, int] | None = None,
                     file_data: dict[str, Any] | None = None) -> Recipe:
    """Type-check a raw mapping into a Recipe, fill defaults, and validate ranges, stage names and references.

    ``lines`` (from jmedllm.config.parse_yaml) and ``file_data`` (the mapping as the file gave it, before
    overrides) let every error name the line of the field, or say that an override set it."""
    where = FieldLocator(source, lines, file_data, data)
    try:
        recipe = from_mapping(Recipe, data, "recipe")
    except ConfigError as exc:
        raise where.wrap(exc, "recipe") from None
    if not recipe.name:
        raise where.error(("name",), "the recipe needs a name")
    if not recipe.output_dir:
        recipe.output_dir = str(Path("outputs") / recipe.name)
    if not recipe.stages:
        raise where.error(("stages",), "the recipe has no stages")
    _check_ranges(recipe, where)
    seen: set[str] = set()
    for i, stage in enumerate(recipe.stages):
        if not stage.name:
            stage.name = stage.kind if stage.kind not in seen else f"{stage.kind}{i}"
        if stage.name in seen:
            raise where.error(("stages", i, "name"), f"two stages are named {stage.name!r}")
        if "/" in stage.name or stage.name.startswith("."):
            raise where.error(("stages", i, "name"), f"{stage.name!r} must be a plain folder name")
        ref = stage.model.name_or_path
        if ref.startswith("@") and ref[1:] not in seen:
            raise where.error(("stages", i, "model", "name_or_path"),
                              f"{ref!r} must name an earlier stage (earlier: {', '.join(sorted(seen)) or 'none'})")
        seen.add(stage.name)
        if stage.kind == "cpt" and stage.method == "qlora":
            raise where.error(("stages", i, "method"), f"({stage.name}): continued pretraining supports method "
                                                        "full or lora")
    return recipe


def shipped_recipes() -> list[str]:
    """Names of the recipes shipped in jmedllm/recipes (without .yaml)."""
    folder = resources.files("jmedllm") / "recipes"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def recipe_path(name_or_path: str | Path) -> Path:
    """A recipe file: an existing path, or the name of a shipped recipe (``jmedlora-7b-lora``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = resources.files("jmedllm") / "recipes" / f"{Path(str(name_or_path)).stem}.yaml"
    if shipped.is_file():
        return Path(str(shipped))
    raise UserError(f"recipe {str(name_or_path)!r} not found: not a file, nor a shipped recipe "
                    f"({', '.join(shipped_recipes())})")


def load_recipe(name_or_path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Load a recipe from YAML (a path or a shipped name) and apply ``key=value`` overrides."""
    path = recipe_path(name_or_path)
    try:
        file_data, lines = load_yaml_lines(path)
    except ConfigError as exc:
        raise UserError(f"recipe {exc}") from None
    data = apply_overrides(file_data, list(overrides))
    return recipe_from_dict(data, source=f"recipe {path}", lines=lines, file_data=file_data)


def resolve_paths(values: list[str], data_root: Path | None, *, where: str) -> list[Path]:
    """Substitute ``${data_root}`` in recipe paths; a path that needs a data root we lack is an error."""
    out = []
    for v in values:
        if DATA_ROOT_VAR in v:
            if data_root is None:
                raise UserError(f"{where}: {v!r} uses {DATA_ROOT_VAR} but no data root was given "
                                "(--data-root or $JMEDLLM_DATA_ROOT)")
            v = v.replace(DATA_ROOT_VAR, str(data_root))
        out.append(Path(v).expanduser())
    return out
