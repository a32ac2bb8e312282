"""Benchmark: the HF engine's CPU batch plans, each against its alternatives, on the lm-eval bench set.

Same model and items as ``bench/vs_lmeval.py`` (the tiny Llama of issue 14, the first
``--items`` IgakuQA-ja 2022 text-only five-choice items, alpaca prompts, 0-shot unless
``--shots``), one process, runs alternated ``--repeats`` times, median wall seconds:

* log-likelihood forwards: the cost plan (``batching.plan_scoring_batches``) with a forward's
  fixed cost set to each of ``--forward-costs`` token units (the engine's default is
  ``DecodeCost.forward``), and the plain 10 % padding budget
  (``max_padding_fraction=0.1``); forwards, padded and real tokens per plan, and the largest
  log-probability difference to the first plan;
* generation: the CPU path (every prompt but its last token prefilled without padding between
  prompts, then decoded from one static cache per decode batch) against left-padded batches
  with a dynamic cache (``static_generation_cache=False``); the texts must be identical;
* the last layer's MLP only on columns whose logits are read (``engines/hf_trim.py``) against
  the whole MLP, one engine switched in alternation, for log-likelihoods and generation:
  median wall and process CPU seconds, and the largest score difference / same texts;
* decode attention: the CPU kernel (``engines/cpu_decode_attention.py``: each row reads its
  own filled columns), SDPA by row groups (``engines/hf_decode_groups.py``: attention per
  group of rows of similar length, one decode batch, kept cache storage) and plain SDPA over
  the left-padded static cache (its own decode plan, the same ``max_cache_bytes``), one engine
  switched in alternation: median wall and CPU seconds, decode batches, same texts;
* packed forwards (``engines/hf_packed.py``: a call's sequences in unpadded rows of up to
  ``--pack-tokens`` tokens, attention per sequence) against the padded forwards of the cost
  plan, for log-likelihoods and generation, one engine switched in alternation: median wall
  and CPU seconds, forwards, the largest score difference / same texts. (The log-likelihood
  plans above are those of padded forwards: that engine has packing switched off.)
* finished rows leaving the decode batch (``engines/hf_retire.py``) against the whole batch
  decoded to its last row's end, one engine switched in alternation, with ``--stop`` as the
  stop string (the bench model never writes the default, so rows only finish early with one
  it writes, e.g. ``--stop 。``): median wall and CPU seconds, rows retired, how the rows
  ended, same texts.

    JMEDLLM_DATA_ROOT=../shared/data .venv/bin/python bench/bench_cpu_plans.py --items 60 --repeats 3
    ... bench_cpu_plans.py --items 60 --repeats 3 --skip loglik generate trim packed retire  # decode attention alone
    ... bench_cpu_plans.py --items 60 --repeats 3 --skip loglik generate trim groups   # packing alone
    ... bench_cpu_plans.py --items 60 --repeats 3 --skip loglik generate trim groups packed --stop 。  # retiring
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vs_lmeval import SPEC, STOP, jmedllm_generate, jmedllm_loglik, load_text, prepared  # noqa: E402

from jmedllm.engines.hf import HFEngine  # noqa: E402
from jmedllm.paths import resolve_data_root  # noqa: E402
from jmedllm.schema import GenerationParams  # noqa: E402
from jmedllm.tiny import build_tiny_model  # noqa: E402


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def alternate_settings(settings: dict, fn, repeats: int, after=None) -> tuple[dict, dict, dict]:
    """Each of ``settings`` (key -> a function applying it to the engine) in turn, ``repeats``
    times: apply it, run ``fn``, then ``after(key)`` (to read the engine's stats). Per key: wall
    seconds and process CPU seconds of every run, and the last run's output."""
    walls: dict = {key: [] for key in settings}
    cpus: dict = {key: [] for key in settings}
    outs: dict = {}
    for _ in range(repeats):
        for key, apply in settings.items():
            apply()
            c = time.process_time()
            seconds, outs[key] = timed(fn)
            cpus[key].append(time.process_time() - c)
            walls[key].append(seconds)
            if after is not None:
                after(key)
    return walls, cpus, outs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--model-dir", default=str(Path(tempfile.gettempdir()) / "jmedllm-bench-issue14"))
    parser.add_argument("--items", type=int, default=60)
    parser.add_argument("--shots", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--forward-costs", nargs="+", type=float, default=[15, 40, 100, 300])
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["loglik", "generate", "trim", "groups", "packed", "retire"])
    parser.add_argument("--stop", default=STOP, help="the stop string of the retiring comparison")
    parser.add_argument("--pack-tokens", nargs="+", type=int, default=[1024, 2048, 4096])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data_root = resolve_data_root(args.data_root)
    model_dir = build_tiny_model(args.model_dir, data_root, SPEC)
    print(f"load average before: {load_text()} ({os.cpu_count()} CPUs); {args.threads} threads; "
          f"{args.items} items, {args.shots}-shot, {args.repeats} alternating runs, median wall s\n")

    if "loglik" not in args.skip:
        items = prepared(model_dir, data_root, "loglik", args.shots, args.items)
        planned = HFEngine(model_dir, dtype="float32", device="cpu")
        budget = HFEngine(model_dir, dtype="float32", device="cpu", max_padding_fraction=0.1)
        planned.packed_forwards = budget.packed_forwards = False  # the padded plans (packing: compare_packed)
        base = planned.scoring_cost
        plans = [(f"cost plan, forward = {f:g}", planned, replace(base, forward=f)) for f in args.forward_costs]
        plans.append(("10 % padding budget", budget, None))
        jmedllm_loglik(planned, items[:2])
        jmedllm_loglik(budget, items[:2])
        times: dict[str, list[float]] = {name: [] for name, _, _ in plans}
        shape: dict[str, tuple[int, int, int]] = {}
        scores: dict[str, list[list[float]]] = {}
        for _ in range(args.repeats):
            for name, engine, cost in plans:
                if cost is not None:
                    engine.scoring_cost = cost
                engine.stats.reset()
                seconds, out = timed(lambda e=engine: jmedllm_loglik(e, items))
                times[name].append(seconds)
                shape[name] = (engine.stats.forward_passes, engine.stats.padded_tokens, engine.stats.tokens)
                scores[name] = out
        first = scores[plans[0][0]]
        print("| log-likelihood plan | forwards | padded tokens | real tokens | median wall s | all runs | max abs dlogp vs first |")
        print("|---|---|---|---|---|---|---|")
        for name, _, _ in plans:
            diff = max(abs(a - b) for ra, rb in zip(scores[name], first) for a, b in zip(ra, rb))
            f, padded, real = shape[name]
            print(f"| {name} | {f} | {padded} | {real} | {statistics.median(times[name]):.2f} | "
                  f"{' / '.join(f'{t:.2f}' for t in times[name])} | {diff:.1e} |", flush=True)
        print()

    if "generate" not in args.skip:
        prompts = [it.prompt for it in prepared(model_dir, data_root, "generate", args.shots, args.items)]
        ragged = HFEngine(model_dir, dtype="float32", device="cpu")
        padded = HFEngine(model_dir, dtype="float32", device="cpu", static_generation_cache=False)
        n = args.max_new_tokens
        for engine in (ragged, padded):
            jmedllm_generate(engine, prompts[:2], n)
        runs = {"ragged prefill + static cache (CPU default)": ragged, "left-padded batches, dynamic cache": padded}
        times = {name: [] for name in runs}
        texts: dict[str, list[str]] = {}
        for _ in range(args.repeats):
            for name, engine in runs.items():
                engine.stats.reset()
                seconds, texts[name] = timed(lambda e=engine: jmedllm_generate(e, prompts, n))
                times[name].append(seconds)
        same = sum(a == b for a, b in zip(*texts.values()))
        print(f"| generation ({n} new tokens) | median wall s | all runs | same text |")
        print("|---|---|---|---|")
        for name in runs:
            print(f"| {name} | {statistics.median(times[name]):.2f} | "
                  f"{' / '.join(f'{t:.2f}' for t in times[name])} | {same} / {len(prompts)} |", flush=True)
    if "trim" not in args.skip:
        compare_trim(model_dir, data_root, args)
    if "groups" not in args.skip:
        compare_row_groups(model_dir, data_root, args)
    if "packed" not in args.skip:
        compare_packed(model_dir, data_root, args)
    if "retire" not in args.skip:
        compare_retire(model_dir, data_root, args)
    print(f"\nload average after: {load_text()}")


def compare_trim(model_dir: Path, data_root: Path, args: argparse.Namespace) -> None:
    engine = HFEngine(model_dir, dtype="float32", device="cpu")
    if not engine.mlp_trim.exact:
        raise SystemExit("the trim check refused this model: nothing to compare")
    print("| last layer's MLP | work | median wall s | median CPU s | all runs (wall) | agreement |")
    print("|---|---|---|---|---|---|")
    for mode in ("loglik", "generate"):
        items = prepared(model_dir, data_root, mode, args.shots, args.items)
        if mode == "loglik":
            fn = lambda: jmedllm_loglik(engine, items)  # noqa: E731
        else:
            prompts = [it.prompt for it in items]
            fn = lambda: jmedllm_generate(engine, prompts, args.max_new_tokens)  # noqa: E731
        fn()  # warm-up
        walls, cpus, outs = alternate_settings(
            {on: lambda on=on: setattr(engine.mlp_trim, "exact", on) for on in (True, False)}, fn, args.repeats)
        engine.mlp_trim.exact = True
        if mode == "loglik":
            agree = f"max abs dlogp {max(abs(a - b) for ra, rb in zip(outs[True], outs[False]) for a, b in zip(ra, rb)):.1e}"
        else:
            agree = f"same text {sum(a == b for a, b in zip(outs[True], outs[False]))} / {len(items)}"
        for on in (True, False):
            print(f"| {'read columns only' if on else 'every column'} | {mode} | {statistics.median(walls[on]):.2f} | "
                  f"{statistics.median(cpus[on]):.2f} | {' / '.join(f'{t:.2f}' for t in walls[on])} | {agree} |",
                  flush=True)


def compare_row_groups(model_dir: Path, data_root: Path, args: argparse.Namespace) -> None:
    """Decode attention three ways: the CPU kernel (each row its own columns), SDPA per row
    group, plain SDPA over the padded cache (its own decode plan)."""
    engine = HFEngine(model_dir, dtype="float32", device="cpu")
    if not engine.decode_by_row_groups:
        raise SystemExit("the row-group check refused this model: nothing to compare")
    prompts = [it.prompt for it in prepared(model_dir, data_root, "generate", args.shots, args.items)]
    settings = {"kernel": (True, True), "groups": (True, False), "plain": (False, False)}
    if not engine.decode_attention_kernel:
        from jmedllm.engines.cpu_decode_attention import unavailable_reason

        print(f"(no decode attention kernel: {unavailable_reason()})")
        del settings["kernel"]
    batches: dict[str, list[int]] = {key: [] for key in settings}
    current = [next(iter(settings))]
    real = engine._generate_ragged

    def counting(batch, params):
        batches[current[0]].append(len(batch))
        return real(batch, params)

    engine._generate_ragged = counting

    def use(key: str) -> None:
        current[0] = key
        engine.decode_by_row_groups, engine.decode_attention_kernel = settings[key]
        batches[key].clear()

    for key in settings:  # warm-up (and the kept storage)
        use(key)
        jmedllm_generate(engine, prompts, args.max_new_tokens)
    walls, cpus, outs = alternate_settings({key: lambda key=key: use(key) for key in settings},
                                           lambda: jmedllm_generate(engine, prompts, args.max_new_tokens), args.repeats)
    first = outs[next(iter(settings))]
    names = {"kernel": "kernel, each row its own columns (CPU default)", "groups": "SDPA per row group",
             "plain": "plain SDPA over the padded cache"}
    print("| decode attention | median wall s | median CPU s | all runs (wall) | decode batches | same text as first |")
    print("|---|---|---|---|---|---|")
    for key in settings:
        same = sum(a == b for a, b in zip(outs[key], first))
        print(f"| {names[key]} | {statistics.median(walls[key]):.2f} | {statistics.median(cpus[key]):.2f} | "
              f"{' / '.join(f'{t:.2f}' for t in walls[key])} | {' + '.join(map(str, batches[key]))} | "
              f"{same} / {len(prompts)} |", flush=True)
    use(next(iter(settings)))


def compare_packed(model_dir: Path, data_root: Path, args: argparse.Namespace) -> None:
    engine = HFEngine(model_dir, dtype="float32", device="cpu")
    if not engine.packed_forwards:
        raise SystemExit("the packing check refused this model: nothing to compare")
    settings = [(f"packed, {n} tokens per pack", n) for n in args.pack_tokens] + [("padded forwards (cost plan)", 0)]
    items = prepared(model_dir, data_root, "loglik", args.shots, args.items)
    prompts = [it.prompt for it in prepared(model_dir, data_root, "generate", args.shots, args.items)]
    work = {"loglik": lambda: jmedllm_loglik(engine, items),
            "generate": lambda: jmedllm_generate(engine, prompts, args.max_new_tokens)}
    jmedllm_loglik(engine, items[:2])
    jmedllm_generate(engine, prompts[:2], args.max_new_tokens)

    def packing(tokens: int) -> None:
        engine.packed_forwards, engine.pack_tokens = bool(tokens), tokens or engine.pack_tokens
        engine.stats.reset()

    for kind, fn in work.items():
        forwards: dict[str, int] = {}
        walls, cpus, outs = alternate_settings(
            {name: lambda tokens=tokens: packing(tokens) for name, tokens in settings}, fn, args.repeats,
            after=lambda name: forwards.__setitem__(name, engine.stats.forward_passes))
        base = outs[settings[-1][0]]
        print(f"| {kind} | forwards | median wall s | median CPU s | all runs (wall) | agreement with padded |")
        print("|---|---|---|---|---|---|")
        for name, _ in settings:
            if kind == "loglik":
                agree = f"max abs dlogp {max(abs(a - b) for ra, rb in zip(outs[name], base) for a, b in zip(ra, rb)):.1e}"
            else:
                agree = f"same text {sum(a == b for a, b in zip(outs[name], base))} / {len(prompts)}"
            print(f"| {name} | {forwards[name] if kind == 'loglik' else '-'} | {statistics.median(walls[name]):.2f} | "
                  f"{statistics.median(cpus[name]):.2f} | {' / '.join(f'{t:.2f}' for t in walls[name])} | {agree} |",
                  flush=True)
        print()
    engine.packed_forwards = True


def compare_retire(model_dir: Path, data_root: Path, args: argparse.Namespace) -> None:
    engine = HFEngine(model_dir, dtype="float32", device="cpu")
    prompts = [it.prompt for it in prepared(model_dir, data_root, "generate", args.shots, args.items)]
    n, stop = args.max_new_tokens, args.stop
    ends = engine.generate(prompts, GenerationParams(max_new_tokens=n, stop=(stop,)))  # warm-up; how rows end
    stopped = sorted(c.n_completion_tokens for c in ends if c.finish_reason == "stop")
    print(f"stop {stop!r}: {len(stopped)} / {len(ends)} rows stop before {n} tokens"
          + (f", after {stopped[0]}-{stopped[-1]} (median {statistics.median(stopped):g})" if stopped else ""))
    retired: dict[bool, int] = {}

    def retiring(on: bool) -> None:
        engine.retire_finished_rows = on
        engine.stats.reset()

    walls, cpus, outs = alternate_settings({on: lambda on=on: retiring(on) for on in (True, False)},
                                           lambda: jmedllm_generate(engine, prompts, n, stop), args.repeats,
                                           after=lambda on: retired.__setitem__(on, engine.stats.retired_rows))
    same = sum(a == b for a, b in zip(outs[True], outs[False]))
    print("| decode batch | median wall s | median CPU s | all runs (wall) | rows retired | same text |")
    print("|---|---|---|---|---|---|")
    for on in (True, False):
        name = "finished rows leave (CPU default)" if on else "every row to the batch's end"
        print(f"| {name} | {statistics.median(walls[on]):.2f} | {statistics.median(cpus[on]):.2f} | "
              f"{' / '.join(f'{t:.2f}' for t in walls[on])} | {retired[on]} | {same} / {len(prompts)} |", flush=True)
    engine.retire_finished_rows = True


if __name__ == "__main__":
    main()
