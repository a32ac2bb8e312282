"""Export a checkpoint (merged, or a base plus a PEFT adapter) to GGUF for llama.cpp.

The conversion is llama.cpp's own ``convert_hf_to_gguf.py`` with its matching ``gguf-py``,
as shipped in llama-cpp-python's source distribution; nothing here writes GGUF itself.
The converter is found in, in order:

1. ``$JMEDLLM_LLAMA_CPP_DIR`` (a llama.cpp checkout, or an unpacked llama-cpp-python sdist);
2. the cache ``~/.cache/jmedllm/llama-cpp-python-<version>`` (``$JMEDLLM_CACHE`` overrides
   ``~/.cache/jmedllm``), filled on first use by ``pip download`` of the installed
   llama-cpp-python version's sdist (network once; scripts/bootstrap does it ahead).

Tokenizers must survive the conversion: a Llama model needs its SentencePiece
``tokenizer.model`` next to the weights (the converter does not read every ``tokenizers``
BPE); transformers 5 reads ``tokenizer.model`` only with ``protobuf`` installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib import metadata
from pathlib import Path

from jmedllm.errors import UserError
from jmedllm.paths import cache_root

OUTTYPES = ("f32", "f16", "bf16", "q8_0")
CONVERTER = "convert_hf_to_gguf.py"


def _llama_cpp_dir(root: Path) -> Path | None:
    for cand in (root, root / "vendor" / "llama.cpp"):
        if (cand / CONVERTER).is_file() and (cand / "gguf-py" / "gguf").is_dir():
            return cand
    return None


def find_converter(download: bool = True) -> Path:
    """The llama.cpp folder holding ``convert_hf_to_gguf.py`` and ``gguf-py``."""
    env = os.environ.get("JMEDLLM_LLAMA_CPP_DIR")
    if env:
        found = _llama_cpp_dir(Path(env))
        if found is None:
            raise UserError(f"$JMEDLLM_LLAMA_CPP_DIR={env} holds no {CONVERTER} with gguf-py")
        return found
    try:
        version = metadata.version("llama_cpp_python")
    except metadata.PackageNotFoundError:
        raise UserError("GGUF export uses llama.cpp's converter from llama-cpp-python's source: "
                        "pip install 'jmedllm[llamacpp]' (or set $JMEDLLM_LLAMA_CPP_DIR to a llama.cpp checkout)") from None
    target = cache_root() / f"llama-cpp-python-{version}"
    found = _llama_cpp_dir(target)
    if found is not None:
        return found
    if not download:
        raise UserError(f"llama.cpp converter not in {target}: run scripts/bootstrap or set $JMEDLLM_LLAMA_CPP_DIR")
    return fetch_converter(version, target)


def fetch_converter(version: str, target: Path) -> Path:
    """Unpack the converter and gguf-py of llama-cpp-python ``version``'s sdist into ``target``."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q",
               f"llama-cpp-python=={version}", "-d", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        sdists = list(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        if proc.returncode != 0 or not sdists:
            raise UserError(f"could not download llama-cpp-python {version}'s source for its GGUF converter "
                            f"({proc.stderr.strip()[-300:]}); set $JMEDLLM_LLAMA_CPP_DIR to a llama.cpp checkout")
        extract_converter(sdists[0], target)
    found = _llama_cpp_dir(target)
    if found is None:
        raise UserError(f"{sdists[0].name} holds no {CONVERTER}")
    return found


def extract_converter(sdist: Path, target: Path) -> None:
    """Only the converter (its script, its ``conversion`` package, top-level helpers) and gguf-py
    leave the archive."""
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist) as tar:
        members = []
        for m in tar.getmembers():
            rel = m.name.split("/", 1)[1] if "/" in m.name else ""
            top = rel[len("vendor/llama.cpp/"):] if rel.startswith("vendor/llama.cpp/") else None
            if top is not None and (("/" not in top and top.endswith(".py"))
                                    or top.startswith(("gguf-py/", "conversion/"))):
                if m.isfile() or m.isdir():
                    m.name = rel
                    members.append(m)
        tar.extractall(target, members=members, filter="data")


def export_gguf(model: str | Path, out: str | Path, *, adapter: str | Path | None = None, outtype: str = "f16",
                overwrite: bool = False) -> Path:
    """Convert ``model`` (merged with ``adapter`` first, if given) to the GGUF file ``out``."""
    model, out = Path(model), Path(out)
    if outtype not in OUTTYPES:
        raise UserError(f"--outtype must be one of {', '.join(OUTTYPES)}, not {outtype!r}")
    if not (model / "config.json").is_file():
        raise UserError(f"{model}: not a transformers model folder (no config.json)")
    if out.exists() and not overwrite:
        raise UserError(f"{out} exists: choose another --out or pass --overwrite")
    if out.suffix != ".gguf":
        raise UserError(f"{out}: the output file must end in .gguf")
    llama_cpp = find_converter()
    with tempfile.TemporaryDirectory() as tmp:
        source = model
        if adapter is not None:
            from jmedllm.train.merge import merge_adapter

            source = merge_adapter(adapter, Path(tmp) / "merged", base_model=str(model), dtype="float32")
            for name in ("tokenizer.model",):  # the SentencePiece file the converter reads
                if (model / name).is_file() and not (source / name).exists():
                    shutil.copy2(model / name, source / name)
        out.parent.mkdir(parents=True, exist_ok=True)
        # the converter's own gguf-py first (a `gguf` from PyPI may be another version)
        env = {k: v for k, v in os.environ.items() if k != "NO_LOCAL_GGUF"}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(llama_cpp / "gguf-py"), os.environ.get("PYTHONPATH")) if p)
        cmd = [sys.executable, str(llama_cpp / CONVERTER), str(source), "--outfile", str(out), "--outtype", outtype]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0 or not out.is_file():
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise UserError(f"llama.cpp's converter failed on {source}:\n{tail}")
    return out


__all__ = ["OUTTYPES", "export_gguf", "extract_converter", "find_converter"]
