"""Corpus mixing for continued pretraining: token shares by hand, and a tiny CPT run on two MedTxt parts."""

from __future__ import annotations

import json

import pytest

from jmedllm.train import load_recipe, run_cpt
from jmedllm.train.mixing import mix_parts
from jmedllm.train.provenance import RUN_RECORD


def test_shares_by_hand():
    # part A: 2 documents of 10 tokens (20); part B: 4 of 5 tokens (20). Total 40; weights 3:1 ->
    # A 30 tokens (its 20, then 1 document of a second pass), B 10 tokens (2 of its 4 documents).
    a = [[1] * 10, [2] * 10]
    b = [[3] * 5, [4] * 5, [5] * 5, [6] * 5]
    docs, source, stats = mix_parts([a, b], [3, 1], seed=0, names=["med", "general"])
    med, gen = stats["parts"]
    assert (med["target_tokens"], med["mixed_tokens"], med["passes"], med["mixed_documents"]) == (30, 30, 2, 3)
    assert (gen["target_tokens"], gen["mixed_tokens"], gen["passes"], gen["mixed_documents"]) == (10, 10, 1, 2)
    assert (med["achieved_share"], gen["achieved_share"]) == (0.75, 0.25)
    assert sorted(sum(d) // len(d) for d in docs if d[0] in (1, 2)) in ([1, 1, 2], [1, 2, 2])
    assert all(0 <= s < 6 for s in source) and len(docs) == 5
    assert mix_parts([a, b], [3, 1], seed=0)[0] == mix_parts([a, b], [3, 1], seed=0)[0]


@pytest.mark.parametrize("weights, message", [([1], "1 weights for 2"), ([0, 0], "positive sum"), ([1, -1], "non-negative")])
def test_bad_weights(weights, message):
    with pytest.raises(ValueError, match=message):
        mix_parts([[[1]], [[2]]], weights)


def test_tiny_cpt_with_two_parts(tmp_path, data_root, tiny_model_dir):
    cr, rr = data_root / "medtxt" / "MedTxt-CR-JA-test.xml", data_root / "medtxt" / "MedTxt-RR-JA-test.xml"
    recipe = load_recipe("tiny-cpt", [f"model.name_or_path={tiny_model_dir}", f"output_dir={tmp_path}",
                                      f"corpus.paths=[{cr}, {rr}]", "corpus.weights=[0.8, 0.2]",
                                      "training.max_steps=2", "contamination.benchmarks=[igakuqa:2022]"])
    out = run_cpt(recipe, data_root=data_root)
    mixing = json.loads((out / RUN_RECORD).read_text())["data"]["mixing"]
    shares = [p["achieved_share"] for p in mixing["parts"]]
    assert shares[0] == pytest.approx(0.8, abs=0.05) and shares[1] == pytest.approx(0.2, abs=0.05)
    with pytest.raises(Exception, match="one weight per path"):
        run_cpt(load_recipe("tiny-cpt", [f"model.name_or_path={tiny_model_dir}", f"output_dir={tmp_path / 'b'}",
                                         f"corpus.paths=[{cr}]", "corpus.weights=[1, 2]"]), data_root=data_root)
