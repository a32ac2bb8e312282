"""Re-scoring outputs produced elsewhere (`jmedllm score`): another tool's (or an earlier API
run's) raw responses, scored by jmedllm into a normal run directory.

    input file ──> rows (id, response[, reference]) ──> matched to the benchmark's items
        ──> the runner's item loop (evaluate.run_items: verdicts, judge) ──> items.jsonl
        ──> evaluate.summarize ──> summary.json / summary.md (+ input report, agreement)

There is no second runner: the rows take the place of an engine's completions (the run's
engine is described as ``{"kind": "score", "input": {sha256, format, fields}}``), so the
directory resumes, compares (`jmedllm compare`) and reads like any eval run. See
docs/rescoring.md.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from jmedllm import judge
from jmedllm.config import load_yaml, to_dict
from jmedllm.evaluate import EvalConfig, EvalError, PreparedItem, base_record, data_root_for, load_judge_for, \
    prepare_items, run_items, summarize, verdict_for
from jmedllm.rescore import reference
from jmedllm.rescore.inputs import ID_NORMALIZATIONS, Matched, Row, format_of, match_rows, read_rows
from jmedllm.run_identity import identity as run_identity
from jmedllm.run_identity import normalize_identity
from jmedllm.provenance import run_context, sha256_file
from jmedllm.runs import open_run

DISAGREEMENTS_FILE = "disagreements.jsonl"
SHOWN_IN_MARKDOWN = 30  # ids listed in summary.md; summary.json lists every one

# keys of a --fields mapping file -> ScoreConfig field
FIELD_KEYS = {
    "id": "id_field", "response": "response_field", "reference_verdict": "reference_verdict_field",
    "reference_answer": "reference_answer_field", "records": "records", "format": "format",
    "delimiter": "delimiter", "id_normalize": "id_normalize", "benchmark": "benchmark_field",
}


@dataclass
class ScoreConfig:
    """Everything `jmedllm score` needs."""

    input: str = ""
    benchmarks: list[str] = field(default_factory=list)
    out: str = ""
    data_root: str | None = None
    name: str | None = None  # the run's label (recorded as its model); default: the input file's stem
    format: str | None = None  # jsonl | csv | json; default: from the extension
    records: str | None = None  # JSON: dotted path of the records array inside a top-level object
    delimiter: str | None = None  # CSV: default ',' (tab for .tsv)
    id_field: str = "id"
    response_field: str = "response"
    reference_verdict_field: str | None = None
    reference_answer_field: str | None = None
    benchmark_field: str | None = None  # a field naming each row's benchmark (when several share ids)
    id_normalize: str = "exact"  # exact | loose (see rescore.inputs)
    prompt: str = ""  # a prompt template file whose declared answer pattern applies (nothing is rendered)
    answer_pattern: str | None = None
    first_line_only: bool = False
    extract_with: str | None = None
    extract_engine: str = "hf"
    dtype: str = "auto"
    device: str = "auto"
    batch_size: str = "auto"
    trust_remote_code: bool = False
    limit: int | None = None
    seed: int = 0
    bootstrap: int = 2000
    chunk_size: int = 256

    @property
    def label(self) -> str:
        return self.name or Path(self.input).stem

    def eval_config(self) -> EvalConfig:
        """The runner's view: a generate-mode run whose engine is the input file."""
        return EvalConfig(model=self.label, benchmarks=list(self.benchmarks), out=self.out, data_root=self.data_root,
                          engine="score", dtype=self.dtype, device=self.device, batch_size=self.batch_size,
                          mode="generate", prompt=self.prompt, seed=self.seed, limit=self.limit,
                          first_line_only=self.first_line_only, chunk_size=self.chunk_size, bootstrap=self.bootstrap,
                          trust_remote_code=self.trust_remote_code, answer_pattern=self.answer_pattern,
                          extract_with=self.extract_with, extract_engine=self.extract_engine)


@dataclass
class ScoreResult:
    path: Path
    summary: dict[str, Any]
    rows: int
    matched: Matched
    disagreements: list[dict[str, Any]]


def read_fields_file(path: str | Path) -> dict[str, Any]:
    """A small YAML mapping of the input's fields (``id: question_number``, ``response: answer``, ...)
    as ScoreConfig values; an unknown key is an error naming the file and the key."""
    data = load_yaml(path)
    unknown = [k for k in data if k not in FIELD_KEYS]
    if unknown:
        raise EvalError(f"{path}: unknown key(s) {', '.join(map(str, unknown))}; valid: {', '.join(FIELD_KEYS)}")
    return {FIELD_KEYS[k]: (None if v is None else str(v)) for k, v in data.items()}


def _reference(row: Row, cfg: ScoreConfig) -> dict[str, Any]:
    ref: dict[str, Any] = {}
    if cfg.reference_verdict_field:
        ref["verdict"] = reference.parse_verdict(row.reference_verdict, row.where, cfg.reference_verdict_field)
    if cfg.reference_answer_field:
        ref["answer"] = None if row.reference_answer is None else str(row.reference_answer)
    return ref


def _record(it: PreparedItem, row: Row, ref: dict[str, Any]) -> dict[str, Any]:
    rec = base_record(it) | {"output": row.response, "source": {"where": row.where, "id": row.raw_id}}
    if row.response_missing:
        rec["source"]["response_missing"] = True
    if ref:
        rec["reference"] = ref
    return rec


def run_score(cfg: ScoreConfig, argv: list[str] | None = None, judge_engine=None) -> ScoreResult:
    """Score the input file's responses into the run directory ``cfg.out`` (resumable, like eval)."""
    if not cfg.input:
        raise EvalError("no input file given")
    if not cfg.out:
        raise EvalError("no output directory given (--out DIR)")
    if not cfg.benchmarks:
        raise EvalError("no benchmark given (--benchmark igakuqa:2022, igakuqa119, custom:FILE.yaml, ...)")
    if cfg.id_normalize not in ID_NORMALIZATIONS:
        raise EvalError(f"unknown --id-normalize {cfg.id_normalize!r}; valid: {', '.join(ID_NORMALIZATIONS)}")
    path = Path(cfg.input).expanduser()
    fmt = format_of(path, cfg.format)
    rows = read_rows(path, fmt, id_field=cfg.id_field, response_field=cfg.response_field, records=cfg.records,
                     delimiter=cfg.delimiter, reference_verdict_field=cfg.reference_verdict_field,
                     reference_answer_field=cfg.reference_answer_field, benchmark_field=cfg.benchmark_field)
    if not rows:
        raise EvalError(f"{path}: no records")
    ecfg = cfg.eval_config()
    prepared = prepare_items(ecfg, data_root_for(ecfg), None, render=False)
    matched = match_rows(rows, [(it.key, it.original.id) for it in prepared.items], cfg.id_normalize)
    if not matched.by_key:
        raise EvalError(f"{path}: no id matches an item of {', '.join(cfg.benchmarks)} (ids here: "
                        f"{', '.join(r.raw_id for r in rows[:3])}; the benchmark's: "
                        f"{', '.join(it.original.id for it in prepared.items[:3])}); "
                        "check --id-field, or try --id-normalize loose")
    refs = {key: _reference(row, cfg) for key, row in matched.by_key.items()}  # bad values fail before any write
    scored = replace(prepared, items=[it for it in prepared.items if it.key in matched.by_key])

    if judge_engine is None and cfg.extract_with:
        judge_engine = load_judge_for(ecfg)
    judge_desc = judge.describe(judge_engine, cfg.extract_with) if judge_engine is not None and cfg.extract_with \
        else None
    source = {"sha256": sha256_file(path), "format": fmt, "records": cfg.records, "delimiter": cfg.delimiter,
              "fields": {k: getattr(cfg, v) for k, v in FIELD_KEYS.items() if v.endswith("_field")},
              "id_normalize": cfg.id_normalize}
    engine_desc = {"kind": "score", "input": source}
    identity = run_identity(ecfg, engine_desc, prepared.data_hashes, prepared.answer_patterns, judge_desc,
                            local_model=False)
    context = run_context(argv) | {
        "resolved_config": to_dict(cfg), "data_warnings": prepared.warnings,
        "source": {"path": str(path.resolve()), **source, "rows": len(rows), "matched": len(matched.by_key),
                   "unknown_ids": len(matched.unknown), "missing_items": len(matched.missing)},
    }
    with open_run(cfg.out, identity, context, normalize=normalize_identity) as run:  # locked until closed
        run_items(ecfg, scored, run, lambda chunk: [_record(it, matched.by_key[it.key], refs[it.key]) for it in chunk],
                  judge_engine, desc="score")
        summary, markdown = summarize(scored, run, ecfg)

        triples = []
        for it in scored.items:
            rec = run.done[it.key]
            triples.append((it.question, verdict_for(it.question, rec, "generate", cfg.first_line_only, it.answer_pattern),
                            rec))
        disagreements: list[dict[str, Any]] = []
        section = input_section(cfg, path, len(rows), matched)
        summary["score"] = section
        markdown += input_markdown(section)
        if cfg.reference_verdict_field or cfg.reference_answer_field:
            counts, disagreements = reference.compare(triples, verdict_field=cfg.reference_verdict_field,
                                                      answer_field=cfg.reference_answer_field)
            section["agreement"] = counts
            section["disagreements"] = len(disagreements)
            markdown += reference.markdown(counts, disagreements)
            _write_jsonl(run.path / DISAGREEMENTS_FILE, disagreements)
        run.write_summary(summary, markdown)
        return ScoreResult(run.path, summary, len(rows), matched, disagreements)


def input_section(cfg: ScoreConfig, path: Path, n_rows: int, matched: Matched) -> dict[str, Any]:
    """What the input held and how it matched: every unknown id and every missing item, listed."""
    empty = sorted(k for k, r in matched.by_key.items() if r.response_missing or not r.response.strip())
    return {
        "input": str(path), "rows": n_rows, "matched": len(matched.by_key), "id_normalize": cfg.id_normalize,
        "unknown_ids": {"count": len(matched.unknown),
                        "reason": "id names no item of the benchmark spec(s) given; not scored",
                        "items": [{"id": r.raw_id, "where": r.where} for r in matched.unknown]},
        "missing": {"count": len(matched.missing), "reason": "benchmark item without a response in the input; "
                    "not scored (exam verdicts count it wrong)", "items": list(matched.missing)},
        "empty_responses": {"count": len(empty), "reason": "null or empty response, scored as unparsed",
                            "items": empty},
    }


def listing(values: list[str], shown: int = SHOWN_IN_MARKDOWN) -> str:
    more = len(values) - shown
    return ", ".join(values[:shown]) + (f" … and {more} more (all in summary.json)" if more > 0 else "")


def input_notes(section: dict[str, Any], shown: int = SHOWN_IN_MARKDOWN) -> list[str]:
    """One line per list of the input section: unknown ids, missing items, empty responses."""
    unknown, missing, empty = section["unknown_ids"], section["missing"], section["empty_responses"]
    notes = []
    if unknown["count"]:
        notes.append(f"{unknown['count']} unknown id(s), naming no item of --benchmark (not scored): "
                     + listing([f"{u['id']} ({u['where']})" for u in unknown["items"]], shown))
    if missing["count"]:
        notes.append(f"{missing['count']} missing item(s), without a response in the input (not scored): "
                     + listing(missing["items"], shown))
    if empty["count"]:
        notes.append(f"{empty['count']} empty response(s), null or empty (scored as unparsed): "
                     + listing(empty["items"], shown))
    return notes


def input_markdown(section: dict[str, Any]) -> str:
    lines = ["", "## Input (re-scored outputs)", "",
             f"`{section['input']}`: {section['rows']} record(s), {section['matched']} matched to benchmark items "
             f"(ids: {section['id_normalize']})."]
    lines += [f"- {note}" for note in input_notes(section)]
    return "\n".join(lines) + "\n"


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records),
                   encoding="utf-8")
    os.replace(tmp, path)


__all__ = ["DISAGREEMENTS_FILE", "ScoreConfig", "ScoreResult", "input_notes", "read_fields_file", "run_score"]
