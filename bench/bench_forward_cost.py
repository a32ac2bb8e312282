"""Benchmark: the CPU cost of a forward pass by size, behind ``engines.batching.DecodeCost``.

Times (process CPU seconds, the median of ``--repeats``; one thread by default, where CPU
time does not count OpenMP spin-waits and is little moved by other load) the bench Llama of
``bench/vs_lmeval.py`` on

* prefill forwards of one row of W tokens: fitted as ``forward + W`` token units (a
  least-squares line; the unit is the marginal cost of one token);
* decode steps of B rows, one new token each, after ``--context`` tokens in the key/value
  cache: fitted as ``step + B * step_row``; and B = 16 after a 5x longer context for
  ``step_row_context``.

It prints the fitted constants in token units, to compare with ``DecodeCost``'s defaults:

    JMEDLLM_DATA_ROOT=../shared/data python bench/bench_forward_cost.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from jmedllm.engines.batching import DecodeCost
from jmedllm.paths import resolve_data_root
from jmedllm.tiny import build_tiny_model


CLOCK = time.process_time  # --clock wall: time.perf_counter (for several threads on a quiet machine)


def cpu_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = CLOCK()
        fn()
        times.append(CLOCK() - t)
    return statistics.median(times) * 1000


def main() -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from vs_lmeval import SPEC  # the same tiny Llama as the lm-eval comparison

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--model-dir", default="/tmp/jmedllm-bench-issue14")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--context", type=int, default=100)
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                        help="process CPU time (default; little moved by load) or wall time (quiet machine only)")
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.perf_counter if args.clock == "wall" else time.process_time
    torch.set_num_threads(args.threads)
    from transformers import AutoModelForCausalLM, DynamicCache

    model_dir = build_tiny_model(args.model_dir, resolve_data_root(args.data_root), SPEC)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    vocab = model.config.vocab_size

    def prefill(width: int) -> float:
        ids = torch.randint(5, vocab, (1, width))
        return cpu_ms(lambda: model(input_ids=ids, use_cache=False, logits_to_keep=1), args.repeats)

    def decode(rows: int, context: int) -> float:
        times = []
        for _ in range(args.repeats):
            cache = DynamicCache(config=model.config)
            model(input_ids=torch.randint(5, vocab, (rows, context)), cache=cache, use_cache=True, logits_to_keep=1)
            step = torch.randint(5, vocab, (rows, 1))
            t = CLOCK()
            model(input_ids=step, cache=cache, use_cache=True, logits_to_keep=1)
            times.append(CLOCK() - t)
        return statistics.median(times) * 1000

    with torch.inference_mode():
        model(input_ids=torch.randint(5, vocab, (1, 8)))
        widths = [1, 16, 64, 128, 256, 512]
        pre = [prefill(w) for w in widths]
        slope, intercept = np.polyfit(widths, pre, 1)
        for w, ms in zip(widths, pre):
            print(f"prefill 1 x {w:4d} tokens: {ms:8.1f} ms {args.clock}")
        rows = [4, 8, 16, 32, 64]
        dec = [decode(b, args.context) for b in rows]
        d_slope, d_intercept = np.polyfit(rows, dec, 1)
        for b, ms in zip(rows, dec):
            print(f"decode step, {b:3d} rows after {args.context} tokens: {ms:8.1f} ms {args.clock}")
        long = decode(16, 5 * args.context)
        print(f"decode step,  16 rows after {5 * args.context} tokens: {long:8.1f} ms {args.clock}")
    unit = slope  # ms per prompt token
    per_context = (long - dec[rows.index(16)]) / (16 * 4 * args.context)
    print(f"\none token of prefill: {unit:.3f} ms {args.clock} ({args.threads} thread(s))")
    print(f"fitted, in token units: forward {intercept / unit:.1f}, step {d_intercept / unit:.1f}, "
          f"step_row {d_slope / unit:.2f}, step_row_context {per_context / unit:.4f}")
    print(f"DecodeCost defaults:    {DecodeCost()}")


if __name__ == "__main__":
    main()
