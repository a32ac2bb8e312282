#!/usr/bin/env bash
# GPU check of the vllm engine (every mode, one LoRA adapter, TP=1), the HF engine in 4-bit and
# lm-evaluation-harness's vLLM backend on the same items. Needs a CUDA machine with vllm,
# bitsandbytes and (optionally) lm_eval installed, and the data root. Prints a Markdown table
# for docs/benchmarks.md and writes bench/.gpu_check/results.json.
#   JMEDLLM_DATA_ROOT=/path/to/shared/data bash bench/gpu_check.sh [--items 60]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
: "${JMEDLLM_DATA_ROOT:?set JMEDLLM_DATA_ROOT to the shared data folder}"
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: run this on a GPU machine')"
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv || true
PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" "$PY" bench/gpu_check.py "$@"
