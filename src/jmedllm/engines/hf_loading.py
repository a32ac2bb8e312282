"""How the HF engine loads and places a model: one device, or spread over several GPUs
(``device_map="auto"`` with an optional per-device memory cap), quantised to 4 or 8 bits through
bitsandbytes (GPU only), with FlashAttention 2 when it is installed and a GPU is used.

``placement_kwargs`` decides keyword arguments for ``from_pretrained``; ``load_pretrained``
loads a local folder or hub id: a causal LM (AutoTokenizer + AutoModelForCausalLM), or a
vision-language model when its config says so (AutoProcessor + AutoModelForImageTextToText).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Mapping

import torch

QUANTIZE = ("4bit", "8bit")

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
#: config fields that may hold the context length, in order of preference
CONTEXT_LENGTH_FIELDS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "max_sequence_length")
DEFAULT_MAX_LENGTH = 2048


class PlacementError(ValueError):
    """A placement or quantisation option this machine cannot honour (shown to the user as is)."""


def parse_max_memory(spec: str | Mapping[str, Any] | None) -> dict[Any, str] | None:
    """``"0=38GiB,1=38GiB,cpu=64GiB"`` (or a mapping) -> ``{0: "38GiB", 1: "38GiB", "cpu": "64GiB"}``."""
    if spec in (None, "", {}):
        return None
    items = spec.items() if isinstance(spec, Mapping) else (
        part.split("=", 1) if "=" in part else (None, part) for part in str(spec).split(","))
    out: dict[Any, str] = {}
    for key, value in items:
        if key is None:
            raise PlacementError(f"max_memory: expected DEVICE=SIZE items (e.g. 0=38GiB,cpu=64GiB), got {spec!r}")
        key = str(key).strip()
        out[int(key) if key.isdigit() else key] = str(value).strip()
    return out


def flash_attention_available(device_type: str) -> bool:
    return device_type == "cuda" and importlib.util.find_spec("flash_attn") is not None


def quantization_config(quantize: str | None, compute_dtype: Any, device_type: str):
    """A transformers BitsAndBytesConfig for "4bit" (NF4, double quantisation) or "8bit"."""
    if quantize in (None, "", "none"):
        return None
    if quantize not in QUANTIZE:
        raise PlacementError(f"quantize must be one of {', '.join(QUANTIZE)}, got {quantize!r}")
    if device_type != "cuda":
        raise PlacementError(f"--quantize {quantize} loads through bitsandbytes, which needs a CUDA GPU; on CPU "
                             "evaluate the unquantised model, or a quantised GGUF with --engine llamacpp")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise PlacementError(f"--quantize {quantize} needs bitsandbytes: pip install 'jmedllm[qlora]'")
    from transformers import BitsAndBytesConfig

    if quantize == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=compute_dtype)
    return BitsAndBytesConfig(load_in_8bit=True)


def placement_kwargs(device: Any, dtype: Any, *, device_map: str | None = None, max_memory: Any = None,
                     quantize: str | None = None, attn_implementation: str | None = None) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments for where and how the weights go."""
    kwargs: dict[str, Any] = {"dtype": dtype}
    if device_map:
        if device.type != "cuda" and device_map == "auto":
            raise PlacementError("device_map=auto spreads a model over GPUs; no CUDA device here")
        kwargs["device_map"] = device_map
        memory = parse_max_memory(max_memory)
        if memory:
            kwargs["max_memory"] = memory
    elif max_memory:
        raise PlacementError("max_memory applies with device_map=auto")
    elif device.type != "cpu":  # load straight onto the accelerator, not via host memory
        kwargs["device_map"] = str(device)
    config = quantization_config(quantize, dtype, device.type)
    if config is not None:
        kwargs["quantization_config"] = config
        kwargs.setdefault("device_map", str(device))
    if attn_implementation == "auto" or attn_implementation is None and flash_attention_available(device.type):
        attn_implementation = "flash_attention_2" if flash_attention_available(device.type) else None
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    return kwargs


def input_device(model: Any) -> Any:
    """Where inputs go for a model spread by a device map: its input embeddings' device."""
    return model.get_input_embeddings().weight.device


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """"auto" is float32 on CPU (fast and exact there) and bfloat16 (else float16) on CUDA."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    try:
        return DTYPES[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; use auto, {', '.join(DTYPES)}") from None


def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available on this machine")
    return dev


def context_length_of(config: Any, tokenizer: Any) -> int:
    """The model's context length: from its config, else the tokenizer's, else 2048."""
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    for field in CONTEXT_LENGTH_FIELDS:
        value = getattr(text_config, field, None)
        if isinstance(value, int) and value > 0:
            return value
    value = getattr(tokenizer, "model_max_length", None)
    if isinstance(value, int) and 0 < value < 10_000_000:
        return value
    return DEFAULT_MAX_LENGTH


class ModelLoadError(FileNotFoundError):
    """The model reference names no loadable model."""


def _is_path_like(ref: str) -> bool:
    return ref.startswith(("/", "./", "../", "~", ".\\", "..\\")) or Path(ref).is_absolute()


def is_vision_language(config: Any) -> bool:
    """Whether a config describes an image-text-to-text model (a vision tower beside the LM)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    return (getattr(config, "vision_config", None) is not None
            and getattr(config, "model_type", None) in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES)


def load_pretrained(model_ref: str, *, revision: str | None, trust_remote_code: bool,
                    model_kwargs: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    """(tokenizer, model, processor) from a local folder or hub id; ``processor`` is None for a
    text-only causal LM, and the model's AutoProcessor for a vision-language model (whose
    tokenizer is the processor's)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    ref = model_ref
    local = Path(ref).expanduser()
    if local.exists():
        if not local.is_dir():
            raise ModelLoadError(f"model path {local} is a file; expected a model directory")
        if not (local / "config.json").is_file():
            raise ModelLoadError(f"model directory {local} has no config.json (not a transformers model)")
        ref = str(local)
    elif _is_path_like(ref):
        raise ModelLoadError(f"model directory {local} does not exist")
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if revision:
        kwargs["revision"] = revision
    try:
        config = AutoConfig.from_pretrained(ref, **kwargs)
        if is_vision_language(config):
            from transformers import AutoModelForImageTextToText, AutoProcessor

            processor = AutoProcessor.from_pretrained(ref, **kwargs)
            model = AutoModelForImageTextToText.from_pretrained(ref, **(kwargs | dict(model_kwargs)))
            return processor.tokenizer, model, processor
        tokenizer = AutoTokenizer.from_pretrained(ref, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(ref, **(kwargs | dict(model_kwargs)))
        return tokenizer, model, None
    except OSError as exc:
        if local.is_dir():  # a local folder missing a piece (tokenizer, a VLM's processor files)
            raise ModelLoadError(f"could not load model directory {local}: {exc}") from exc
        raise ModelLoadError(
            f"could not load model {model_ref!r} (not a local directory, and not found on the "
            f"Hugging Face hub or in its cache): {exc}"
        ) from exc


__all__ = ["DTYPES", "ModelLoadError", "PlacementError", "QUANTIZE", "context_length_of", "flash_attention_available",
           "input_device", "is_vision_language", "load_pretrained", "parse_max_memory", "placement_kwargs",
           "quantization_config", "resolve_device", "resolve_dtype"]
