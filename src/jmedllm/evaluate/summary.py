"""The run summary, recomputed from the raw outputs stored in items.jsonl."""

from __future__ import annotations

from jmedllm.evaluate.config import EvalConfig, EvalError
from jmedllm.evaluate.prepare import Prepared
from jmedllm.evaluate.records import verdict_for
from jmedllm.runs import RunDir


def summarize(prepared: Prepared, run: RunDir, cfg: EvalConfig, engine_usage: dict | None = None) -> tuple[dict, str]:
    """Summary of the finished items, verdicts recomputed from the stored raw outputs."""
    from jmedllm import scoring

    from jmedllm import judge

    pairs = []
    judged: list = []  # per item: the judge's verdict, or None where the judge was not asked
    truncated = 0
    sampled: list[list] = []  # --samples K: each item's sample verdicts
    hit_budget = reasoning_tokens = 0  # generate: answers cut by max_new_tokens; reasoning tokens spent
    labels_absent = 0  # letter mode via top-k: items with at least one choice label outside the top-k
    no_label = 0  # ... and items with none inside it
    for it in prepared.items:
        rec = run.done.get(it.key)
        if rec is None:
            continue
        pairs.append((it.question, verdict_for(it.question, rec, cfg.mode, cfg.first_line_only, it.answer_pattern)))
        judged.append(judge.judge_verdict(it.question, rec["judge"]["reply"]) if "judge" in rec else None)
        truncated += 1 if rec.get("truncated_tokens", 0) else 0
        hit_budget += sum(s.get("finish_reason") == "length" for s in rec.get("samples", [rec]))
        if "samples" in rec:
            sampled.append([scoring.score_generation(it.question, s["output"], first_line_only=cfg.first_line_only,
                                                     answer_pattern=it.answer_pattern) for s in rec["samples"]])
        reasoning_tokens += rec.get("n_reasoning_tokens", 0)
        if rec.get("letter_via") == "top_logprobs":
            absent = [all(s["logprob"] is None for s in g) for g in rec["scores"]]
            labels_absent += any(absent)
            no_label += all(absent)
    if not pairs:
        raise EvalError("no item could be evaluated with this engine" + (
            f" ({len(prepared.skipped_images)} image item(s) skipped: the engine is text-only)"
            if prepared.skipped_images else ""))
    summary = scoring.aggregate(pairs, seed=cfg.seed, n_resamples=cfg.bootstrap)
    summary["run"] = {
        "model": cfg.model, "adapter": cfg.adapter, "mode": cfg.mode, "prompt": cfg.prompt, "shots": cfg.shots,
        "shuffle": cfg.shuffle, "seed": cfg.seed, "benchmarks": list(cfg.benchmarks),
        "items_planned": len(prepared.items), "items_done": len(pairs), "prompts_truncated": truncated,
        "items_recorded": len(run.done), "subset": len(pairs) < len(run.done),
        "not_applicable": {"count": len(prepared.not_applicable), "reason": "numeric, select-all and ordering "
                           "items have no single choice to rank in this mode (use --mode generate); exam verdicts "
                           "count them wrong",
                           "items": prepared.not_applicable},
        "excluded": {"count": len(prepared.excluded), "reason": "left out by the loader (e.g. no official answer "
                     "key); not in any count or exam maximum", "items": prepared.excluded},
        "hit_token_budget": hit_budget, "reasoning_tokens": reasoning_tokens,
        "skipped": {"image": {"count": len(prepared.skipped_images), "reason": "the engine is text-only; items with "
                              "images need a vision-language engine", "items": prepared.skipped_images}},
    }
    if prepared.answer_patterns:
        summary["run"]["answer_patterns"] = prepared.answer_patterns
    if cfg.extract_with:
        summary["judge"] = judge.summarize([v for _, v in pairs], judged, model=cfg.extract_with, seed=cfg.seed,
                                           n_resamples=cfg.bootstrap)
    if sampled:
        from jmedllm.sampling import samples_summary

        summary["samples"] = samples_summary(sampled, seed=cfg.seed, n_resamples=cfg.bootstrap,
                                             temperature=cfg.temperature)
    with_image = [(q, v) for q, v in pairs if q.images]
    if with_image:  # the same metrics on the items asked with and without images, side by side
        text_pairs = [(q, v) for q, v in pairs if not q.images]
        summary["images"] = {name: scoring.aggregate(sub, seed=cfg.seed, n_resamples=cfg.bootstrap)["overall"]
                             for name, sub in (("text_only", text_pairs), ("with_image", with_image)) if sub}
    if cfg.mode == "letter" and (labels_absent or any(r.get("letter_via") == "top_logprobs"
                                                      for r in run.done.values())):
        summary["run"]["top_logprobs"] = {"k": cfg.top_logprobs, "items_with_a_label_absent": labels_absent,
                                          "items_without_any_label": no_label}
    if engine_usage:
        summary["engine_usage"] = engine_usage
    markdown = scoring.summary_markdown(summary)
    if cfg.extract_with:
        markdown += judge.summary_markdown(summary["judge"])
    notes = []
    if sampled:
        s = summary["samples"]
        notes.append(f"- {s['k']} samples per item at temperature {s['temperature']}: mean accuracy "
                     f"{100 * s['mean_accuracy']['mean']:.1f}% [{100 * s['mean_accuracy']['low']:.1f}, "
                     f"{100 * s['mean_accuracy']['high']:.1f}], majority vote {100 * s['majority_vote_accuracy']['mean']:.1f}% "
                     f"[{100 * s['majority_vote_accuracy']['low']:.1f}, {100 * s['majority_vote_accuracy']['high']:.1f}] "
                     "(the overall table scores the majority answer)")
    if hit_budget:
        notes.append(f"- {hit_budget} answer(s) hit the token budget (--max-new-tokens {cfg.max_new_tokens}) and were "
                     "cut off: raise it for reasoning models")
    if prepared.skipped_images:
        notes.append(f"- skipped: image — {len(prepared.skipped_images)} item(s) with images not asked (text-only "
                     f"engine): {', '.join(prepared.skipped_images[:10])}" + (" …" if len(prepared.skipped_images) > 10
                                                                              else ""))
    if "images" in summary:
        cells = [f"{name}: {100 * g['metrics']['accuracy']['mean']:.1f}% (n={g['n']})"
                 for name, g in summary["images"].items() if "accuracy" in g.get("metrics", {})]
        notes.append("- text-only vs with-image items: " + "; ".join(cells))
    if no_label or labels_absent:
        notes.append(f"- letter mode through top-{cfg.top_logprobs} log-probs: {labels_absent} item(s) had a choice "
                     f"label absent from the top-k (ranked below every listed token), {no_label} had none "
                     "(no answer, counted wrong)")
    if engine_usage:
        notes.append("- engine usage: " + ", ".join(f"{k}={v}" for k, v in engine_usage.items()
                                                    if not isinstance(v, dict)))
    if prepared.not_applicable:
        notes.append(f"- {len(prepared.not_applicable)} numeric / select-all / ordering item(s) not scorable in {cfg.mode} mode "
                     f"(counted wrong in exam verdicts): {', '.join(prepared.not_applicable[:10])}"
                     + (" …" if len(prepared.not_applicable) > 10 else ""))
    if prepared.excluded:
        notes.append(f"- {len(prepared.excluded)} record(s) excluded by the loader (no official answer key): "
                     + ", ".join(prepared.excluded[:10]) + (" …" if len(prepared.excluded) > 10 else ""))
    if truncated:
        notes.append(f"- {truncated} prompt(s) were longer than the model context and cut from the left")
    if len(pairs) < len(prepared.items):
        notes.append(f"- partial run: {len(pairs)} of {len(prepared.items)} items done")
    if len(pairs) < len(run.done):
        notes.append(f"- this summary covers {len(pairs)} of {len(run.done)} recorded items (the items this command "
                     "selected, --summary-subset); items.jsonl holds all of them")
    if notes:
        markdown += "\n## Notes\n\n" + "\n".join(notes) + "\n"
    return summary, markdown
