"""SFT throughput and memory: TRL's default padded batches vs padding-free vs packed, same model and data.

    python bench/bench_sft.py --data-root ../shared/data [--preset demo] [--examples 128] [--max-length 512]

Each batching mode runs in its own process (so that peak memory is its own) through the public
API ``jmedllm.train.run_sft`` on a tiny real model (jmedllm.tiny preset) and the same YakugakuQA
instruction data (alpaca family; answers as choice text by default). Measured inside ``Trainer.train`` only:

- wall time, tokens/s of *real* tokens (prompt + completion, no padding) and of computed positions;
- peak RSS above the RSS at the start of training (sampled every 20 ms with psutil), and ru_maxrss;
- the loss of every optimizer step. ``padded`` and ``padding_free`` see the same examples in the same
  steps, so their loss curves must agree (the maximum difference is printed); so must ``packed``
  (rows kept as a batch, our layout for sdpa / eager) and ``packed_flat`` (TRL's flattening of the
  batch into one sequence, its layout for FlashAttention). Packed modes put more examples in a step
  (rows of ``max_length``), so they take fewer steps per epoch.

The result is printed as a table and written as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

MODES = ("padded", "padding_free", "packed", "packed_flat")


def worker(args: argparse.Namespace) -> dict:
    import psutil
    from transformers import TrainerCallback

    from jmedllm.tiny import build_tiny_model
    from jmedllm.train import load_recipe, run_sft

    model_dir = build_tiny_model(Path(args.work) / f"model-{args.preset}", args.data_root, args.preset)
    proc = psutil.Process()
    state: dict = {"real": 0, "positions": 0, "peak": 0}

    class Measure(TrainerCallback):
        def on_train_begin(self, a, s, c, model=None, **kw):
            def count(module, pos, kwargs):
                ids = kwargs["input_ids"]
                state["positions"] += ids.numel()
                if "attention_mask" in kwargs:
                    state["real"] += int(kwargs["attention_mask"].sum())
                else:  # padding-free: one row of real tokens (TRL pads it only to pad_to_multiple_of, unset here)
                    state["real"] += ids.numel()

            model.register_forward_pre_hook(count, with_kwargs=True)
            state["rss0"] = proc.memory_info().rss
            state["stop"] = False

            def sample():
                while not state["stop"]:
                    state["peak"] = max(state["peak"], proc.memory_info().rss)
                    time.sleep(0.02)

            state["thread"] = threading.Thread(target=sample, daemon=True)
            state["thread"].start()
            state["t0"] = time.perf_counter()

        def on_train_end(self, a, s, c, **kw):
            state["seconds"] = time.perf_counter() - state["t0"]
            state["stop"] = True
            state["thread"].join()

    recipe = load_recipe("tiny-sft", [
        f"model.name_or_path={model_dir}", f"output_dir={Path(args.work) / args.mode}",
        "contamination.enabled=false",
        f"instructions.sources=[{{benchmark: yakugakuqa, answer_style: {args.answer_style}, limit: {args.examples}}}]",
        f"instructions.max_length={args.max_length}",
        f"instructions.batching={'packed' if args.mode.startswith('packed') else args.mode}",
        f"training.packed_layout={'flat' if args.mode == 'packed_flat' else 'rows'}",
        "instructions.overlong=drop", "training.max_steps=-1", "training.epochs=1",
        f"training.batch_size={args.batch_size}", "training.logging_steps=1", "training.save_steps=100000",
        f"training.learning_rate={args.lr}", "lora.target_modules=all-linear",
    ])
    out = run_sft(recipe, data_root=args.data_root, overwrite=True, callbacks=[Measure()])
    record = json.loads((out / "jmedllm_train.json").read_text())
    losses = [h["loss"] for h in record["training"]["log_history"] if "loss" in h]
    return {
        "mode": args.mode,
        "preset": args.preset,
        "examples": record["data"]["examples"],
        "dropped_overlong": len(record["data"]["dropped_overlong"]),
        "truncated_completions": record["data"]["truncated_completions"],
        "rows": record["data"]["rows"],
        "steps": record["training"]["global_step"],
        "seconds": round(state["seconds"], 3),
        "real_tokens": state["real"],
        "positions": state["positions"],
        "real_tokens_per_s": round(state["real"] / state["seconds"], 1),
        "positions_per_s": round(state["positions"] / state["seconds"], 1),
        "peak_rss_over_start_mb": round((state["peak"] - state["rss0"]) / 2**20, 1),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "losses": losses,
        "mean_loss": sum(losses) / len(losses),
        "torch_threads": __import__("torch").get_num_threads(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default=os.environ.get("JMEDLLM_DATA_ROOT", "../shared/data"))
    p.add_argument("--preset", default="demo", help="jmedllm.tiny preset (test, demo, bench60m)")
    p.add_argument("--examples", type=int, default=128)
    p.add_argument("--max-length", type=int, default=1024,
                   help="long enough that no example is cut, so that every mode trains on the same tokens")
    p.add_argument("--answer-style", default="text", choices=["text", "letter", "explanation"])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--out", default="bench_sft.json")
    p.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    p.add_argument("--mode", help=argparse.SUPPRESS)  # worker process
    args = p.parse_args()
    if args.mode:
        print("RESULT " + json.dumps(worker(args)))
        return
    work = args.work or tempfile.mkdtemp(prefix="bench_sft_")
    results = []
    for mode in args.modes.split(","):
        cmd = [sys.executable, __file__, "--mode", mode, "--work", work, "--data-root", str(args.data_root),
               "--preset", args.preset, "--examples", str(args.examples), "--max-length", str(args.max_length),
               "--batch-size", str(args.batch_size), "--lr", str(args.lr), "--answer-style", args.answer_style]
        done = subprocess.run(cmd, capture_output=True, text=True)
        line = next((l for l in done.stdout.splitlines() if l.startswith("RESULT ")), None)
        if done.returncode or line is None:
            sys.exit(f"{mode} failed:\n{done.stderr[-3000:]}")
        results.append(json.loads(line[len("RESULT "):]))
    print(f"{'mode':13s} {'steps':>5s} {'rows':>5s} {'sec':>7s} {'real tok/s':>10s} {'pos/s':>8s} "
          f"{'peak MB':>8s} {'maxrss MB':>9s} {'mean loss':>9s}")
    for r in results:
        print(f"{r['mode']:13s} {r['steps']:5d} {r['rows']:5d} {r['seconds']:7.1f} {r['real_tokens_per_s']:10.0f} "
              f"{r['positions_per_s']:8.0f} {r['peak_rss_over_start_mb']:8.0f} {r['max_rss_mb']:9.0f} {r['mean_loss']:9.4f}")
    by = {r["mode"]: r for r in results}
    for x, y in (("padded", "padding_free"), ("packed", "packed_flat")):
        if x in by and y in by:
            a, b = by[x]["losses"], by[y]["losses"]
            diff = max(abs(u - v) for u, v in zip(a, b)) if len(a) == len(b) else float("nan")
            print(f"{x} vs {y}: {len(a)} / {len(b)} steps, max |loss difference| = {diff:.2e}")
    for r in results:
        print(f"{r['mode']:13s} losses: " + " ".join(f"{x:.3f}" for x in r["losses"]))
    Path(args.out).write_text(json.dumps({"args": {k: v for k, v in vars(args).items() if k != "mode"},
                                          "results": results}, indent=1))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
