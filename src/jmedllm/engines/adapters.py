"""PEFT adapter bookkeeping for local engines: find, fingerprint and check an adapter directory.

Loading itself is PEFT's (``PeftModel.load_adapter``); this module only decides whether an
adapter directory is usable with a given base model, so that a wrong adapter fails loudly
before any score is computed.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

#: config fields that must agree between the base an adapter was trained on and the loaded model
ARCHITECTURE_FIELDS = (
    "model_type",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
)

_HUB_CACHE_RE = re.compile(r"models--([^/]+)--([^/]+)/snapshots/([0-9a-f]{40})")
_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class AdapterError(ValueError):
    """An adapter directory that is missing, malformed, or made for another base model."""


@dataclass(frozen=True)
class AdapterInfo:
    name: str
    path: str
    sha256: str
    base_model_name_or_path: str | None
    peft_type: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_adapter_dir(path: str | Path, name: str) -> AdapterInfo:
    """Validate an adapter directory and fingerprint its weights (sha256 over the weight files)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise AdapterError(f"adapter directory {p} does not exist")
    if not p.is_dir():
        raise AdapterError(f"adapter path {p} is not a directory (expected a PEFT adapter folder)")
    config_file = p / "adapter_config.json"
    if not config_file.is_file():
        raise AdapterError(f"{p} is not a PEFT adapter directory: {config_file.name} is missing")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise AdapterError(f"{config_file}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    weights = sorted(p.glob("adapter_model*.safetensors")) or sorted(p.glob("adapter_model*.bin"))
    if not weights:
        raise AdapterError(f"{p} holds no adapter weights (adapter_model.safetensors or adapter_model.bin)")
    digest = hashlib.sha256()
    for f in weights:
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return AdapterInfo(
        name=name,
        path=str(p.resolve()),
        sha256=digest.hexdigest(),
        base_model_name_or_path=config.get("base_model_name_or_path"),
        peft_type=config.get("peft_type"),
    )


def hub_id_of(ref: str | None) -> str | None:
    """The hub id ``org/name`` a reference points to: a hub id itself, or a path in a hub cache."""
    if not ref:
        return None
    m = _HUB_CACHE_RE.search(str(ref).replace("\\", "/"))
    if m:
        return f"{m.group(1)}/{m.group(2)}"
    if not Path(ref).expanduser().exists() and _HUB_ID_RE.match(ref):
        return ref
    return None


def commit_of(ref: str, revision: str | None = None) -> str | None:
    """The commit hash of a model loaded from a hub cache (path inside one, or a cached hub id)."""
    m = _HUB_CACHE_RE.search(str(Path(ref).expanduser().resolve()).replace("\\", "/")) if Path(ref).expanduser().exists() else None
    if m:
        return m.group(3)
    if hub_id_of(ref) is None:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(ref, "config.json", revision=revision)
    except Exception:  # noqa: BLE001 - a missing cache entry is not an error here
        return None
    m = _HUB_CACHE_RE.search(str(found).replace("\\", "/")) if isinstance(found, str) else None
    return m.group(3) if m else None


def check_adapter_base(info: AdapterInfo, model_ref: str, model_config: Mapping[str, Any]) -> None:
    """Raise AdapterError when the adapter was evidently trained on another base model.

    Evidence, in order: the recorded base is a local model directory whose config differs in
    an architecture field; or both the recorded base and the loaded model are hub ids (or hub
    cache paths) with different names. When neither can be told (e.g. the recorded base is a
    path on another machine), the adapter is accepted and PEFT's key/shape check still applies.
    """
    recorded = info.base_model_name_or_path
    if not recorded:
        return
    rec_path = Path(recorded).expanduser()
    if (rec_path / "config.json").is_file():
        model_path = Path(model_ref).expanduser()
        if model_path.exists() and rec_path.resolve() == model_path.resolve():
            return
        rec_config = json.loads((rec_path / "config.json").read_text(encoding="utf-8"))
        diffs = [
            f"{k}: adapter base {rec_config.get(k)!r} vs model {model_config.get(k)!r}"
            for k in ARCHITECTURE_FIELDS
            if k in rec_config and k in model_config and rec_config.get(k) != model_config.get(k)
        ]
        if diffs:
            raise AdapterError(
                f"adapter {info.path} was trained on {recorded}, which differs from {model_ref}: " + "; ".join(diffs)
            )
        return
    rec_id, model_id = hub_id_of(recorded), hub_id_of(model_ref)
    if rec_id and model_id and rec_id.lower() != model_id.lower():
        raise AdapterError(
            f"adapter {info.path} was trained on {rec_id}, not on {model_id}; "
            "pass check_adapter_base=False if this is intended"
        )
