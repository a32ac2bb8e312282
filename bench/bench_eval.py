"""Benchmark: `jmedllm eval` throughput per mode against naive baselines, on IgakuQA-ja text-only.

The prompts are the real ones (the runner's ``prepare_items``: alpaca family, Japanese,
text-only five-choice items of the 2022 exam), the model a ~60 M-parameter random Llama
(jmedllm.tiny preset "bench60m", float32, CPU). For every mode the same work is done twice:

  loglik / letter   engine (one packed row per question, tree attention mask) vs the naive
                    lm-evaluation-harness way (every prompt + choice its own sequence,
                    full logits, log_softmax); decisions must be identical.
  generate          engine (left-padded batches) vs one question at a time, as the reference
                    harness asks; outputs must be identical.

It also measures the float32 matmul peak (GFLOP/s) so that model FLOP/s is a ratio:
model FLOP/s = 2 * N * tokens / s, N = parameters without the input embedding (a lookup),
tokens = non-padding input positions fed through the model.

    JMEDLLM_DATA_ROOT=../shared/data .venv/bin/python bench/bench_eval.py --items 60
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import torch

from jmedllm.engines.hf import HFEngine
from jmedllm.evaluate import EvalConfig, prepare_items
from jmedllm.paths import resolve_data_root
from jmedllm.schema import GenerationParams, LoglikRequest
from jmedllm.tiny import build_tiny_model

_spec = importlib.util.spec_from_file_location("bench_engine_loglik", Path(__file__).with_name("bench_engine_loglik.py"))
_engine_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_engine_bench)
naive_scores, matmul_peak_gflops, decisions = (_engine_bench.naive_scores, _engine_bench.matmul_peak_gflops,
                                               _engine_bench.decisions)


def requests_for(items) -> list[LoglikRequest]:
    return [LoglikRequest(it.prompt, tuple(c for group in it.continuations for c in group)) for it in items]


def grouped_decisions(items, flat_scores: list[list[float]]) -> list[int]:
    """Per question the best choice; letter variants are combined with logsumexp."""
    out = []
    for it, flat in zip(items, flat_scores):
        per_choice, i = [], 0
        for group in it.continuations:
            per_choice.append(torch.logsumexp(torch.tensor(flat[i : i + len(group)]), 0).item())
            i += len(group)
        out.append(max(range(len(per_choice)), key=per_choice.__getitem__))
    return out


def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--model-dir", default=str(Path(tempfile.gettempdir()) / "jmedllm-bench60m"))
    parser.add_argument("--items", type=int, default=60, help="text-only five-choice items of IgakuQA 2022 (ja)")
    parser.add_argument("--modes", nargs="+", default=["loglik", "letter", "generate"])
    parser.add_argument("--naive-batch", type=int, default=8, help="rows per forward of the naive loglik baseline")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="as jmedllm eval's default")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    data_root = resolve_data_root(args.data_root)
    model_dir = build_tiny_model(args.model_dir, data_root, "bench60m")
    engine = HFEngine(model_dir, dtype="float32", device="cpu")
    n_matmul = engine.n_parameters - engine.model.get_input_embeddings().weight.numel()
    peak = matmul_peak_gflops()
    spec = f"igakuqa:2022:text_only=true:n_choices=5:limit={args.items}"
    print(f"model {model_dir}: {engine.n_parameters / 1e6:.1f} M parameters ({n_matmul / 1e6:.1f} M in matmuls); "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; float32 matmul peak {peak:.1f} GFLOP/s")
    print(f"items: {spec}, prompt family alpaca (ja)\n")
    header = f"| mode | method | items/s | speed-up | wall s | tokens | GFLOP/s | % of peak | same answers |"
    print(header)
    print("|---|---|---|---|---|---|---|---|---|")

    def row(mode, method, n, seconds, tokens, base_seconds, same):
        gflops = 2 * n_matmul * tokens / seconds / 1e9
        print(f"| {mode} | {method} | {n / seconds:.2f} | {base_seconds / seconds:.2f}x | {seconds:.1f} | {tokens} | "
              f"{gflops:.1f} | {100 * gflops / peak:.0f} % | {same} |", flush=True)

    for mode in args.modes:
        cfg = EvalConfig(model=str(model_dir), benchmarks=[spec], mode=mode, prompt="alpaca", out="-")
        items = prepare_items(cfg, data_root, engine.format_chat).items
        if mode in ("loglik", "letter"):
            reqs = requests_for(items)
            engine.loglikelihoods(reqs[:2])  # warm-up
            (naive, n_tok, _), t_naive = timed(lambda: naive_scores(engine, reqs, args.naive_batch))
            engine.stats.reset()
            result, t_engine = timed(lambda: engine.loglikelihoods(reqs))
            ours = [[s.logprob for s in r] for r in result]
            same = grouped_decisions(items, ours) == grouped_decisions(items, naive)
            row(mode, "naive (each prompt+choice alone)", len(items), t_naive, n_tok, t_naive, "–")
            row(mode, "jmedllm engine", len(items), t_engine, engine.stats.tokens, t_naive, "yes" if same else "NO")
            if not same:
                raise SystemExit(f"{mode}: decisions differ from the naive baseline")
        else:
            params = GenerationParams(max_new_tokens=args.max_new_tokens)
            prompts = [it.prompt for it in items]
            engine.generate(prompts[:2], params)  # warm-up
            engine.stats.reset()
            one_by_one, t_single = timed(lambda: [engine.generate([p], params)[0] for p in prompts])
            single_tokens = engine.stats.tokens
            engine.stats.reset()
            batched, t_batched = timed(lambda: engine.generate(prompts, params))
            same = [c.text for c in one_by_one] == [c.text for c in batched]
            row(mode, "one question at a time", len(items), t_single, single_tokens, t_single, "–")
            row(mode, "jmedllm engine (batched)", len(items), t_batched, engine.stats.tokens, t_single,
                "yes" if same else "NO")
            if not same:
                raise SystemExit("generate: batched outputs differ from one-at-a-time outputs")
    print(f"\nfloat32 matmul peak after the runs: {matmul_peak_gflops():.1f} GFLOP/s")


if __name__ == "__main__":
    main()
