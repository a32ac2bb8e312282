"""GRPO with exam-verified rewards (``kind: grpo``) on TRL's GRPOTrainer.

Prompts are exactly the zero-shot prompts of ``jmedllm eval`` (``prompts.sft_example`` with the
stage's family and ``grpo.answer_style``); each completion is rewarded by jmedllm's own scoring
(jmedllm.train.rewards: exact set, optional partial credit, a forbidden-choice penalty, a format
reward, a length penalty). Generation: vLLM through TRL (``use_vllm``; ``colocate`` shares the
training GPUs, ``server`` talks to ``trl vllm-serve``) when vLLM is installed and a CUDA GPU is
present, or as asked by ``grpo.use_vllm``; otherwise the HF model's ``generate``.

The learnable toy task (``grpo.toy: N``) proves the loop on a CPU, not medicine: each item lists
the same words (``grpo.toy_choices``), one marked with ★, and asks for it; the prompt ends with the
mark and the marked letter (:func:`toy_prompt`). A tiny model first taught the answer format (a
letter) with random letters (``toy_format_examples``, an SFT run) is never taught to answer the
stated letter; GRPO teaches it, and the reward rises (tests/train/test_grpo.py, docs/training.md).
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any, Sequence

from jmedllm.errors import UserError
from jmedllm.schema import Question
from jmedllm.train import stage as st
from jmedllm.train.contamination import TrainingText
from jmedllm.train.recipe import Recipe, StageSpec
from jmedllm.train.rewards import TERMS, reward_functions
from jmedllm.train.trainer_args import common_args, optional_gpu_feature

log = logging.getLogger("jmedllm.train")

TOY_WORDS = ("りんご", "みかん", "ぶどう", "もも", "なし", "かき", "いちご", "すいか", "メロン", "バナナ", "レモン", "くり")
TOY_MARK = "★"


def toy_questions(n: int, *, seed: int = 0, n_choices: int = 2) -> list[Question]:
    """The learnable toy task: pick the choice marked with ★ (the same words in the same order;
    answers balanced over letters, ``seed`` shifts them). Its prompt is :func:`toy_prompt`."""
    words = TOY_WORDS[:n_choices]  # fixed: only the mark varies
    out = []
    for i in range(n):
        answer = (i + seed) % n_choices
        choices = tuple(f"{TOY_MARK}{w}" if j == answer else w for j, w in enumerate(words))
        out.append(Question(id=f"toy{i:04d}", benchmark="toy", text=f"{TOY_MARK}の付いた選択肢を選べ。",
                            choices=choices, answer=frozenset({answer}), n_select=1, language="ja"))
    return out


def toy_prompt(question: Question) -> str:
    """The toy's prompt: the question, its lettered choices, and the answer header followed by the
    mark and the marked choice's letter (「答え：★ b」): the letter is the prompt's last token, where
    a 2-layer model can learn to read it in a few dozen steps (the letter further back, four tokens
    before the answer, was learnt in 2 of 3 seeds of 30 steps). Not an evaluation prompt: the toy
    proves the GRPO loop, not medicine."""
    from jmedllm.schema import LETTERS

    marked = next(j for j, c in enumerate(question.choices) if c.startswith(TOY_MARK))
    lines = [f"{LETTERS[j]}. {c}" for j, c in enumerate(question.choices)]
    return f"問題：{question.text}\n" + "\n".join(lines) + f"\n答え：{TOY_MARK} {LETTERS[marked]}"


def toy_format_examples(n: int, *, seed: int = 1, n_choices: int = 2) -> list[Any]:
    """SFT examples teaching the answer *format* only: the toy prompts answered with a random letter
    (a model trained on them answers a letter, without being taught to answer the stated one)."""
    from jmedllm.schema import LETTERS
    from jmedllm.train.instructions import InstructionExample

    rng = random.Random(seed)
    return [InstructionExample(id=q.id, prompt=toy_prompt(q), completion=LETTERS[rng.randrange(n_choices)],
                               source={"toy": "format"})
            for q in toy_questions(n, seed=seed, n_choices=n_choices)]


def stage_questions(stage: StageSpec, data_root: Path | None) -> tuple[list[Question], list[Path], list[dict[str, Any]]]:
    spec = stage.grpo
    if spec.toy > 0:
        return (toy_questions(spec.toy, seed=0, n_choices=spec.toy_choices), [],
                [{"toy": spec.toy, "toy_choices": spec.toy_choices}])
    if not spec.sources:
        raise UserError(f"stage {stage.name}: grpo.sources is empty (benchmarks), and grpo.toy is 0")
    from jmedllm.benchmarks import load_benchmark

    questions: list[Question] = []
    files: list[Path] = []
    summary = []
    for i, src in enumerate(spec.sources):
        where = f"stage {stage.name}: grpo.sources[{i}]"
        if src.benchmark is None or src.path is not None:
            raise UserError(f"{where}: give a benchmark (questions with gold answers; a custom mapping "
                            "reads your own files: benchmark: custom:my.yaml)")
        if data_root is None:
            raise UserError(f"{where}: benchmark {src.benchmark!r} needs a data root (--data-root)")
        bench = load_benchmark(src.benchmark, data_root, **src.filters)
        got = [q for q in list(bench.questions)[: src.limit]]
        usable = [q for q in got if q.selection != "order"]
        questions.extend(usable)
        files.extend(Path(f) for f in bench.files)
        summary.append({"benchmark": bench.name, "filters": src.filters, "questions": len(usable),
                        "skipped_ordering": len(got) - len(usable)})
    return questions, files, summary


def build_prompts(questions: Sequence[Question], stage: StageSpec) -> list[dict[str, Any]]:
    """Dataset rows: the evaluation prompt (text, or chat messages) and the item's key."""
    from jmedllm.prompts import resolve_prompt_spec, sft_example

    spec = stage.grpo
    if spec.toy > 0:
        return [{"prompt": toy_prompt(q), "qid": f"{q.benchmark}:{q.id}"} for q in questions]
    family, template = resolve_prompt_spec(spec.family)
    rows = []
    for q in questions:
        ex = sft_example(q, family=family, language=spec.language, target_style=spec.answer_style,
                         template_file=template)
        prompt = ex["messages"][:-1] if "messages" in ex else ex["prompt"]
        rows.append({"prompt": prompt, "qid": f"{q.benchmark}:{q.id}"})
    return rows


def vllm_choice(stage: StageSpec) -> bool:
    """Whether to generate with vLLM: as asked, or (auto) when vLLM is installed and a CUDA GPU is present."""
    return optional_gpu_feature(stage.grpo.use_vllm, "vllm", stage, "grpo.use_vllm", "vLLM (pip install 'jmedllm[vllm]')")


def grpo_config(recipe: Recipe, stage: StageSpec, out: Path, precision: str) -> Any:
    from trl import GRPOConfig

    g = stage.grpo
    use_vllm = vllm_choice(stage)
    extra: dict[str, Any] = {}
    if use_vllm:
        extra = {"vllm_mode": g.vllm_mode, "vllm_gpu_memory_utilization": g.vllm_gpu_memory_utilization}
        if g.vllm_server_base_url:
            extra["vllm_server_base_url"] = g.vllm_server_base_url
    return GRPOConfig(
        num_generations=g.num_generations,
        max_completion_length=g.max_completion_length,
        temperature=g.temperature,
        top_p=g.top_p,
        beta=g.beta,
        loss_type=g.loss_type,
        scale_rewards=g.scale_rewards,
        mask_truncated_completions=g.mask_truncated_completions,
        reward_weights=[1.0] * len(TERMS),  # the terms carry their own weights (grpo.rewards)
        use_vllm=use_vllm,
        # The toy's items alternate their answer letters: in order, every batch holds as many of each, so
        # the only way up is reading the mark (shuffled, a batch that leans to one letter rewards that letter).
        shuffle_dataset=g.toy == 0,
        **extra,
        **common_args(recipe, stage, out, precision),
    )


def prompt_length_policy(rows: list[dict[str, Any]], tokenizer: Any, stage: StageSpec) -> tuple[list[dict[str, Any]], list[str]]:
    limit = stage.grpo.max_prompt_length
    too_long = []
    for row in rows:
        p = row["prompt"]
        n = (len(tokenizer(p)["input_ids"]) if isinstance(p, str) else
             len(tokenizer.apply_chat_template(p, tokenize=True, add_generation_prompt=True, return_dict=True)["input_ids"]))
        if n > limit:
            too_long.append(row["qid"])
    if too_long and stage.grpo.overlong == "error":
        raise UserError(f"stage {stage.name}: {len(too_long)} prompts are longer than grpo.max_prompt_length={limit} "
                        f"({', '.join(too_long[:10])}); raise it, or set grpo.overlong=drop (recorded)")
    kept = [row for row in rows if row["qid"] not in set(too_long)]
    if not kept:
        raise UserError(f"stage {stage.name}: no prompt fits grpo.max_prompt_length={limit}")
    return kept, too_long


def run_grpo(
    recipe: Recipe,
    stage: str | None = None,
    *,
    data_root: str | os.PathLike[str] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    allow_overlap: bool | None = None,
    callbacks: Sequence[Any] = (),
) -> Path:
    """Run a ``grpo`` stage; return its output directory. Arguments as for jmedllm.train.cpt.run_cpt."""
    import warnings

    from datasets import Dataset
    from trl import GRPOTrainer

    spec, started, root, out = st.begin_stage(recipe, stage or "grpo", ("grpo",), data_root=data_root,
                                              resume=resume, overwrite=overwrite)

    questions, files, sources = stage_questions(spec, root)
    rows = build_prompts(questions, spec)
    records = [TrainingText(location=row["qid"], text=row["prompt"] if isinstance(row["prompt"], str) else
                            "\n".join(m["content"] for m in row["prompt"])) for row in rows]
    report = None if spec.grpo.toy > 0 else st.run_guard(records, recipe, root, out, allow_overlap)

    with st.main_process_first():
        model_path = st.resolve_model(recipe, spec)
    tokenizer = st.load_tokenizer(model_path, spec)
    rows, dropped = prompt_length_policy(rows, tokenizer, spec)
    precision = st.resolve_precision(spec)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`gradient_checkpointing` is deprecated", category=FutureWarning)
        config = grpo_config(recipe, spec, out, precision)
    by_key = {f"{q.benchmark}:{q.id}": q for q in questions}
    trainer = GRPOTrainer(
        model=model_path,
        reward_funcs=reward_functions(by_key, spec.grpo.rewards),
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=None if spec.method == "full" else st.lora_config(spec),
        quantization_config=st.quantization_config(spec) if spec.method == "qlora" else None,
        callbacks=list(callbacks),
    )
    training = st.train_and_save(trainer, out, resume=resume)
    if trainer.is_world_process_zero():
        rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
        data = {
            "sources": sources,
            "prompts": len(rows),
            "dropped_overlong": dropped,
            "family": spec.grpo.family,
            "answer_style": spec.grpo.answer_style,
            "use_vllm": config.use_vllm,
            "rewards": dict(vars(spec.grpo.rewards)),
            "reward_first": rewards[0] if rewards else None,
            "reward_last": rewards[-1] if rewards else None,
            "guarded": report is not None,
        }
        st.write_record(out, recipe, spec, model_path=model_path, precision=precision, files=files,
                        data=data, training=training, contamination=report, started=started)
    return out
