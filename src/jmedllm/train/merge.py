"""Fold a LoRA adapter into its base model (PEFT ``merge_and_unload``) and save it as safetensors.

The merged folder loads like any hub model (``AutoModelForCausalLM.from_pretrained``), so it can
be evaluated, served with vLLM / llama.cpp conversion, or used as the base of a later stage.
A QLoRA adapter is merged into the base loaded in 16 or 32 bit (not 4 bit): pass ``dtype``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from jmedllm.errors import UserError
from jmedllm.train import provenance

MERGE_RECORD = "jmedllm_merge.json"
_DTYPES = ("float32", "bfloat16", "float16")


def merge_adapter(
    adapter_dir: str | Path,
    output_dir: str | Path,
    *,
    base_model: str | None = None,
    dtype: str = "float32",
    overwrite: bool = False,
) -> Path:
    """Merge the adapter in ``adapter_dir`` into its base; write model + tokenizer to ``output_dir``.

    ``base_model`` defaults to the one recorded in the adapter's ``adapter_config.json``.
    Returns ``output_dir``.
    """
    import torch
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter_dir, out = Path(adapter_dir), Path(output_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise UserError(f"{adapter_dir} holds no adapter (adapter_config.json missing)")
    if dtype not in _DTYPES:
        raise UserError(f"dtype must be one of {', '.join(_DTYPES)}, not {dtype!r}")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise UserError(f"{out} is not empty: choose another folder or pass --overwrite")
        shutil.rmtree(out)
    config = PeftConfig.from_pretrained(str(adapter_dir))
    base = base_model or config.base_model_name_or_path
    if not base:
        raise UserError(f"{adapter_dir}: the adapter does not record its base model: pass --base")
    model = AutoModelForCausalLM.from_pretrained(base, dtype=getattr(torch, dtype))
    model = PeftModel.from_pretrained(model, str(adapter_dir))
    merged = model.merge_and_unload()
    merged.config.use_cache = True
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(out), safe_serialization=True)
    tok_source = adapter_dir if (adapter_dir / "tokenizer_config.json").is_file() else base
    AutoTokenizer.from_pretrained(str(tok_source)).save_pretrained(str(out))
    adapter_files = sorted(p for p in adapter_dir.glob("adapter_model.*") if p.is_file())
    record = {
        "adapter": str(adapter_dir),
        "adapter_files": provenance.data_hashes(adapter_files),
        "base_model": str(base),
        "dtype": dtype,
        "merged": provenance.now(),
        "versions": provenance.versions(),
        "git": provenance.git_commit(),
    }
    train_record = adapter_dir / provenance.RUN_RECORD
    if train_record.is_file():
        record["adapter_training"] = json.loads(train_record.read_text(encoding="utf-8"))
    provenance.write_json(out / MERGE_RECORD, record)
    return out
