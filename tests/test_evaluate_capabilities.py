"""The runner and engine capabilities: image items skipped (and counted) by text-only engines,
sent as chat messages with image parts to engines that see images, letter mode through the
first token's top-k log-probs (absent labels reported, never 0), modes an engine cannot run.

Scripted engines (canned outputs) exercise the runner only; real engines are in tests/engines.
"""

import dataclasses
import json
import math

import pytest

import jmedllm.benchmarks as benchmarks
from jmedllm.engines.base import Capabilities, TopLogprobs
from jmedllm.evaluate import EvalConfig, EvalError, letter_scores_from_top, run_eval, verdict_for
from jmedllm.schema import Completion, ContinuationScore, Question

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082")


class TextEngine:
    kind = "scripted-text"

    def __init__(self):
        self.prompts = []

    def loglikelihoods(self, requests):
        return [[ContinuationScore(-float(len(c)), len(c), len(c)) for c in r.continuations] for r in requests]

    def generate(self, prompts, params):
        self.prompts += list(prompts)
        return [Completion("答え：c", 10, 3) for _ in prompts]

    def describe(self):
        return {"kind": self.kind}


class VisionChatEngine(TextEngine):
    """Takes chat messages (with image parts); letter mode through a scripted top-k."""

    kind = "scripted-vision"
    supports = Capabilities(loglik=False, letter="top_logprobs", chat=True, images=True)

    def __init__(self, top):
        super().__init__()
        self.top = top

    def first_token_logprobs(self, prompts, k):
        self.prompts += list(prompts)
        return [TopLogprobs(next(iter(self.top)), dict(self.top)) for _ in prompts]


@pytest.fixture
def image_bench(monkeypatch, tmp_path, data_root):
    """IgakuQA 2022 A with an image file attached to every third item (the loader for image
    folders is the custom mapping's; here the real questions get a real PNG)."""
    image = tmp_path / "x.png"
    image.write_bytes(PNG)
    real = benchmarks.load_benchmark

    def load(spec, root=None, **kw):
        bench = real(spec, root, **kw)
        qs = tuple(dataclasses.replace(q, images=(str(image),)) if i % 3 == 0 else q
                   for i, q in enumerate(bench.questions))
        return dataclasses.replace(bench, questions=qs)

    monkeypatch.setattr(benchmarks, "load_benchmark", load)
    return image


def cfg(tmp_path, data_root, **kw):
    base = dict(model="scripted", benchmarks=["igakuqa:2022:A"], out=str(tmp_path / "run"), data_root=str(data_root),
                limit=9, chunk_size=4, bootstrap=100)
    return EvalConfig(**(base | kw))


def test_text_engine_skips_image_items_and_counts_them(tmp_path, data_root, image_bench):
    engine = TextEngine()
    out = run_eval(cfg(tmp_path, data_root), engine=engine)
    summary = json.loads((out / "summary.json").read_text())
    skipped = summary["run"]["skipped"]["image"]
    assert skipped["count"] == 3 and skipped["items"] == ["igakuqa:2022:A::116A1", "igakuqa:2022:A::116A4",
                                                          "igakuqa:2022:A::116A7"]
    assert summary["overall"]["n"] == 6 and len(engine.prompts) == 6
    assert "skipped: image" in (out / "summary.md").read_text()


def test_vision_engine_gets_image_parts_and_summary_splits_scores(tmp_path, data_root, image_bench):
    engine = VisionChatEngine({"c": -0.1})
    out = run_eval(cfg(tmp_path, data_root), engine=engine)
    with_image = [p for p in engine.prompts if not isinstance(p, str)]
    assert len(with_image) == 3
    parts = with_image[0][-1]["content"]
    assert parts[0]["type"] == "text" and parts[-1] == {"type": "image", "path": str(image_bench)}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["skipped"]["image"]["count"] == 0
    # answers "c" everywhere; gold of 116A1..9 is c c a d c e d d d: image items A1, A4, A7 -> 1 of 3 right;
    # text-only A2 A3 A5 A6 A8 A9 -> 2 of 6
    assert summary["images"]["with_image"]["n"] == 3
    assert summary["images"]["with_image"]["metrics"]["accuracy"]["mean"] == pytest.approx(1 / 3)
    assert summary["images"]["text_only"]["metrics"]["accuracy"]["mean"] == pytest.approx(2 / 6)


def test_letter_via_top_logprobs_reports_absent_labels(tmp_path, data_root):
    # "b" and "Ｃ" among the top-k; d/e absent
    engine = VisionChatEngine({" b": -1.0, "Ｃ": -0.5, "x": -0.2})
    out = run_eval(cfg(tmp_path, data_root, mode="letter", limit=4), engine=engine)
    items = [json.loads(x) for x in (out / "items.jsonl").read_text().splitlines()]
    first = items[0]
    assert first["letter_via"] == "top_logprobs" and first["first_token"] == " b"
    assert first["scores"][1][0]["logprob"] == -1.0  # " b" spells "b"
    assert first["scores"][2][3]["logprob"] == -0.5  # "Ｃ" is the full-width upper variant of c
    assert first["scores"][3] == [{"logprob": None, "n_tokens": 1, "n_chars": 1, "is_greedy": False}] * 4
    assert first["verdict"]["predicted"] == [2]  # c beats b; absent d / e rank below both
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["top_logprobs"]["items_with_a_label_absent"] == 4
    assert summary["run"]["top_logprobs"]["items_without_any_label"] == 0


def test_no_label_in_top_k_is_no_answer_not_a_guess():
    q = Question("q1", "b", "text", ("x", "y", "z"), frozenset({0}), 1, "ja")
    scores = letter_scores_from_top({"hello": -0.1}, [["a", "A"], ["b", "B"], ["c", "C"]])
    assert all(s["logprob"] is None for g in scores for s in g)
    v = verdict_for(q, {"scores": scores}, "letter")
    assert v.predicted == frozenset() and not v.correct and v.method == "letter_absent_from_top_k"


def test_label_tokens_are_combined_by_logsumexp():
    scores = letter_scores_from_top({"a": math.log(0.2), " a": math.log(0.1)}, [["a"], ["b"]])
    assert scores[0][0]["logprob"] == pytest.approx(math.log(0.3))
    assert scores[1][0]["logprob"] is None


def test_mode_the_engine_cannot_run_is_a_clear_error(tmp_path, data_root):
    engine = VisionChatEngine({"a": -1})
    with pytest.raises(EvalError, match="cannot run loglik mode.*generate, letter"):
        run_eval(cfg(tmp_path, data_root, mode="loglik"), engine=engine)


class ReasoningEngine(TextEngine):
    """A reasoning model's outputs: thinking then an answer; every third answer cut by the budget."""

    def generate(self, prompts, params):
        out = []
        for i, _ in enumerate(prompts):
            if i % 3 == 2:
                out.append(Completion("<think>まず選択肢aを検討すると", 10, params.max_new_tokens, "length"))
            else:
                out.append(Completion("<think>aは誤り。cが正しい。</think>答え：c", 10, 12, "stop"))
        return out


def test_reasoning_kept_apart_never_scored_and_budget_hits_counted(tmp_path, data_root):
    out = run_eval(cfg(tmp_path, data_root, limit=6, chunk_size=6), engine=ReasoningEngine())
    items = [json.loads(x) for x in (out / "items.jsonl").read_text().splitlines()]
    assert items[0]["output"] == "答え：c" and items[0]["reasoning"] == "aは誤り。cが正しい。"
    assert items[0]["verdict"]["predicted"] == [2]  # the "a" in the thinking is not read as an answer
    assert items[2]["output"] == "" and items[2]["verdict"]["predicted"] == []  # cut off: no answer
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["hit_token_budget"] == 2
    assert "2 answer(s) hit the token budget" in (out / "summary.md").read_text()
