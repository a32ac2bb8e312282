"""--samples K: majority vote and the two accuracies, on hand-computed cases, and through the runner."""

import json

import pytest

from jmedllm.evaluate import EvalConfig, run_eval
from jmedllm.sampling import majority_index, samples_summary
from jmedllm.schema import Completion, Question
from jmedllm.scoring import score_generation

Q = Question("q", "b", "text", ("x", "y", "z"), frozenset({2}), 1, "ja")


def verdicts(*answers):
    return [score_generation(Q, a) for a in answers]


def test_majority_vote():
    assert majority_index(verdicts("答え：a", "答え：c", "答え：c")) == 1
    assert majority_index(verdicts("答え：a", "答え：c")) == 0  # tie: the answer given first
    assert majority_index(verdicts("わからない", "答え：b", "？？")) == 1  # no answer does not vote
    assert majority_index(verdicts("？", "？")) == 0


def test_mean_and_majority_accuracy_hand_computed():
    # item 1: c c a -> 2/3 correct samples, majority c (right); item 2: a a c -> 1/3, majority a (wrong)
    per_item = [verdicts("答え：c", "答え：c", "答え：a"), verdicts("答え：a", "答え：a", "答え：c")]
    s = samples_summary(per_item, seed=0, n_resamples=200, temperature=0.7)
    assert s["k"] == 3
    assert s["mean_accuracy"]["mean"] == pytest.approx(0.5)  # (2/3 + 1/3) / 2
    assert s["majority_vote_accuracy"]["mean"] == pytest.approx(0.5)  # (1 + 0) / 2
    assert s["mean_accuracy"]["low"] <= 0.5 <= s["mean_accuracy"]["high"]


class SeededEngine:
    """Answers c on even seeds and a on odd ones (a sampler whose draws depend on the seed)."""

    kind = "seeded"

    def generate(self, prompts, params):
        assert params.temperature == 0.8
        return [Completion("答え：c" if params.seed % 2 == 0 else "答え：a") for _ in prompts]

    def loglikelihoods(self, requests):
        raise AssertionError

    def describe(self):
        return {"kind": self.kind}


def test_runner_samples(tmp_path, data_root):
    cfg = EvalConfig(model="s", benchmarks=["igakuqa:2022:A"], out=str(tmp_path / "run"), data_root=str(data_root),
                     limit=4, samples=3, temperature=0.8, bootstrap=100)
    out = run_eval(cfg, engine=SeededEngine())
    items = [json.loads(x) for x in (out / "items.jsonl").read_text().splitlines()]
    assert [s["seed"] for s in items[0]["samples"]] == [0, 1, 2]
    assert items[0]["verdict"]["predicted"] == [2]  # c, a, c -> c
    summary = json.loads((out / "summary.json").read_text())
    # gold of 116A1..A4: c c a d; each sample set c, a, c: share correct 2/3, 2/3, 1/3, 0 -> mean 5/12
    assert summary["samples"]["mean_accuracy"]["mean"] == pytest.approx(5 / 12)
    assert summary["samples"]["majority_vote_accuracy"]["mean"] == pytest.approx(2 / 4)
    assert summary["overall"]["metrics"]["accuracy"]["mean"] == pytest.approx(2 / 4)
