"""How the HF engine places a model: one device, or spread over several GPUs
(``device_map="auto"`` with an optional per-device memory cap), quantised to 4 or 8 bits through
bitsandbytes (GPU only), with FlashAttention 2 when it is installed and a GPU is used.

Everything here decides keyword arguments for ``from_pretrained``; nothing loads weights.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Mapping

QUANTIZE = ("4bit", "8bit")


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


__all__ = ["PlacementError", "QUANTIZE", "flash_attention_available", "input_device", "parse_max_memory",
           "placement_kwargs", "quantization_config"]
