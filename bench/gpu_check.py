"""GPU check of the engines (run by bench/gpu_check.sh on a CUDA machine; not a test).

On a small random Llama built here (jmedllm.tiny preset, no hub) and a random LoRA adapter:

1. vllm engine, TP=1, every mode (generate, letter, loglik, and generate with --letter-grammar:
   how many answers match their item's labels), with the adapter: decisions and
   wall time; loglik per-choice log-probs against the HF engine (same GPU, bf16 both); the
   prefix-cache counters before / after loglik (the shared prompt must hit);
2. HF engine in 4-bit (bitsandbytes) on the same model, loglik mode;
3. lm-evaluation-harness's vLLM backend (if installed) on the same loglik requests.

Writes ``--out`` (JSON) and prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def build(workdir: Path, data_root: Path, preset: str) -> tuple[Path, Path]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from jmedllm.tiny import build_tiny_model

    model_dir = build_tiny_model(workdir / "model", data_root, preset)
    adapter_dir = workdir / "adapter"
    if not (adapter_dir / "adapter_config.json").is_file():
        torch.manual_seed(1)
        base = AutoModelForCausalLM.from_pretrained(model_dir)
        peft_model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                                     init_lora_weights=False))
        peft_model.save_pretrained(adapter_dir)
    return model_dir, adapter_dir


def run(cfg_kwargs: dict, engine, out: Path) -> tuple[float, list[dict]]:
    from jmedllm.evaluate import EvalConfig, run_eval

    cfg = EvalConfig(**cfg_kwargs, out=str(out))
    start = time.perf_counter()
    path = run_eval(cfg, engine=engine)
    seconds = time.perf_counter() - start
    return seconds, [json.loads(x) for x in (path / "items.jsonl").read_text().splitlines()]


def lm_eval_vllm(model_dir: Path, records: list[dict]) -> dict | None:
    try:
        from lm_eval.api.instance import Instance
        from lm_eval.models.vllm_causallms import VLLM
    except ImportError:
        return None
    lm = VLLM(pretrained=str(model_dir), dtype="bfloat16", gpu_memory_utilization=0.3, max_model_len=2048)
    requests = [Instance(request_type="loglikelihood", doc={}, arguments=(r["prompt"], c[0]), idx=i)
                for r in records for i, c in enumerate(r["continuations"])]
    start = time.perf_counter()
    scores = lm.loglikelihood(requests)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "requests": len(requests), "scores": [s[0] for s in scores]}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data-root", default=os.environ.get("JMEDLLM_DATA_ROOT"))
    p.add_argument("--workdir", default="bench/.gpu_check")
    p.add_argument("--preset", default="bench60m")
    p.add_argument("--items", type=int, default=60)
    p.add_argument("--out", default="bench/.gpu_check/results.json")
    args = p.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: this check needs a GPU", file=sys.stderr)
        return 2
    from jmedllm.engines.hf import HFEngine
    from jmedllm.engines.vllm import VLLMEngine

    work = Path(args.workdir)
    model_dir, adapter_dir = build(work, Path(args.data_root), args.preset)
    common = dict(model=str(model_dir), benchmarks=["igakuqa:2022"], data_root=args.data_root, limit=args.items,
                  bootstrap=100, chunk_size=args.items, max_new_tokens=16)
    results: dict = {"gpu": torch.cuda.get_device_name(0), "items": args.items, "model": args.preset, "runs": {}}

    vllm = VLLMEngine(model_dir, adapter={"lora": adapter_dir}, dtype="bfloat16", gpu_memory_utilization=0.4,
                      max_length=2048)
    for mode in ("generate", "letter", "loglik"):
        before = vllm.prefix_cache_stats()
        secs, recs = run(common | {"mode": mode, "adapter": str(adapter_dir)}, vllm, work / f"vllm-{mode}")
        results["runs"][f"vllm/{mode}"] = {"seconds": secs, "items_per_s": len(recs) / secs,
                                          "prefix_cache": {"before": before, "after": vllm.prefix_cache_stats()},
                                          "predicted": [r["verdict"]["predicted"] for r in recs]}
    # --letter-grammar: each answer held to its own item's labels by structured output
    import re

    from jmedllm.benchmarks import load_benchmark
    from jmedllm.evaluate.records import letter_choice

    questions = {q.id: q for q in load_benchmark("igakuqa:2022", Path(args.data_root)).questions}
    secs, recs = run(common | {"mode": "generate", "letter_grammar": True, "adapter": str(adapter_dir)}, vllm,
                     work / "vllm-generate-letters")
    results["runs"]["vllm/generate/letter_grammar"] = {
        "seconds": secs, "items_per_s": len(recs) / secs,
        "answers_matching_their_labels": sum(bool(re.fullmatch(letter_choice(questions[r["id"]]).regex(), r["output"]))
                                             for r in recs if letter_choice(questions[r["id"]])),
        "items": len(recs)}
    vllm.use_adapter(None)
    secs, base_recs = run(common | {"mode": "loglik"}, vllm, work / "vllm-loglik-base")
    results["runs"]["vllm/loglik/base"] = {"seconds": secs, "items_per_s": len(base_recs) / secs}
    vllm.close()
    del vllm
    torch.cuda.empty_cache()

    hf = HFEngine(model_dir, dtype="bfloat16", adapter=str(adapter_dir))
    for mode in ("letter", "loglik"):
        secs, recs = run(common | {"mode": mode, "adapter": str(adapter_dir)}, hf, work / f"hf-{mode}")
        v = results["runs"][f"vllm/{mode}"]["predicted"]
        h = [r["verdict"]["predicted"] for r in recs]
        results["runs"][f"hf/{mode}"] = {"seconds": secs, "items_per_s": len(recs) / secs,
                                        "same_decisions_as_vllm": sum(a == b for a, b in zip(v, h)) / len(h)}
    del hf
    torch.cuda.empty_cache()

    hf4 = HFEngine(model_dir, quantize="4bit")
    secs, recs4 = run(common | {"mode": "loglik"}, hf4, work / "hf4bit-loglik")
    results["runs"]["hf-4bit/loglik"] = {"seconds": secs, "items_per_s": len(recs4) / secs}
    del hf4
    torch.cuda.empty_cache()

    ref = lm_eval_vllm(model_dir, base_recs)
    if ref is not None:
        ours = [s["logprob"] for r in base_recs for g in r["scores"] for s in g]
        results["runs"]["lm-eval-vllm/loglik"] = {
            "seconds": ref["seconds"], "items_per_s": len(base_recs) / ref["seconds"],
            "max_abs_diff_vs_ours": max(abs(a - b) for a, b in zip(ours, ref["scores"]))}

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"\nGPU: {results['gpu']}; {args.items} IgakuQA 2022 items; model preset {args.preset}\n")
    print("| run | wall s | items/s | note |\n|---|---|---|---|")
    for name, r in results["runs"].items():
        note = {k: v for k, v in r.items() if k in ("same_decisions_as_vllm", "max_abs_diff_vs_ours",
                                                     "answers_matching_their_labels")}
        if "prefix_cache" in r:
            note["prefix_cache_after"] = r["prefix_cache"]["after"]
        print(f"| {name} | {r['seconds']:.2f} | {r['items_per_s']:.1f} | {note or ''} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
