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
import difflib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Union

import yaml

from jmedllm.cli import UserError

DATA_ROOT_VAR = "${data_root}"


@dataclass
class ModelSpec:
    """Which model a stage starts from and how it is loaded."""

    name_or_path: str = ""  # hub id, local directory, or "@<stage>" for an earlier stage's output
    revision: str | None = None
    dtype: str = "auto"  # auto (follows training.precision) | float32 | bfloat16 | float16
    attn_implementation: str = "sdpa"  # sdpa | eager | flash_attention_2 | ...
    trust_remote_code: bool = False


@dataclass
class LoraSpec:
    """PEFT LoRA settings (used when ``method`` is ``lora`` or ``qlora``)."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: Union[list[str], str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj"])
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
    precision: str = "auto"  # auto (bf16 on a bf16-capable CUDA GPU, else fp32) | bf16 | fp16 | fp32
    logging_steps: int = 10
    save_steps: int = 500
    save_total_limit: int | None = 2


@dataclass
class CorpusSpec:
    """Continued-pretraining text (``kind: cpt``); see jmedllm.train.corpus."""

    paths: list[str] = field(default_factory=list)  # files or folders: .txt/.md, .jsonl, MedTxt .xml
    text_field: str = "text"  # JSONL field holding the document text
    text_unit: str = "paragraph"  # plain text: file | paragraph (blank-line separated) | line
    block_size: int = 1024  # tokens per training block
    last_block: str = "keep"  # keep (a shorter final block) | drop (recorded in the stats)
    isolate_documents: bool = True  # documents packed in one block do not attend to each other


@dataclass
class InstructionSourceSpec:
    """One source of instruction data: a JSONL file or a benchmark's questions."""

    path: str | None = None  # instruction JSONL (prompt/completion, messages, or instruction/input/output)
    benchmark: str | None = None  # a jmedllm.benchmarks spec, e.g. "yakugakuqa"
    filters: dict[str, Any] = field(default_factory=dict)  # passed to load_benchmark
    answer_style: str = "text"  # text | letter | explanation (benchmark sources)
    limit: int | None = None  # first N records of this source


@dataclass
class InstructionsSpec:
    """Instruction-tuning data (``kind: sft``) and how it is batched."""

    sources: list[InstructionSourceSpec] = field(default_factory=list)
    family: str = "plain"  # prompt family of jmedllm.prompts, the same as `jmedllm eval --family`
    language: str | None = None  # prompt language; None: the question's own
    chat: bool = False  # render user instructions as chat messages (the model's chat template)
    max_length: int = 1024  # tokens of prompt + completion
    batching: str = "padded"  # padded | packed | padding_free
    overlong: str = "error"  # a prompt that leaves no room for its completion: error | drop (recorded)


@dataclass
class ContaminationSpec:
    """The guard that compares training text with evaluation questions before training."""

    enabled: bool = True
    benchmarks: Union[list[str], str] = "all"  # "all": every registered benchmark found under the data root
    exclude: list[str] = field(default_factory=list)
    ngram: int = 13  # characters per n-gram (after normalisation)
    threshold: float = 0.5  # share of an item's n-grams found in one training record
    min_exact_chars: int = 20  # shortest normalised question stem that counts alone as an exact match
    allow_overlap: bool = False  # proceed anyway and record the report in the output directory


@dataclass
class StageSpec:
    """One training stage: continued pretraining or instruction tuning."""

    name: str = ""
    kind: str = "sft"  # cpt | sft
    method: str = "lora"  # full | lora | qlora
    model: ModelSpec = field(default_factory=ModelSpec)
    lora: LoraSpec = field(default_factory=LoraSpec)
    qlora: QLoraSpec = field(default_factory=QLoraSpec)
    training: TrainingSpec = field(default_factory=TrainingSpec)
    corpus: CorpusSpec = field(default_factory=CorpusSpec)
    instructions: InstructionsSpec = field(default_factory=InstructionsSpec)


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


_CHOICES: dict[str, tuple[str, ...]] = {
    "kind": ("cpt", "sft"),
    "method": ("full", "lora", "qlora"),
    "precision": ("auto", "bf16", "fp16", "fp32"),
    "dtype": ("auto", "float32", "bfloat16", "float16"),
    "text_unit": ("file", "paragraph", "line"),
    "last_block": ("keep", "drop"),
    "batching": ("padded", "packed", "padding_free"),
    "overlong": ("error", "drop"),
    "answer_style": ("text", "letter", "explanation"),
}


# -- loading -------------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check / convert a YAML value to the annotated type; raise UserError naming ``where``."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        if isinstance(value, str) and str in args:
            return value
        errors = []
        # Try the container types first so that a list stays a list and a string a string.
        for arg in sorted((a for a in args if a is not type(None)), key=lambda a: typing.get_origin(a) is None):
            try:
                return _coerce(value, arg, where)
            except UserError as exc:
                errors.append(str(exc))
        raise UserError(f"{where}: expected {' or '.join(_type_name(a) for a in args)}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, (str, int, float, dict)) and not isinstance(value, bool) and typing.get_origin(item_tp) is None \
                and not dataclasses.is_dataclass(item_tp):
            value = [value]  # a single value where a list is expected: a one-item list
        if not isinstance(value, list):
            raise UserError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise UserError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise UserError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise UserError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise UserError(f"{where}: expected a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "5e-5" as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise UserError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, (dict, list)) or value is None:
            raise UserError(f"{where}: expected a string, got {value!r}")
        return str(value)
    raise TypeError(f"unsupported recipe field type {tp!r} at {where}")  # a bug in this module


def _build(cls: type, data: Any, where: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a mapping of {cls.__name__} fields, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in hints:
            near = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else f" (fields: {', '.join(names)})"
            raise UserError(f"{where}: unknown field {key!r}{hint}")
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}" if where else key)
        if key in _CHOICES and kwargs[key] not in _CHOICES[key]:
            raise UserError(f"{where}.{key}: {kwargs[key]!r} is not one of {', '.join(_CHOICES[key])}")
    return cls(**kwargs)


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
        if "=" not in item:
            raise UserError(f"override {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw.strip() else ""
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise UserError(f"override {item!r}: empty key")
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


def recipe_from_dict(data: dict[str, Any], *, source: str = "recipe") -> Recipe:
    """Type-check a raw mapping into a Recipe, fill defaults, and validate stage names and references."""
    recipe = _build(Recipe, data, "")
    if not recipe.name:
        raise UserError(f"{source}: the recipe needs a name")
    if not recipe.output_dir:
        recipe.output_dir = str(Path("outputs") / recipe.name)
    if not recipe.stages:
        raise UserError(f"{source}: the recipe has no stages")
    seen: set[str] = set()
    for i, stage in enumerate(recipe.stages):
        if not stage.name:
            stage.name = stage.kind if stage.kind not in seen else f"{stage.kind}{i}"
        if stage.name in seen:
            raise UserError(f"{source}: two stages are named {stage.name!r}")
        if "/" in stage.name or stage.name.startswith("."):
            raise UserError(f"{source}: stages[{i}].name {stage.name!r} must be a plain folder name")
        ref = stage.model.name_or_path
        if ref.startswith("@") and ref[1:] not in seen:
            raise UserError(f"{source}: stages[{i}].model.name_or_path {ref!r} must name an earlier stage "
                            f"(earlier: {', '.join(sorted(seen)) or 'none'})")
        seen.add(stage.name)
        if stage.kind == "sft" and stage.method == "full":
            pass  # allowed: full-parameter instruction tuning
        if stage.kind == "cpt" and stage.method == "qlora":
            raise UserError(f"{source}: stages[{i}] ({stage.name}): continued pretraining supports method full or lora")
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
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"recipe {path}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise UserError(f"recipe {path}: expected a mapping at the top level")
    data = apply_overrides(data, list(overrides))
    try:
        return recipe_from_dict(data, source=f"recipe {path}")
    except UserError as exc:
        msg = str(exc)
        raise UserError(msg if msg.startswith("recipe ") else f"recipe {path}: {msg}") from None


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
