"""Benchmark: jmedllm's HF engine against lm-evaluation-harness (HFLM) on the same requests.

Same process, same model object kind, same threads, same prompts and continuations:

* the prompts are jmedllm's own (the runner's ``prepare_items``: alpaca family, IgakuQA-ja
  2022 text-only five-choice items; 3-shot with ``shared_shots``, the same exemplars for
  every question);
* lm-eval gets them as ``Instance`` requests, exactly what its tasks hand to
  ``HFLM.loglikelihood`` / ``HFLM.generate_until`` (a task's only other work is building
  these strings), with its default best settings (``logits_cache`` on: one forward per
  context for single-token continuations) and its fastest batch size among
  ``--lmeval-batch-sizes`` (tuned on a slice of the same mode and shots first, never below
  its best; ``--tune-once``: per mode, on the first shots setting);
* before anything is timed, every (context, continuation) pair is tokenised by lm-eval's
  own ``_encode_pair`` and by jmedllm's ``encode_request``, and the ids must be identical;
* the two are timed in alternation (lm-eval, jmedllm, lm-eval, jmedllm, ...), so that a
  burst of load from other processes hits both; the best and the median of ``--repeats``
  runs are reported, the ratio of the medians, and the range of the per-pair ratios (run
  i of each side, back to back: how far the machine's drift moves one comparison). The load average is printed before
  and after. jmedllm's prefix cache is cleared before each of its runs (the prefix is
  computed inside every timed run).

Modes: ``loglik`` (choice texts), ``letter`` (a/A/ａ/Ａ per choice, one token each),
``generate`` (greedy, ``--max-new-tokens``, the same stop string for both: ``--stop``, by
default one the bench model never writes, so every row runs to the end; a string it does
write makes rows finish at different steps, as a real model's answers do). Agreement:
per item the same decision (loglik: argmax of summed log-probabilities; letter: of the
logsumexp over the spellings; generate: the same text), and the largest log-probability
difference. ``--bf16`` adds jmedllm in bfloat16 against its own float32 scores.

    JMEDLLM_DATA_ROOT=/work/shared/data PYTHONPATH=src python bench/vs_lmeval.py --items 60

Needs the ``bench`` extra (``pip install -e ".[bench]"``: lm-eval).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from jmedllm.engines.hf import HFEngine
from jmedllm.engines.prefix_sharing import encode_request
from jmedllm.evaluate import EvalConfig, prepare_items
from jmedllm.paths import resolve_data_root
from jmedllm.schema import GenerationParams, LoglikRequest
from jmedllm.tiny import TinySpec, build_tiny_model

#: the tiny Llama of issue 14: 8k vocabulary, hidden 768, 8 layers (~60 M parameters)
SPEC = TinySpec(vocab_size=8000, hidden_size=768, intermediate_size=2048, num_hidden_layers=8,
                num_attention_heads=12, num_key_value_heads=12)
STOP = "\n\n###"  # the alpaca family's next section header: where an answer ends


def load_text() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def prepared(model_dir: Path, data_root: Path, mode: str, shots: int, items: int):
    cfg = EvalConfig(model=str(model_dir), benchmarks=[f"igakuqa:2022:text_only=true:n_choices=5:limit={items}"],
                     mode=mode, prompt="alpaca", out="-", shots=shots, shared_shots=shots > 0)
    return prepare_items(cfg, data_root, None).items


def check_identical_requests(lm, engine: HFEngine, items) -> int:
    """Every (context, continuation) pair: lm-eval's token ids == jmedllm's. Returns the number of pairs."""
    n = 0
    for i, it in enumerate(items):
        conts = [c for g in it.continuations for c in g]
        enc = encode_request(i, it.prompt, conts, engine.encode, engine.max_length)
        for j, cont in enumerate(conts):
            ctx_ids, cont_ids = lm._encode_pair(it.prompt, cont)
            if list(enc.context) != list(ctx_ids) or list(enc.continuations[j]) != list(cont_ids):
                raise SystemExit(f"item {it.key}, continuation {cont!r}: lm-eval and jmedllm tokenise differently")
            n += 1
    return n


def lmeval_loglik(lm, items) -> list[list[float]]:
    from lm_eval.api.instance import Instance

    instances, shape = [], []
    for it in items:
        conts = [c for g in it.continuations for c in g]
        shape.append(len(conts))
        instances += [Instance("loglikelihood", {}, (it.prompt, c), j) for j, c in enumerate(conts)]
    flat = [lp for lp, _ in lm.loglikelihood(instances, disable_tqdm=True)]
    out, k = [], 0
    for n in shape:
        out.append(flat[k : k + n])
        k += n
    return out


def jmedllm_loglik(engine: HFEngine, items) -> list[list[float]]:
    engine.prefix_cache.clear()
    requests = [LoglikRequest(it.prompt, tuple(c for g in it.continuations for c in g)) for it in items]
    return [[s.logprob for s in row] for row in engine.loglikelihoods(requests)]


def decisions(items, flat_scores: list[list[float]]) -> list[int]:
    """Per item the best choice; spellings of one choice (letter mode) combined with logsumexp."""
    out = []
    for it, flat in zip(items, flat_scores):
        per_choice, i = [], 0
        for group in it.continuations:
            vals = flat[i : i + len(group)]
            m = max(vals)
            per_choice.append(m + math.log(sum(math.exp(v - m) for v in vals)))
            i += len(group)
        out.append(max(range(len(per_choice)), key=per_choice.__getitem__))
    return out


def lmeval_generate(lm, prompts: list[str], max_new_tokens: int, stop: str = STOP) -> list[str]:
    from lm_eval.api.instance import Instance

    kwargs = {"until": [stop], "max_gen_toks": max_new_tokens, "do_sample": False}
    instances = [Instance("generate_until", {}, (p, dict(kwargs)), 0) for p in prompts]
    return lm.generate_until(instances, disable_tqdm=True)


def jmedllm_generate(engine: HFEngine, prompts: list[str], max_new_tokens: int, stop: str = STOP) -> list[str]:
    engine.prefix_cache.clear()  # every timed run computes its prefix states, as lm-eval does
    params = GenerationParams(max_new_tokens=max_new_tokens, stop=(stop,))
    return [c.text for c in engine.generate(prompts, params)]


CPU_SECONDS: dict[str, list[float]] = {}  # process CPU seconds per run, by side (see alternate)


def alternate(runs: dict, repeats: int) -> dict[str, tuple[list[float], object]]:
    """Time each named callable ``repeats`` times in alternation; (wall seconds per run, last result).

    Process CPU seconds per run go to ``CPU_SECONDS[name]``: on a loaded machine wall time
    includes waiting for a core, CPU time does not (it does include OpenMP spin-waits).
    """
    out: dict[str, tuple[list[float], object]] = {name: ([], None) for name in runs}
    for name in runs:
        CPU_SECONDS[name] = []
    for _ in range(repeats):
        for name, fn in runs.items():
            t0, c0 = time.perf_counter(), time.process_time()
            result = fn()
            out[name][0].append(time.perf_counter() - t0)
            CPU_SECONDS[name].append(time.process_time() - c0)
            out[name] = (out[name][0], result)
    return out


def tune_batch_size(lm, candidates: list[int], fn, rounds: int = 1) -> tuple[int, dict[int, float]]:
    """lm-eval's fastest batch size on ``fn`` (a slice of the work), each timed ``rounds`` times in alternation."""
    times: dict[int, list[float]] = {b: [] for b in candidates}
    for _ in range(rounds):
        for b in candidates:
            lm.batch_size_per_gpu = b
            t0 = time.perf_counter()
            fn()
            times[b].append(time.perf_counter() - t0)
    best = {b: min(t) for b, t in times.items()}
    return min(best, key=best.get), best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--model-dir", default=str(Path(tempfile.gettempdir()) / "jmedllm-bench-issue14"))
    parser.add_argument("--items", type=int, default=60, help="IgakuQA-ja 2022 text-only five-choice items")
    parser.add_argument("--modes", nargs="+", default=["loglik", "letter", "generate"])
    parser.add_argument("--shots", nargs="+", type=int, default=[0, 3])
    parser.add_argument("--repeats", type=int, default=3, help="alternating timed runs of each side")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lmeval-batch-sizes", nargs="+", type=int, default=[8, 16, 32],
                        help="lm-eval batch sizes to tune over (per mode, on a slice); its fastest is used")
    parser.add_argument("--tune-items", type=int, default=32,
                        help="items of the first shot setting on which lm-eval's batch size is tuned, per mode "
                             "(at least the largest candidate batch, or the candidates do the same work)")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--tune-once", action="store_true",
                        help="tune lm-eval's batch size once per mode, on the first --shots setting (faster; "
                             "runs before 2026-11-30 08:00 did this), not per mode and shots")
    parser.add_argument("--stop", default=STOP,
                        help="generation's stop string for both sides (the bench model never writes the default; "
                             "a string it writes makes rows finish at different steps, as a real model's do)")
    parser.add_argument("--bf16", action="store_true", help="also jmedllm in bfloat16 vs its float32 scores")
    parser.add_argument("--json", default=None, help="write all timings and agreements here")
    args = parser.parse_args()
    if args.tune_items < max(args.lmeval_batch_sizes):
        parser.error(f"--tune-items {args.tune_items} is below the largest lm-eval batch size "
                     f"{max(args.lmeval_batch_sizes)}: those candidates would all run one batch")

    torch.set_num_threads(args.threads)
    from lm_eval.models.huggingface import HFLM
    import lm_eval
    import transformers

    data_root = resolve_data_root(args.data_root)
    model_dir = build_tiny_model(args.model_dir, data_root, SPEC)
    engine = HFEngine(model_dir, dtype="float32", device="cpu")
    lm = HFLM(pretrained=str(model_dir), device="cpu", dtype="float32", batch_size=args.lmeval_batch_sizes[0])
    bf16 = HFEngine(model_dir, dtype="bfloat16", device="cpu") if args.bf16 else None
    print(f"model {model_dir}: {engine.n_parameters / 1e6:.1f} M parameters, float32, CPU, "
          f"{torch.get_num_threads()} threads; torch {torch.__version__}, transformers {transformers.__version__}, "
          f"lm-eval {lm_eval.__version__}")
    print(f"load average before: {load_text()} ({os.cpu_count()} CPUs)")
    print(f"items: IgakuQA-ja 2022 text-only five-choice, first {args.items}; prompts alpaca; "
          f"{args.repeats} alternating runs per side\n")
    report: list[dict] = []
    tuned: dict[tuple, tuple[int, dict[int, float]]] = {}  # per mode and shots (--tune-once: per mode)
    print("| mode | shots | lm-eval batch | lm-eval wall s (best / median) | jmedllm wall s (best / median) | "
          "speed-up (median wall) | per alternating pair | speed-up (median CPU s) | same decisions | max abs dlogp |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for shots in args.shots:
        for mode in args.modes:
            items = prepared(model_dir, data_root, "generate" if mode == "generate" else mode, shots, args.items)
            rows_ending = ""  # generate with --stop: how the rows ended
            if mode == "generate":
                prompts = [it.prompt for it in items]
                n = args.max_new_tokens
                stop = args.stop
                key = (mode,) if args.tune_once else (mode, shots)
                if key not in tuned:
                    tuned[key] = tune_batch_size(lm, args.lmeval_batch_sizes,
                                                 lambda: lmeval_generate(lm, prompts[: args.tune_items], n, stop))
                bs, tuning = tuned[key]
                lm.batch_size_per_gpu = bs
                jmedllm_generate(engine, prompts[:2], n, stop)  # warm-up
                runs = alternate({"lm-eval": lambda: lmeval_generate(lm, prompts, n, stop),
                                  "jmedllm": lambda: jmedllm_generate(engine, prompts, n, stop)}, args.repeats)
                theirs, ours = runs["lm-eval"][1], runs["jmedllm"][1]
                same = sum(a.strip() == b.strip() for a, b in zip(theirs, ours))
                diff = "–"
                if stop != STOP:  # how the rows ended (untimed): the workload the stop string makes
                    ends = engine.generate(prompts, GenerationParams(max_new_tokens=n, stop=(stop,)))
                    tokens = sorted(c.n_completion_tokens for c in ends if c.finish_reason == "stop")
                    rows_ending = (f"{len(tokens)} / {len(ends)} rows stop before {n} tokens"
                                   + (f" (median {statistics.median(tokens):g})" if tokens else ""))
            else:
                n_pairs = check_identical_requests(lm, engine, items)
                key = (mode,) if args.tune_once else (mode, shots)
                if key not in tuned:
                    tuned[key] = tune_batch_size(lm, args.lmeval_batch_sizes,
                                                  lambda: lmeval_loglik(lm, items[: args.tune_items]))
                bs, tuning = tuned[key]
                lm.batch_size_per_gpu = bs
                jmedllm_loglik(engine, items[:2])  # warm-up
                runs = alternate({"lm-eval": lambda: lmeval_loglik(lm, items),
                                  "jmedllm": lambda: jmedllm_loglik(engine, items)}, args.repeats)
                theirs, ours = runs["lm-eval"][1], runs["jmedllm"][1]
                same = sum(a == b for a, b in zip(decisions(items, theirs), decisions(items, ours)))
                diff = f"{max(abs(a - b) for ra, rb in zip(theirs, ours) for a, b in zip(ra, rb)):.1e}"
            t_lm, t_us = runs["lm-eval"][0], runs["jmedllm"][0]
            ratio = statistics.median(t_lm) / statistics.median(t_us)
            pairs = [a / b for a, b in zip(t_lm, t_us)]  # run i of each side ran back to back
            c_lm, c_us = CPU_SECONDS["lm-eval"], CPU_SECONDS["jmedllm"]
            cpu_ratio = statistics.median(c_lm) / statistics.median(c_us)
            print(f"| {mode} | {shots} | {bs} | {min(t_lm):.2f} / {statistics.median(t_lm):.2f} | "
                  f"{min(t_us):.2f} / {statistics.median(t_us):.2f} | **{ratio:.2f}×** | "
                  f"{min(pairs):.2f}–{max(pairs):.2f}× | {cpu_ratio:.2f}× "
                  f"({statistics.median(c_lm):.1f} / {statistics.median(c_us):.1f}) | {same} / {len(items)} | "
                  f"{rows_ending or diff} |", flush=True)
            entry = {"mode": mode, "shots": shots, "items": len(items), "lmeval_batch_size": bs,
                     "lmeval_batch_tuning_s": tuning, "lmeval_s": t_lm, "jmedllm_s": t_us, "speedup_median": ratio,
                     "speedup_pairs": pairs,
                     "lmeval_cpu_s": c_lm, "jmedllm_cpu_s": c_us, "speedup_median_cpu": cpu_ratio,
                     "same": same, "max_abs_dlogp": diff, "load_after": load_text()}
            if mode == "generate" and rows_ending:
                entry["rows_ending"] = rows_ending
            if mode != "generate":
                entry["pairs_checked_identical"] = n_pairs
            if bf16 is not None and mode != "generate":
                low_runs = alternate({"bf16": lambda: jmedllm_loglik(bf16, items)}, 1)
                low = low_runs["bf16"][1]
                drift = [abs(a - b) for ra, rb in zip(low, ours) for a, b in zip(ra, rb)]
                agree = sum(a == b for a, b in zip(decisions(items, low), decisions(items, ours)))
                entry["bf16"] = {"seconds": low_runs["bf16"][0][0], "max_drift": max(drift),
                                 "mean_drift": sum(drift) / len(drift), "same_decisions": agree}
                entry["bf16"]["cpu_seconds"] = CPU_SECONDS["bf16"][0]
                print(f"| {mode} bf16 | {shots} | – | – | {low_runs['bf16'][0][0]:.2f} | vs fp32 jmedllm: "
                      f"{statistics.median(t_us) / low_runs['bf16'][0][0]:.2f}× | – | "
                      f"{statistics.median(c_us) / CPU_SECONDS['bf16'][0]:.2f}× | {agree} / {len(items)} vs fp32 | "
                      f"drift max {max(drift):.2e}, mean {sum(drift) / len(drift):.2e} |", flush=True)
            report.append(entry)
            if args.json:
                Path(args.json).write_text(json.dumps(report, indent=1))
    print(f"\nload average after: {load_text()}")


if __name__ == "__main__":
    main()
