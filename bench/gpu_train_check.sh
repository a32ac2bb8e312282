#!/usr/bin/env bash
# GPU checks for training, for a session that is lent a GPU (not run yet: no GPU was lent when written).
#   bash bench/gpu_train_check.sh DATA_ROOT [OUT]
# 1. jmedllm SFT (tiny-qlora recipe, packed) vs TRL's defaults (padded) on the same tiny "bench60m"
#    model: tokens/s and peak GPU memory from bench/bench_sft.py (goal: >= 2x tokens/s, <= 0.5x memory).
# 2. One FSDP-QLoRA and one ZeRO-3-QLoRA step (tiny-qlora, 2 steps) when 2 GPUs are present.
set -euo pipefail
DATA=${1:?data root}
OUT=${2:-outputs/gpu_train_check}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpus.csv"
NGPU=$(nvidia-smi -L | wc -l)
python -c 'from jmedllm.tiny import build_tiny_model; build_tiny_model("'"$OUT"'/m", "'"$DATA"'", "bench60m")'
python bench/bench_sft.py --help >/dev/null 2>&1 && python bench/bench_sft.py --model "$OUT/m" --data-root "$DATA" \
    2>&1 | tee "$OUT/sft_vs_trl.txt" || echo "bench_sft.py: see its --help for the GPU options" | tee -a "$OUT/sft_vs_trl.txt"
CFG=$(python -c "import jmedllm, os; print(os.path.join(os.path.dirname(jmedllm.__file__), 'recipes/accelerate'))")
if [ "$NGPU" -ge 2 ]; then
  for c in fsdp-qlora deepspeed-zero3-qlora; do
    accelerate launch --config_file "$CFG/$c.yaml" --num_processes 2 -m jmedllm.cli train --recipe tiny-qlora \
      --model "$OUT/m" --output-dir "$OUT/$c" --data-root "$DATA" training.max_steps=2 training.precision=bf16 \
      training.gradient_checkpointing=false 2>&1 | tail -20 | tee "$OUT/$c.txt"
  done
else
  echo "one GPU: FSDP-QLoRA and ZeRO-3-QLoRA need 2 (skipped)" | tee "$OUT/multi_gpu.txt"
fi
