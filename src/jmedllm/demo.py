"""`jmedllm demo`: the whole loop, real but small, on a CPU in minutes.

1. base model   a byte-level BPE tokenizer trained on the shared data and a small random
                Llama, saved like a hub model (jmedllm.tiny, preset "demo")
2. data         instruction data from IgakuQA 2018-2021 (ja + en; answers as choice text, as
                in the studies), decontaminated against the evaluation exam (2022)
3. training     full-parameter continued pretraining on the MedTxt Japanese clinical corpus
                (a tenth of it held out: perplexity before and after), then LoRA instruction
                tuning of the result (JMedLoRA's 7B adapter shape) with the adapter evaluated in
                generate mode at steps 0, 15 and 30 (share of well-formed answers)
4. evaluation   base vs CPT vs CPT + LoRA (adapter not merged) on IgakuQA 2022, Japanese and
                English
5. comparison   what each stage moved, paired differences with intervals and tests, the exam
                verdicts, and the HTML report of every run and training curve (report.html)

A tiny model trained for minutes on a CPU cannot learn medicine, but each stage can move the
number it should: CPT the perplexity of held-out clinical text, SFT the form of the answers.
Every stage writes its usual output (training folders with their records, run directories);
re-running the demo into the same folder reuses what is finished.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

EVAL_BENCHMARKS = ("igakuqa:2022", "igakuqa-en:2022")
TRAIN_BENCHMARKS = ("igakuqa:2018-2021", "igakuqa-en:2018-2021")


@dataclass(frozen=True)
class DemoSettings:
    out: Path
    data_root: Path
    mode: str = "loglik"
    quick: bool = False  # seconds instead of minutes: few steps, few items (used by the tests)
    seed: int = 0

    @property
    def eval_limit(self) -> int | None:
        return 6 if self.quick else None

    @property
    def train_overrides(self) -> list[str]:
        if self.quick:
            return ["training.max_steps=3", "training.logging_steps=1", "sft.observe.eval_every=3",
                    "sft.observe.limit=3", "sft.observe.max_new_tokens=8", "sft.observe.bootstrap=200",
                    "cpt.observe.validation=4"]
        return []


_STARTED = time.monotonic()


def _say(step: str, text: str) -> None:
    print(f"[demo {step} +{time.monotonic() - _STARTED:.0f}s] {text}", file=sys.stderr, flush=True)


def build_instruction_file(settings: DemoSettings) -> tuple[Path, int, int]:
    """IgakuQA 2018-2021 as instruction data, minus every record the guard finds overlapping
    the evaluation exam (IgakuQA repeats some stems across years). Returns (file, kept, dropped)."""
    from jmedllm.benchmarks import load_benchmark
    from jmedllm.train.contamination import TrainingText, check_contamination, evaluation_items, reference_table
    from jmedllm.train.instructions import from_questions, write_instructions

    examples = []
    for spec in TRAIN_BENCHMARKS:
        # choice-text answers need a choice text: leave out numeric items and blank choices (114C11)
        questions = [q for q in load_benchmark(spec, settings.data_root).questions
                     if not q.is_numeric and all(t.strip() for t in q.answer_texts)]
        if settings.quick:
            questions = questions[:48]
        # letter answers: the form SFT should teach (one letter, then stop) is the demo's measure
        examples += from_questions(questions, family="terse", answer_style="letter")
    items, _, _ = evaluation_items(settings.data_root, list(EVAL_BENCHMARKS))
    # every exam under the data root teaches the guard what generic exam phrasing is
    report = check_contamination([TrainingText(ex.id, ex.text()) for ex in examples], items,
                                 reference=reference_table(settings.data_root))
    overlapping = {o.record for o in report.overlaps}
    for o in report.overlaps:
        _say("2/5", f"dropped training item {o.record}: {o.kind} overlap ({o.score:.2f}) with {o.benchmark} "
                    f"{o.item_id} 「{o.question[:40]}」")
    kept = [ex for ex in examples if ex.id not in overlapping]
    path = write_instructions(kept, settings.out / "data" / "igakuqa-2018-2021-instructions.jsonl")
    return path, len(kept), len(overlapping)


def perplexities(stage_dir: Path) -> tuple[float, float, int] | None:
    """exp(validation loss) before the first and after the last step, and the step, from the stage's record."""
    import json
    import math

    from jmedllm.train.provenance import RUN_RECORD

    history = json.loads((stage_dir / RUN_RECORD).read_text(encoding="utf-8"))["training"]["log_history"]
    losses = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    if len(losses) < 2:
        return None
    return math.exp(losses[0][1]), math.exp(losses[-1][1]), losses[-1][0]


def answer_forms(stage_dir: Path, data_root: Path) -> list[dict]:
    """Well-formed answers of the adapter's first and last checkpoint evaluations (generate mode)."""
    from jmedllm.report.analysis import answer_forms as forms
    from jmedllm.report.collect import collect

    evals = sorted((stage_dir / "evals").glob("step-*/summary.json"))
    if len(evals) < 2:
        return []
    runs = collect([evals[0].parent, evals[-1].parent], data_root=data_root).runs
    return forms(runs)


def stage_table(cpt_dir: Path, sft_dir: Path, data_root: Path) -> str:
    from jmedllm.report import fmt

    rows = ["| stage | what it should move | before | after |", "|---|---|---|---|"]
    ppl = perplexities(cpt_dir)
    if ppl:
        rows.append(f"| CPT | perplexity of held-out MedTxt text (lower is better) | {ppl[0]:.1f} | "
                    f"{ppl[1]:.1f} (step {ppl[2]}) |")
    forms = answer_forms(sft_dir, data_root)
    for group in sorted({f["group"] for f in forms}):
        first, last = [f for f in forms if f["group"] == group][0], [f for f in forms if f["group"] == group][-1]
        rows.append(f"| SFT | well-formed answers in generate mode, {group} ({first['n']} items: parsed, one "
                    f"answer, nothing else) | {fmt.pct(first['well_formed'])} % (step {first['step']}) | "
                    f"{fmt.pct(last['well_formed'])} % (step {last['step']}) |")
    return "# What each stage moved\n\n" + "\n".join(rows) + "\n\n"


def run_demo(settings: DemoSettings) -> str:
    """Run the demo; return its Markdown summary (also written to out/comparison.md) ending with the
    path of the HTML report (out/report.html)."""
    from jmedllm.evaluate import EvalConfig, run_eval
    from jmedllm.report import compare, compare_markdown
    from jmedllm.report.build import build_report
    from jmedllm.tiny import PRESETS, build_tiny_model
    from jmedllm.train import load_recipe, run_recipe

    global _STARTED
    started = _STARTED = time.monotonic()
    out, root = settings.out, settings.data_root
    out.mkdir(parents=True, exist_ok=True)

    spec = PRESETS["demo"]
    _say("1/5", f"base model: BPE tokenizer ({spec.vocab_size} tokens) trained on {root}, random Llama "
                f"({spec.num_hidden_layers} layers, hidden {spec.hidden_size}) -> {out / 'base'}")
    base = build_tiny_model(out / "base", root, "demo")

    _say("2/5", "instruction data: IgakuQA 2018-2021 (ja + en), checked against IgakuQA 2022")
    instructions, kept, dropped = build_instruction_file(settings)
    _say("2/5", f"{kept} training examples written to {instructions} ({dropped} dropped for overlap)")

    recipe = load_recipe("demo", [
        f"output_dir={out / 'train'}", f"cpt.model.name_or_path={base}", f"seed={settings.seed}",
        f"sft.instructions.sources=[{{path: '{instructions}'}}]", *settings.train_overrides,
    ])
    _say("3/5", "continued pretraining (full parameters) on MedTxt, then LoRA SFT on the instruction data "
                "(the adapter evaluated in generate mode at its checkpoints)")
    cpt_dir, sft_dir = run_recipe(recipe, data_root=root, resume=True)

    models = {
        "base": dict(model=str(base)),
        "cpt": dict(model=str(cpt_dir)),
        "cpt+lora": dict(model=str(cpt_dir), adapter=str(sft_dir)),
    }
    runs = []
    for label, model in models.items():
        _say("4/5", f"evaluating {label} on {', '.join(EVAL_BENCHMARKS)} ({settings.mode} mode)")
        cfg = EvalConfig(**model, benchmarks=list(EVAL_BENCHMARKS), out=str(out / "runs" / label),
                         data_root=str(root), mode=settings.mode, prompt="terse", seed=settings.seed,
                         limit=settings.eval_limit, bootstrap=1000 if settings.quick else 2000)
        runs.append(run_eval(cfg, argv=["jmedllm", "demo"]))
    _say("5/5", "paired comparison against the base model")
    result = compare(runs, list(models), ["accuracy", "accuracy_norm"] if settings.mode == "loglik" else
                     ["accuracy", "gestalt_accuracy", "exact_match"], seed=settings.seed,
                     n_resamples=1000 if settings.quick else 5000)
    metrics = list(result["paired"][0]["overall"])
    text = stage_table(cpt_dir, sft_dir, root) + compare_markdown(result, metrics)
    written = build_report([*runs, cpt_dir, sft_dir], out / "report.html", labels=list(models) + [
        f"sft@{p.name}" for p in sorted((sft_dir / "evals").glob("step-*")) if (p / "config.json").is_file()],
        data_root=root, title="jmedllm demo: base → CPT → CPT + LoRA")
    minutes = (time.monotonic() - started) / 60
    text += (f"\nA tiny model trained for minutes on a CPU is near chance on a licensing exam; what moves is "
             f"what each stage can move (the table at the top), with every number's interval ({minutes:.1f} min).\n"
             f"Training folders: {out / 'train'}; run directories: {out / 'runs'}.\n"
             f"Report: {written.html.resolve()}\n")
    (out / "comparison.md").write_text(text, encoding="utf-8")
    return text


def clean(out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
