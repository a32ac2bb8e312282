"""Benchmark: prefix-shared log-likelihood scoring vs scoring every (prompt + choice) alone.

On a ~60M-parameter random Llama (jmedllm.tiny preset "bench60m", float32, CPU by default)
and real five-choice IgakuQA prompts, it times three ways of scoring the same requests:

  naive       lm-evaluation-harness style: each prompt + choice its own right-padded row,
              full-vocabulary logits at every position, log_softmax, slice the choice;
  per-seq     HFEngine(loglik_strategy="per_sequence"): each prompt + choice its own
              left-padded row, logits only for the scored tail;
  shared      HFEngine (default): one packed row per question, tree attention mask.

in two modes: "letter" (continuations a..e after "答え：") and "text" (the choice texts).
All three must pick the same choice for every question (checked). It also measures the
float32 matmul peak of the machine and reports model FLOP/s = 2 * N * tokens / s, where
tokens are the non-padding input tokens and N the parameters minus the input embedding
(a lookup, no matmul) — an upper bound on useful work, as the output projection is only
applied at scored positions in per-seq and shared.

    JMEDLLM_DATA_ROOT=/work/shared/data PYTHONPATH=src python bench/bench_engine_loglik.py
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from jmedllm.engines.hf import HFEngine
from jmedllm.engines.prefix_sharing import encode_request
from jmedllm.paths import resolve_data_root
from jmedllm.schema import LETTERS, LoglikRequest
from jmedllm.tiny import build_tiny_model

EXAM_FILE = Path("igakuqa/data/2022/116-A.jsonl")


def load_questions(data_root: Path, n: int) -> list[dict]:
    path = data_root / EXAM_FILE
    out = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if len(row.get("choices", [])) == 5:
            out.append(row)
        if len(out) == n:
            break
    if len(out) < n:
        raise SystemExit(f"{path}: only {len(out)} five-choice questions, {n} asked")
    return out


def prompt_of(q: dict) -> str:
    lines = ["以下は医師国家試験の問題である。正しい選択肢を選べ。", "", f"問題：{q['problem_text']}"]
    lines += [f"{LETTERS[i]}. {c}" for i, c in enumerate(q["choices"])]
    lines.append("答え：")
    return "\n".join(lines)


def build_requests(questions: list[dict], mode: str) -> list[LoglikRequest]:
    if mode == "letter":
        return [LoglikRequest(prompt_of(q), tuple(LETTERS[:5])) for q in questions]
    return [LoglikRequest(prompt_of(q), tuple(q["choices"])) for q in questions]


def naive_scores(engine: HFEngine, requests: list[LoglikRequest], batch_size: int) -> tuple[list[list[float]], int, int]:
    """lm-evaluation-harness style scoring with the same token ids as the engine.

    Returns scores, non-padding input tokens, forward passes.
    """
    items = []
    for i, r in enumerate(requests):
        enc = encode_request(i, r.context, r.continuations, engine.encode, engine.max_length)
        for j, cont in enumerate(enc.continuations):
            items.append((i, j, list(enc.context), list(cont)))
    items.sort(key=lambda it: -(len(it[2]) + len(it[3])))
    scores = [[0.0] * len(r.continuations) for r in requests]
    tokens = forwards = 0
    model = engine.model
    for start in range(0, len(items), batch_size):
        batch = items[start : start + batch_size]
        seqs = [(ctx + cont)[:-1] for _, _, ctx, cont in batch]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), engine.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for b, s in enumerate(seqs):
            ids[b, : len(s)] = torch.tensor(s)
            mask[b, : len(s)] = 1
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=mask).logits
            logprobs = torch.log_softmax(logits.float(), dim=-1)
        forwards += 1
        tokens += sum(len(s) for s in seqs)
        for b, (i, j, ctx, cont) in enumerate(batch):
            positions = torch.arange(len(ctx) - 1, len(ctx) + len(cont) - 1)
            scores[i][j] = logprobs[b, positions, torch.tensor(cont)].sum().item()
    return scores, tokens, forwards


def engine_scores(engine: HFEngine, requests: list[LoglikRequest]) -> tuple[list[list[float]], int, int]:
    """Scores, non-padding input tokens and forward passes of one engine call."""
    engine.stats.reset()
    result = engine.loglikelihoods(requests)
    return [[s.logprob for s in row] for row in result], engine.stats.tokens, engine.stats.forward_passes


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def decisions(scores: list[list[float]]) -> list[int]:
    return [max(range(len(row)), key=row.__getitem__) for row in scores]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--model-dir", default=str(Path(tempfile.gettempdir()) / "jmedllm-bench60m"))
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=8, help="rows per forward pass of the naive baseline")
    parser.add_argument("--modes", nargs="+", default=["letter", "text"], choices=["letter", "text"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=1, help="time each method this many times, keep the fastest")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    data_root = resolve_data_root(args.data_root)
    model_dir = build_tiny_model(args.model_dir, data_root, "bench60m")
    questions = load_questions(data_root, args.questions)
    # the engines run with their default batching policy (batch_size="auto"; on CPU batches
    # stop growing before padding exceeds 10 %), the naive baseline with fixed batches
    shared = HFEngine(model_dir, dtype="float32", device=args.device)
    per_seq = HFEngine(model_dir, dtype="float32", device=args.device, loglik_strategy="per_sequence")
    hf = shared.model
    n_params = shared.n_parameters
    n_matmul = n_params - hf.get_input_embeddings().weight.numel()
    peak = matmul_peak_gflops()
    print(f"model: {model_dir} ({n_params / 1e6:.1f} M parameters, {n_matmul / 1e6:.1f} M without input embedding)")
    print(f"machine: torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
          f"float32 matmul peak {peak:.1f} GFLOP/s (2048x2048, best of 5)")
    print(f"{args.questions} questions from {EXAM_FILE}, 5 choices each; naive: {args.batch_size} rows per forward, "
          f"engines: batch_size auto, max_padding_fraction {shared.max_padding_fraction}; "
          f"best of {args.repeats} (wall time)\n")

    header = (f"{'mode':6} {'method':8} {'items/s':>8} {'speedup':>8} {'wall s':>7} {'cpu s':>7} {'fwd':>5} "
              f"{'tokens':>7} {'GFLOP/s':>8} {'% peak':>7}  decisions")
    print(header)
    print("-" * len(header))
    for mode in args.modes:
        requests = build_requests(questions, mode)
        # warm-up (allocator, kernels) on a few requests, not timed
        naive_scores(shared, requests[:2], args.batch_size)
        shared.loglikelihoods(requests[:2])
        per_seq.loglikelihoods(requests[:2])

        methods = {
            "naive": lambda: naive_scores(shared, requests, args.batch_size),
            "per-seq": lambda: engine_scores(per_seq, requests),
            "shared": lambda: engine_scores(shared, requests),
        }
        best: dict[str, tuple] = {}
        for _ in range(args.repeats):  # interleaved, so that a burst of load hits every method alike
            for name, run in methods.items():
                t0, c0 = time.perf_counter(), time.process_time()
                scores, tokens, forwards = run()
                seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
                if name not in best or seconds < best[name][1]:
                    best[name] = (name, seconds, cpu, forwards, tokens, scores)
        rows = list(best.values())
        naive = best["naive"][5]

        reference = decisions(naive)
        base_seconds = rows[0][1]
        for name, seconds, cpu, forwards, tokens, scores in rows:
            same = decisions(scores) == reference
            max_diff = max(abs(a - b) for ra, rb in zip(scores, naive) for a, b in zip(ra, rb))
            gflops = 2 * n_matmul * tokens / seconds / 1e9
            print(f"{mode:6} {name:8} {len(requests) / seconds:8.2f} {base_seconds / seconds:7.2f}x {seconds:7.2f} "
                  f"{cpu:7.2f} {forwards:5d} {tokens:7d} {gflops:8.1f} {100 * gflops / peak:6.1f}%  "
                  f"{'same' if same else 'DIFFERENT'} (max |dlogp| {max_diff:.1e})")
            if not same:
                raise SystemExit(f"{mode}/{name}: decisions differ from the naive baseline")
    print(f"\nfloat32 matmul peak after the runs: {matmul_peak_gflops():.1f} GFLOP/s "
          f"(a drop means other processes shared the cores); OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")


if __name__ == "__main__":
    main()
