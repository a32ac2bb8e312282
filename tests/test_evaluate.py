"""Runner mechanics with a scripted engine (canned outputs); real-model runs are in test_eval_e2e.py."""

import json

import pytest

from jmedllm.evaluate import EvalConfig, EvalError, default_shot_pool, prepare_items, run_eval
from jmedllm.runs import RunDirError
from jmedllm.schema import Completion, ContinuationScore


class ScriptedEngine:
    """Answers 'c' to every prompt; scores a continuation by minus its length. Counts calls."""

    kind = "scripted"

    def __init__(self, answer="答え：c"):
        self.answer = answer
        self.calls = 0

    def loglikelihoods(self, requests):
        self.calls += 1
        return [[ContinuationScore(-float(len(c)), len(c), len(c)) for c in r.continuations] for r in requests]

    def generate(self, prompts, params):
        self.calls += 1
        return [Completion(self.answer, 10, 3) for _ in prompts]

    def format_chat(self, messages, add_generation_prompt=True):
        return "\n".join(f"<{m['role']}>{m['content']}" for m in messages) + "\n<assistant>"

    def describe(self):
        return {"kind": self.kind, "answer": self.answer}


def cfg(tmp_path, data_root, **kw):
    base = dict(model="scripted", benchmarks=["igakuqa:2022:A"], out=str(tmp_path / "run"), data_root=str(data_root),
                limit=10, chunk_size=4, bootstrap=200)
    return EvalConfig(**(base | kw))


def test_generate_run_writes_run_directory(tmp_path, data_root):
    out = run_eval(cfg(tmp_path, data_root), engine=ScriptedEngine())
    config = json.loads((out / "config.json").read_text())
    assert config["identity"]["data_hashes"]  # every data file hashed
    assert all(len(h) == 64 for h in config["identity"]["data_hashes"].values())
    assert "transformers" in config["context"]["versions"]
    items = [json.loads(x) for x in (out / "items.jsonl").read_text().splitlines()]
    assert len(items) == 10
    first = items[0]
    assert first["key"] == "igakuqa:2022:A::116A1" and first["output"] == "答え：c"
    assert first["verdict"]["predicted"] == [2]
    summary = json.loads((out / "summary.json").read_text())
    # 116A1..116A10: gold answers c, c, a, d, c, e, d, d, d, d (read off 116-A.jsonl): "c" right 3 times
    assert summary["overall"]["n"] == 10
    assert summary["overall"]["metrics"]["accuracy"]["mean"] == pytest.approx(3 / 10)
    assert "accuracy" in (out / "summary.md").read_text()


def test_rerun_resumes_without_recomputing(tmp_path, data_root):
    engine = ScriptedEngine()
    out = run_eval(cfg(tmp_path, data_root), engine=engine)
    before = (out / "items.jsonl").read_bytes()
    again = ScriptedEngine()
    run_eval(cfg(tmp_path, data_root), engine=again)
    assert again.calls == 0
    assert (out / "items.jsonl").read_bytes() == before


def test_partial_run_resumes_to_the_same_summary(tmp_path, data_root):
    full = run_eval(cfg(tmp_path, data_root, out=str(tmp_path / "full")), engine=ScriptedEngine())
    part_dir = tmp_path / "part"
    run_eval(cfg(tmp_path, data_root, out=str(part_dir), limit=6), engine=ScriptedEngine())
    lines = (part_dir / "items.jsonl").read_text().splitlines(keepends=True)
    # simulate a kill: 5 whole records and half of the sixth
    (part_dir / "items.jsonl").write_text("".join(lines[:5]) + lines[5][:17])
    engine = ScriptedEngine()
    run_eval(cfg(tmp_path, data_root, out=str(part_dir)), engine=engine)
    assert engine.calls == 2  # chunk [4..7] (one item left) and chunk [8..9]
    assert (part_dir / "summary.json").read_text() == (full / "summary.json").read_text()
    assert (part_dir / "items.jsonl").read_text() == (full / "items.jsonl").read_text()


class SchedulingEngine(ScriptedEngine):
    """A ScriptedEngine whose description carries scheduling keys (as the HF engine's does)."""

    def __init__(self, answer="答え：c", **described):
        super().__init__(answer)
        self.described = described

    def describe(self):
        return super().describe() | self.described


def test_scheduling_keys_are_recorded_but_do_not_split_runs(tmp_path, data_root):
    """How an engine batches its work (costs, static cache, the trims) moves scores by rounding only,
    like the batch size: a run resumes across a change of them, including from a config.json whose
    stored identity still holds such keys (written before they were left out); the whole
    description is in the context. A key that changes results (the answer) still refuses."""
    first = SchedulingEngine(scoring_cost={"forward": 15.0}, decode_attention_by_row_groups=False, device="cpu")
    out = run_eval(cfg(tmp_path, data_root), engine=first)
    config = json.loads((out / "config.json").read_text())
    assert "scoring_cost" not in config["identity"]["engine"] and "device" not in config["identity"]["engine"]
    assert config["context"]["described"]["engine"]["scoring_cost"] == {"forward": 15.0}
    assert config["context"]["described"]["engine"]["device"] == "cpu"
    # an older run directory: its stored identity recorded the scheduling keys
    config["identity"]["engine"]["scoring_cost"] = {"forward": 15.0}
    config["identity"]["engine"]["last_mlp_on_read_positions_only"] = False
    (out / "config.json").write_text(json.dumps(config))
    again = SchedulingEngine(scoring_cost={"forward": 60.0}, decode_attention_by_row_groups=True, device="cpu")
    run_eval(cfg(tmp_path, data_root), engine=again)
    assert again.calls == 0  # resumed: every item was done
    with pytest.raises(RunDirError, match="engine.answer"):
        run_eval(cfg(tmp_path, data_root), engine=SchedulingEngine(answer="答え：a"))


def test_changed_prompt_refuses_to_mix_runs(tmp_path, data_root):
    run_eval(cfg(tmp_path, data_root), engine=ScriptedEngine())
    with pytest.raises(RunDirError, match="config.prompt"):
        run_eval(cfg(tmp_path, data_root, prompt="terse"), engine=ScriptedEngine())


def test_loglik_mode_excludes_numeric_items_and_says_so(tmp_path, data_root):
    # 116B50 is a numeric-answer item (no choices)
    out = run_eval(cfg(tmp_path, data_root, benchmarks=["igakuqa:2022:B"], limit=None, mode="loglik"),
                   engine=ScriptedEngine())
    summary = json.loads((out / "summary.json").read_text())
    na = summary["run"]["not_applicable"]
    assert "igakuqa:2022:B::116B50" in na["items"] and na["count"] >= 1
    assert summary["run"]["items_done"] + na["count"] == 50
    assert "not scorable in loglik mode" in (out / "summary.md").read_text()


def test_letter_mode_records_variant_scores(tmp_path, data_root):
    out = run_eval(cfg(tmp_path, data_root, mode="letter", limit=2), engine=ScriptedEngine())
    rec = json.loads((out / "items.jsonl").read_text().splitlines()[0])
    assert len(rec["scores"]) == 5 and len(rec["scores"][0]) == len(rec["continuations"][0]) > 1


def test_shuffle_records_permutation_and_scores_remapped_gold(tmp_path, data_root):
    out = run_eval(cfg(tmp_path, data_root, shuffle=True, limit=4), engine=ScriptedEngine())
    recs = [json.loads(x) for x in (out / "items.jsonl").read_text().splitlines()]
    for rec in recs:
        perm = rec["permutation"]
        assert sorted(perm) == [0, 1, 2, 3, 4]
        # the model said 'c' = shown position 2 = original choice perm[2]
        assert rec["verdict"]["predicted"] == [2]


def test_few_shot_never_uses_the_evaluated_item(tmp_path, data_root):
    out = run_eval(cfg(tmp_path, data_root, shots=2, limit=5), engine=ScriptedEngine())
    for line in (out / "items.jsonl").read_text().splitlines():
        rec = json.loads(line)
        assert len(rec["shots"]) == 2
        assert rec["id"] not in rec["shots"]
        assert all(s.startswith("115") for s in rec["shots"])  # default pool: the 2021 exam


def test_default_shot_pool():
    assert default_shot_pool("igakuqa:2022") == "igakuqa:2021"
    assert default_shot_pool("igakuqa-en:2018") == "igakuqa-en:2022"
    assert default_shot_pool("igakuqa") == "igakuqa119"
    assert default_shot_pool("igakuqa:116") == "igakuqa:2021"  # exam numbers select years too
    assert default_shot_pool("igakuqa119") == "igakuqa:2022"
    assert default_shot_pool("pubmedqa") == "pubmedqa:train" and default_shot_pool("pubmedqa:train") is None
    assert default_shot_pool("yakugakuqa:2024") == "yakugakuqa:2023"
    # no split apart from the evaluated items: no default pool (the runner refuses)
    assert default_shot_pool("medqa") is None and default_shot_pool("custom:x.yaml") is None


def test_bad_names_list_valid_ones(tmp_path, data_root):
    with pytest.raises(EvalError, match="valid: alpaca"):
        prepare_items(cfg(tmp_path, data_root, prompt="nope"), data_root, None)
    with pytest.raises(Exception, match="igakuqa"):
        prepare_items(cfg(tmp_path, data_root, benchmarks=["igakuq"]), data_root, None)


def test_compare_two_runs_paired(tmp_path, data_root):
    from jmedllm.report import compare, compare_markdown

    a = run_eval(cfg(tmp_path, data_root, out=str(tmp_path / "a")), engine=ScriptedEngine("答え：c"))
    b = run_eval(cfg(tmp_path, data_root, out=str(tmp_path / "b")), engine=ScriptedEngine("答え：d"))
    result = compare([a, b], ["says-c", "says-d"], ["accuracy"], n_resamples=500)
    paired = result["paired"][0]["overall"]["accuracy"]
    # gold c, c, a, d, c, e, d, d, d, d: "c" right on 3 items, "d" right on 5; they never agree on a right
    # answer, so McNemar discordant pairs are b = 3 (only c right), c = 5 (only d right)
    assert paired["n"] == 10
    assert paired["mean_base"] == pytest.approx(0.3) and paired["mean_other"] == pytest.approx(0.5)
    assert paired["diff"] == pytest.approx(0.2)
    assert (paired["mcnemar_b"], paired["mcnemar_c"]) == (3, 5)
    # exact two-sided binomial: 2 * P(X <= 3 | n=8, 1/2) = 2 * (1+8+28+56)/256 = 186/256
    assert paired["mcnemar_p"] == pytest.approx(186 / 256)
    text = compare_markdown(result)
    assert "says-d" in text and "+20.0" in text


def test_user_template_file_renders_like_its_family(tmp_path, data_root):
    from jmedllm.prompts import PACKAGED_TEMPLATES

    template = PACKAGED_TEMPLATES / "alpaca_example.j2"  # reproduces the alpaca family exactly
    by_file = run_eval(cfg(tmp_path, data_root, out=str(tmp_path / "f"), prompt=str(template), limit=3),
                       engine=ScriptedEngine())
    by_name = run_eval(cfg(tmp_path, data_root, out=str(tmp_path / "n"), limit=3), engine=ScriptedEngine())
    prompts = lambda d: [json.loads(x)["prompt"] for x in (d / "items.jsonl").read_text().splitlines()]
    assert prompts(by_file) == prompts(by_name)


@pytest.mark.parametrize("mode", ["generate", "loglik", "letter"])
def test_every_registered_benchmark_runs_through_the_runner(mode, tmp_path, data_root):
    from jmedllm.benchmarks import benchmark_names

    names = [n for n in benchmark_names() if n != "custom"]
    specs = [f"{n}:limit=3" for n in names]
    # one explicit pool for all: most benchmarks have no split apart from the evaluated one
    out = run_eval(cfg(tmp_path, data_root, benchmarks=specs, limit=None, mode=mode, shots=1, shuffle=True,
                       shot_pool="igakuqa:2018"), engine=ScriptedEngine())
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["by"]["benchmark"]) == set(names)
    assert summary["run"]["items_done"] == 3 * len(names)
    # exam verdicts exactly where the exam rules apply (IgakuQA 2018-2022 with points); 119 is named
    assert {(e["benchmark"], e["exam"]) for e in summary["exams"]} == {("igakuqa", 112), ("igakuqa-en", 112)}
    assert summary["exams_without_points"] == [119]


def test_tolerated_source_quirks_are_recorded_with_the_run(tmp_path, data_root):
    out = run_eval(cfg(tmp_path, data_root, benchmarks=["igakuqa:2018:A"], limit=2), engine=ScriptedEngine())
    warnings = json.loads((out / "config.json").read_text())["context"]["data_warnings"]
    # 112-A_metadata.jsonl line 27 writes the kinki of 112A27 as one string 'cde'
    assert any("112-A_metadata.jsonl:27" in w and "'cde'" in w for w in warnings)


def test_shots_never_come_from_the_evaluated_items(tmp_path, data_root):
    # MedQA holds only its test split: no default pool, a clear refusal (was: shots from the test set)
    with pytest.raises(EvalError, match=r"--shots 2 on medqa:limit=2: .*give --shot-pool"):
        prepare_items(cfg(tmp_path, data_root, benchmarks=["medqa:limit=2"], shots=2), data_root, None)
    # a pool too small for the shots asked: an EvalError naming the way out (was: a traceback)
    with pytest.raises(EvalError, match="larger --shot-pool or fewer --shots"):
        prepare_items(cfg(tmp_path, data_root, benchmarks=["medqa:limit=2"], shots=2, shot_pool="medqa:limit=2"),
                      data_root, None)
    # PubMedQA: exemplars from its train split, never from the evaluated test split
    prepared = prepare_items(cfg(tmp_path, data_root, benchmarks=["pubmedqa:limit=2"], shots=1), data_root, None)
    from jmedllm.benchmarks import load_benchmark

    test_ids = {q.id for q in load_benchmark("pubmedqa", data_root)}
    assert all(s not in test_ids for it in prepared.items for s in it.shot_ids)


def test_loglik_on_numeric_only_items_is_a_clear_error(tmp_path, data_root):
    # 116A: its numeric items only (no choices) -> nothing loglik can score (was: "aggregate needs ...")
    from jmedllm.benchmarks import load_benchmark

    numeric = [q.id for q in load_benchmark("igakuqa:2022", data_root) if q.is_numeric]
    assert numeric
    with pytest.raises(EvalError, match="nothing to score in loglik mode: all 1 selected item"):
        run_eval(cfg(tmp_path, data_root, benchmarks=["igakuqa:2022:n_choices=0:limit=1"], mode="loglik",
                     limit=None), engine=ScriptedEngine())
    assert not (tmp_path / "run").exists()  # refused before anything is written
