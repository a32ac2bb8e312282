"""Does GRPO raise the reward on the toy task? The recipe of tests/train/test_grpo.py at any seed.

    PYTHONPATH=src python bench/grpo_toy.py --data-root ../shared/data --seed 1 [--out /tmp/grpo-toy]

Builds the tests' tiny model (2 layers, width 64), teaches it the toy's answer format with random
letters (30 SFT steps), runs `tiny-grpo` with ``seed`` and prints the reward of every step and the
means of the first and last 8 steps (the test asserts last >= first + 0.25).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    from jmedllm.tiny import build_tiny_model
    from jmedllm.train import load_recipe, run_sft
    from jmedllm.train.grpo import run_grpo, toy_format_examples
    from jmedllm.train.instructions import write_instructions
    from jmedllm.train.provenance import RUN_RECORD

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="grpo-toy-"))
    t0 = time.perf_counter()
    tiny = build_tiny_model(out / "tiny", args.data_root, "test")
    data = write_instructions(toy_format_examples(96, seed=args.seed + 1), out / "format.jsonl")
    sft = run_sft(load_recipe("tiny-sft", [
        f"model.name_or_path={tiny}", f"output_dir={out / 'format'}", "method=full", f"seed={args.seed}",
        f"instructions.sources=[{{path: {data}}}]", "instructions.batching=padded", "contamination.enabled=false",
        "training.max_steps=30", "training.learning_rate=1e-2", "training.batch_size=16", "training.save_steps=1000"]))
    t1 = time.perf_counter()
    rl = run_grpo(load_recipe("tiny-grpo", [f"model.name_or_path={sft}", f"output_dir={out / 'grpo'}",
                                            f"seed={args.seed}"]))
    history = json.loads((rl / RUN_RECORD).read_text())["training"]["log_history"]
    rewards = [h["reward"] for h in history if "reward" in h]
    first, last = sum(rewards[:8]) / 8, sum(rewards[-8:]) / 8
    print(f"seed {args.seed}: rewards {[round(r, 2) for r in rewards]}")
    print(f"seed {args.seed}: first 8 steps {first:.3f}, last 8 steps {last:.3f}, rise {last - first:+.3f}; "
          f"format SFT {t1 - t0:.0f} s (with the tiny model), GRPO {time.perf_counter() - t1:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
