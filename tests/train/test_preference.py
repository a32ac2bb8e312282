"""Preference tuning on a tiny real model: pairs from exam questions (forbidden choices rejected first),
user preference files, and DPO / ORPO / KTO runs that move the rejected answer down relative to the chosen."""

from __future__ import annotations

import json

import pytest
import torch

from jmedllm.errors import UserError
from jmedllm.train import load_recipe
from jmedllm.train.preference import run_preference, stage_preferences
from jmedllm.train.preference_data import PreferenceError, preference_pairs, read_preferences
from jmedllm.train.provenance import RUN_RECORD


def completion_logprob(model, tok, prompt: str, completion: str) -> float:
    """Sum of the log-probabilities of the completion's tokens after the prompt (as TRL tokenises it)."""
    p = tok(prompt)["input_ids"]
    full = tok(prompt + completion)["input_ids"]
    ids = torch.tensor([full])
    with torch.no_grad():
        logits = model(input_ids=ids).logits.float()
    lp = torch.log_softmax(logits[0, :-1], -1)
    targets = ids[0, 1:]
    return float(sum(lp[i, targets[i]] for i in range(len(p) - 1, len(full) - 1)))


def margins(model, tok, pairs):
    return [completion_logprob(model, tok, p.prompt, p.chosen) - completion_logprob(model, tok, p.prompt, p.rejected)
            for p in pairs]


@pytest.fixture(scope="module")
def igakuqa_2018(data_root):
    from jmedllm.benchmarks import load_benchmark

    return list(load_benchmark("igakuqa:2018", data_root).questions)


def test_pairs_reject_a_forbidden_choice_when_the_item_has_one(igakuqa_2018):
    pairs, summary = preference_pairs(igakuqa_2018, family="alpaca", answer_style="text")
    by_id = {f"{q.benchmark}:{q.id}": q for q in igakuqa_2018}
    with_kinki = [q for q in igakuqa_2018 if q.meta.get("kinki") and not q.is_numeric]
    assert len(with_kinki) >= 20  # IgakuQA 2018 marks forbidden choices on dozens of items
    assert summary["items_with_kinki"] == len(with_kinki) == summary["rejected_is_kinki"]
    assert summary["skipped"] == {"numeric": sum(q.is_numeric for q in igakuqa_2018)}
    for p in pairs:
        q = by_id[p.id]
        bad = set(p.source["rejected_choices"])
        assert len(bad) == 1 and not bad & q.answer
        if q.meta.get("kinki"):
            assert bad <= set(q.meta["kinki"]) and p.source["rejected_is_kinki"]
        # the same number of choices in the rejected answer as in the gold one; chosen is the gold text
        assert p.chosen == "、".join(q.choices[i] for i in sorted(q.answer))
        rejected_set = (q.answer - {i for i in q.answer if q.choices[i] not in p.rejected.split("、")}) | bad
        assert p.rejected == "、".join(q.choices[i] for i in sorted(rejected_set))
    # with any_wrong, kinki items may reject any wrong choice; the draw is fixed by the seed
    again, _ = preference_pairs(igakuqa_2018, family="alpaca", rejected="any_wrong")
    assert again == preference_pairs(igakuqa_2018, family="alpaca", rejected="any_wrong")[0]


def test_explanation_pairs_differ_only_in_the_answer_line(data_root):
    from jmedllm.benchmarks import load_benchmark

    qs = list(load_benchmark("yakugakuqa:2024", data_root).questions)[:20]
    pairs, _ = preference_pairs(qs, family="alpaca", answer_style="explanation")
    assert pairs
    for p in pairs:
        c_expl, _, c_line = p.chosen.rpartition("\n")
        r_expl, _, r_line = p.rejected.rpartition("\n")
        assert c_expl == r_expl and c_line != r_line and c_line.startswith("答え")


def test_chat_family_pairs_are_conversational(igakuqa_2018):
    pairs, _ = preference_pairs(igakuqa_2018[:5], family="chat", answer_style="letter")
    p = pairs[0]
    assert isinstance(p.prompt, list) and p.prompt[-1]["role"] == "user"
    assert p.chosen[0]["role"] == p.rejected[0]["role"] == "assistant" and p.chosen != p.rejected


def test_user_preference_files(tmp_path):
    good = tmp_path / "pref.jsonl"
    good.write_text(json.dumps({"prompt": "Q?\n", "chosen": "A", "rejected": "B"}) + "\n\n"
                    + json.dumps({"prompt": [{"role": "user", "content": "Q?"}],
                                  "chosen": [{"role": "assistant", "content": "A"}],
                                  "rejected": [{"role": "assistant", "content": "B"}]}) + "\n", encoding="utf-8")
    got = read_preferences(good)
    assert [g.source["line"] for g in got] == [1, 3] and got[0].paired
    kto = tmp_path / "kto.jsonl"
    kto.write_text(json.dumps({"prompt": "Q", "completion": "A", "label": True}) + "\n", encoding="utf-8")
    assert read_preferences(kto)[0].label is True
    for body, message in [
        ({"prompt": "Q", "chosen": "A"}, r"jsonl:1: field 'rejected' missing"),
        ({"prompt": "Q", "chosen": "A", "rejected": "A"}, "same"),
        ({"prompt": "Q", "chosen": "A", "rejected": [{"role": "assistant"}]}, "rejected\\[0\\]"),
        ({"prompt": "Q", "completion": "A", "label": "yes"}, "'label' must be true or false"),
    ]:
        bad = tmp_path / "bad.jsonl"
        bad.write_text(json.dumps(body) + "\n", encoding="utf-8")
        with pytest.raises(PreferenceError, match=message):
            read_preferences(bad)


def test_guard_reads_prompt_chosen_and_rejected(tmp_path, data_root, tiny_model_dir):
    """A 2022 exam question hidden in the *rejected* answer of a user file stops the run."""
    from jmedllm.benchmarks import load_benchmark

    q = list(load_benchmark("igakuqa:2022", data_root).questions)[5]
    path = tmp_path / "pref.jsonl"
    path.write_text(json.dumps({"prompt": "問題\n", "chosen": "正しい答え", "rejected": q.text + "\n" + "\n".join(q.choices)},
                               ensure_ascii=False) + "\n", encoding="utf-8")
    recipe = load_recipe("tiny-dpo", [f"model.name_or_path={tiny_model_dir}", f"output_dir={tmp_path / 'out'}",
                                      f"preference.sources=[{{path: {path}}}]"])
    with pytest.raises(UserError, match=q.id):
        run_preference(recipe, data_root=data_root)


def test_unpaired_records_need_kto(tmp_path, data_root, tiny_model_dir):
    path = tmp_path / "kto.jsonl"
    path.write_text(json.dumps({"prompt": "Q", "completion": "A", "label": True}) + "\n", encoding="utf-8")
    recipe = load_recipe("tiny-dpo", [f"model.name_or_path={tiny_model_dir}", f"preference.sources=[{{path: {path}}}]"])
    with pytest.raises(UserError, match="dpo needs prompt/chosen/rejected"):
        stage_preferences(recipe.stage("dpo"), data_root)


@pytest.mark.parametrize("kind", ["dpo", "orpo", "kto"])
def test_tiny_preference_run_lowers_the_rejected_answer(tmp_path, data_root, tiny_model_dir, kind):
    """The trained model prefers the chosen answers more than the base did (margins of summed log-probs)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    recipe_name = "tiny-orpo" if kind == "orpo" else "tiny-dpo"
    extra = [f"kind={kind}"] if kind == "kto" else []
    if kind == "kto":
        extra.append("training.batch_size=8")  # KTO estimates its KL term from mismatched pairs of a batch
    recipe = load_recipe(recipe_name, [f"model.name_or_path={tiny_model_dir}", f"output_dir={tmp_path}", *extra])
    out = run_preference(recipe, data_root=data_root)
    record = json.loads((out / RUN_RECORD).read_text())
    assert record["kind"] == kind
    assert record["data"]["records"] + len(record["data"]["dropped_overlong"]) == 32
    assert record["data"]["records"] >= 20
    assert record["data"]["rejected_is_kinki"] >= 1  # forbidden choices were used as rejected answers
    assert record["contamination"]["clean"]

    dropped = set(record["data"]["dropped_overlong"])
    pairs = [p for p in stage_preferences(recipe.stage(kind), data_root)[0] if p.location not in dropped]
    assert len(pairs) == record["data"]["records"]
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    before = margins(base, tok, pairs)
    tuned = PeftModel.from_pretrained(base, out).eval()
    after = margins(tuned, tok, pairs)
    gain = [a - b for a, b in zip(after, before)]
    assert sum(gain) / len(gain) > 0.1, (kind, sum(gain) / len(gain))  # nats; orpo moves least (beta 0.1)
    assert sum(g > 0 for g in gain) >= 2 / 3 * len(gain)  # on the pairs trained on
