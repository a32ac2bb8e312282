"""Read what a report draws: run directories (through runs.load_run), their questions, and
training output folders (loss curves, checkpoint evaluations).

A path given to ``jmedllm report`` may be
- a run directory (config.json + items.jsonl + summary.json);
- a training output folder (holding jmedllm_train.json, or checkpoints with trainer_state.json):
  its log history becomes curves, and the run directories under its ``evals/`` folder (one per
  evaluated checkpoint, each carrying its step) join the runs;
- a folder of either (a recipe's output_dir with one folder per stage, a folder of runs):
  searched one level down.

Questions (gold answers, categories, years, forbidden choices) are read again from the
benchmark files named in each run's config, once per benchmark, from the data root given,
else the run's own, else $JMEDLLM_DATA_ROOT. Without them the report still shows every
stored number; a note says what is missing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from jmedllm.errors import UserError
from jmedllm.runs import CONFIG_FILE, SUMMARY_JSON, RunDirError, load_run
from jmedllm.schema import Question

TRAIN_RECORD = "jmedllm_train.json"
EVALS_DIR = "evals"


@dataclass
class RunData:
    label: str
    path: Path
    config: dict[str, Any]
    summary: dict[str, Any]
    records: dict[str, dict[str, Any]]  # item key -> stored record (with its verdict)
    questions: dict[str, Question] = field(default_factory=dict)  # item key -> question as shown

    @property
    def resolved(self) -> dict[str, Any]:
        return self.config.get("identity", {}).get("config", {}) or self.config.get("context", {}).get(
            "resolved_config", {})

    @property
    def mode(self) -> str:
        return str(self.resolved.get("mode") or self.summary.get("run", {}).get("mode") or "?")

    @property
    def model(self) -> str:
        return str(self.resolved.get("model") or "?")

    @property
    def adapter(self) -> str | None:
        return self.resolved.get("adapter")

    @property
    def training(self) -> dict[str, Any]:
        return self.config.get("context", {}).get("training") or {}

    @property
    def step(self) -> int | None:
        step = self.training.get("step")
        return int(step) if step is not None else None


@dataclass
class TrainingLog:
    label: str
    path: Path
    stage: str
    history: list[dict[str, Any]]  # transformers' log_history: one dict per logging step


@dataclass
class Collected:
    runs: list[RunData]
    trainings: list[TrainingLog]
    notes: list[str]


def _is_run(path: Path) -> bool:
    return (path / CONFIG_FILE).is_file() and (path / "items.jsonl").exists()


def _is_training(path: Path) -> bool:
    return (path / TRAIN_RECORD).is_file() or any(path.glob("checkpoint-*/trainer_state.json")) or (
        path / EVALS_DIR).is_dir()


def _training_log(path: Path, label: str) -> TrainingLog | None:
    history: list[dict[str, Any]] = []
    stage = path.name
    record = path / TRAIN_RECORD
    if record.is_file():
        data = json.loads(record.read_text(encoding="utf-8"))
        history = list(data.get("training", {}).get("log_history") or [])
        stage = str(data.get("stage") or stage)
    if not history:  # a run still training (or stopped): the newest checkpoint's state
        states = sorted(path.glob("checkpoint-*/trainer_state.json"),
                        key=lambda p: int(p.parent.name.split("-")[-1]) if p.parent.name.split("-")[-1].isdigit() else -1)
        if states:
            history = list(json.loads(states[-1].read_text(encoding="utf-8")).get("log_history") or [])
    if not history:
        return None
    return TrainingLog(label, path, stage, history)


def _expand(paths: Sequence[str | Path]) -> tuple[list[Path], list[Path]]:
    runs: list[Path] = []
    trainings: list[Path] = []

    def visit(p: Path, depth: int) -> bool:
        if _is_run(p):
            runs.append(p)
            return True
        if _is_training(p):
            trainings.append(p)
            evals = p / EVALS_DIR
            if evals.is_dir():
                runs.extend(sorted(d for d in evals.iterdir() if _is_run(d)))
            return True
        if depth > 0 and p.is_dir():
            found = [visit(c, depth - 1) for c in sorted(p.iterdir()) if c.is_dir()]
            return any(found)
        return False

    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise UserError(f"{p}: no such file or folder")
        if not visit(p, 2):
            raise UserError(f"{p}: neither a run directory (no {CONFIG_FILE} + items.jsonl) nor a training "
                            f"output folder (no {TRAIN_RECORD}, checkpoints or {EVALS_DIR}/), nor a folder of them")
    seen: set[Path] = set()
    unique = [r for r in runs if not (r.resolve() in seen or seen.add(r.resolve()))]
    return unique, trainings


def unique_labels(paths: Sequence[Path]) -> list[str]:
    """The shortest trailing path parts that tell the folders apart (the folder name when it does)."""
    depth = 1
    while True:
        labels = ["/".join(p.resolve().parts[-depth:]) for p in paths]
        if len(set(labels)) == len(labels) or depth > 8:
            return labels
        depth += 1


class QuestionCache:
    """Benchmarks read once per (spec, data root), shared by every run of a report."""

    def __init__(self, data_root: str | Path | None):
        self.data_root = data_root
        self._cache: dict[tuple[str, str], dict[str, Question] | None] = {}
        self.notes: list[str] = []

    def root_for(self, run: RunData) -> Path | None:
        from jmedllm.paths import DataRootError, resolve_data_root

        for candidate in (self.data_root, run.config.get("context", {}).get("resolved_config", {}).get("data_root"),
                          os.environ.get("JMEDLLM_DATA_ROOT")):
            if candidate:
                try:
                    return resolve_data_root(candidate)
                except DataRootError:
                    continue
        return None

    def questions(self, spec: str, root: Path) -> dict[str, Question] | None:
        key = (spec, str(root))
        if key not in self._cache:
            from jmedllm.benchmarks import load_benchmark

            try:
                bench = load_benchmark(spec, root)
            except Exception as exc:  # noqa: BLE001 - any loader problem: report without questions, say why
                self.notes.append(f"benchmark {spec} could not be read from {root} ({exc}); its items show stored "
                                  "numbers only")
                self._cache[key] = None
            else:
                self._cache[key] = {f"{bench.name}::{q.id}": q for q in bench.questions}
        return self._cache[key]

    def attach(self, run: RunData) -> None:
        specs = run.resolved.get("benchmarks") or []
        root = self.root_for(run)
        if root is None:
            if specs:
                self.notes.append(f"{run.label}: no data root (pass --data-root): gold answers, categories and years "
                                  "are not shown")
            return
        shuffle, seed = bool(run.resolved.get("shuffle")), int(run.resolved.get("seed") or 0)
        for spec in specs:
            questions = self.questions(str(spec), root)
            if not questions:
                continue
            for key in run.records.keys() & questions.keys():
                q = questions[key]
                if shuffle:
                    from jmedllm.prompts import shuffle_choices

                    q = shuffle_choices(q, seed)
                run.questions[key] = q


def load_report_run(path: Path, label: str) -> RunData:
    try:
        config, records = load_run(path)
    except RunDirError as exc:
        raise UserError(str(exc)) from None
    summary_path = path / SUMMARY_JSON
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.is_file() else {}
    return RunData(label, path, config, summary, {r["key"]: r for r in records})


def collect(paths: Sequence[str | Path], labels: Sequence[str] | None = None,
            data_root: str | Path | None = None) -> Collected:
    run_paths, train_paths = _expand(paths)
    if not run_paths and not train_paths:
        raise UserError("nothing to report: no run directory or training folder found")
    if labels and len(labels) != len(run_paths):
        raise UserError(f"{len(labels)} label(s) for {len(run_paths)} run director{'y' if len(run_paths) == 1 else 'ies'} "
                        f"({', '.join(str(p) for p in run_paths)})")
    run_labels = list(labels) if labels else unique_labels(run_paths)
    if len(set(run_labels)) != len(run_labels):
        raise UserError(f"two runs share a label: {', '.join(run_labels)}")
    cache = QuestionCache(data_root)
    runs = []
    notes: list[str] = []
    for p, label in zip(run_paths, run_labels):
        run = load_report_run(p, label)
        if not run.records:
            notes.append(f"{label}: no finished item yet ({p})")
        if not run.summary:
            notes.append(f"{label}: no summary.json (the run has not finished); numbers come from its finished items")
        cache.attach(run)
        runs.append(run)
    trainings = [t for p, lab in zip(train_paths, unique_labels(train_paths)) if (t := _training_log(p, lab))]
    notes += cache.notes
    return Collected(runs, trainings, notes)
