"""Recipes: YAML loading, typed overrides, stage selection, errors that name the field."""

from __future__ import annotations

import pytest
import yaml

from jmedllm.cli import UserError
from jmedllm.train.recipe import (
    Recipe,
    apply_overrides,
    load_recipe,
    recipe_from_dict,
    resolve_paths,
    shipped_recipes,
)


def test_every_shipped_recipe_loads():
    names = shipped_recipes()
    for expected in ("jmedlora-7b-lora", "jmedlora-70b-qlora", "jmedllm-v1-qwen2-7b", "tiny-cpt", "tiny-sft"):
        assert expected in names
    for name in names:
        recipe = load_recipe(name)
        assert isinstance(recipe, Recipe) and recipe.stages and recipe.name == name


def test_jmedlora_recipes_carry_the_papers_settings():
    r7 = load_recipe("jmedlora-7b-lora").stage("sft")
    assert (r7.method, r7.lora.r, r7.lora.alpha, r7.lora.dropout) == ("lora", 8, 32, 0.05)
    assert r7.lora.target_modules == ["q_proj", "k_proj", "v_proj"]
    assert r7.training.learning_rate == 5e-5 and r7.training.batch_size == 8
    r70 = load_recipe("jmedlora-70b-qlora").stage("sft")
    assert (r70.method, r70.lora.r, r70.lora.alpha, r70.lora.dropout) == ("qlora", 64, 16, 0.1)
    assert r70.lora.target_modules == "all-linear"
    assert (r70.qlora.quant_type, r70.qlora.double_quant) == ("nf4", True)
    assert r70.training.learning_rate == 2e-4
    v1 = load_recipe("jmedllm-v1-qwen2-7b")
    assert [(s.name, s.kind, s.method) for s in v1.stages] == [("cpt", "cpt", "full"), ("sft", "sft", "lora")]
    assert v1.stage("cpt").training.epochs == 5 and v1.stage("cpt").model.name_or_path == "Qwen/Qwen2-7B"
    assert v1.stage("sft").model.name_or_path == "@cpt"


def test_overrides_are_typed_and_address_stages():
    r = load_recipe("jmedllm-v1-qwen2-7b", [
        "training.max_steps=7",                 # not a top-level field: every stage
        "sft.training.learning_rate=1e-4",      # YAML reads 1e-4 as a string; typed to float
        "stages.cpt.corpus.block_size=256",
        "sft.lora.target_modules=[q_proj,v_proj]",
        "seed=3",
        "output_dir=/tmp/x",
    ])
    assert [s.training.max_steps for s in r.stages] == [7, 7]
    assert r.stage("sft").training.learning_rate == 1e-4
    assert r.stage("cpt").training.learning_rate == 1e-5
    assert r.stage("cpt").corpus.block_size == 256
    assert r.stage("sft").lora.target_modules == ["q_proj", "v_proj"]
    assert r.seed == 3 and str(r.stage_dir("sft")) == "/tmp/x/sft"


def test_a_single_value_where_a_list_is_expected_becomes_a_list():
    r = load_recipe("tiny-cpt", ["corpus.paths=/data/a.txt"])
    assert r.stage().corpus.paths == ["/data/a.txt"]
    r = load_recipe("tiny-sft", ["lora.target_modules=all-linear", "contamination.benchmarks=all"])
    assert r.stage().lora.target_modules == "all-linear" and r.contamination.benchmarks == "all"
    assert r.contamination.reference == "all"  # the guard learns generic phrasing from every exam by default
    assert load_recipe("tiny-sft", ["contamination.reference=[]"]).contamination.reference == []


@pytest.mark.parametrize("override, message", [
    ("training.lerning_rate=1", "training: unknown key(s) lerning_rate; valid keys: .*learning_rate"),
    ("training.max_steps=many", "training.max_steps: expected an integer"),
    ("method=half", "method: 'half' is not one of 'full', 'lora', 'qlora'"),
    ("instructions.batching=zip", "batching: 'zip' is not one of"),
    ("nonsense", "not of the form key=value"),
    ("contamination.choice_share=1.5", "contamination.choice_share.*must be in \\[0, 1\\], got 1.5"),
    ("contamination.generic_df=-1", "contamination.generic_df.*must be >= 0"),
    ("grpo.toy_choices=13", "grpo.toy_choices.*must be in \\[2, 12\\]"),
])
def test_bad_overrides_name_the_field(override, message):
    with pytest.raises(UserError, match=message.replace("(s)", r"\(s\)")) as exc:
        load_recipe("tiny-sft", [override])
    assert "tiny-sft.yaml" in str(exc.value) or override == "nonsense"


def test_stage_references_must_point_backwards(tmp_path):
    data = {"name": "x", "stages": [{"name": "sft", "kind": "sft", "model": {"name_or_path": "@cpt"}},
                                    {"name": "cpt", "kind": "cpt", "method": "full"}]}
    with pytest.raises(UserError, match="must name an earlier stage"):
        recipe_from_dict(data)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "stages": [{"kind": "cpt", "method": "qlora"}]}))
    with pytest.raises(UserError, match="r.yaml.*full or lora"):
        load_recipe(path)


def test_stage_lookup_by_name_or_kind():
    r = load_recipe("jmedllm-v1-qwen2-7b")
    assert r.stage("cpt").kind == "cpt" and r.stage("sft").kind == "sft"
    with pytest.raises(UserError, match="2 stages"):
        r.stage()
    with pytest.raises(UserError, match="no stage named or of kind 'dpo'"):
        r.stage("dpo")


def test_resolved_recipe_round_trips_through_yaml(tmp_path):
    r = load_recipe("tiny-two-stage", ["seed=5"])
    path = tmp_path / "resolved.yaml"
    path.write_text(r.to_yaml())
    assert load_recipe(path) == r


def test_data_root_placeholder(tmp_path):
    from pathlib import Path

    assert resolve_paths(["${data_root}/medtxt", "b.txt"], tmp_path, where="w") == [tmp_path / "medtxt", Path("b.txt")]
    with pytest.raises(UserError, match="no data root"):
        resolve_paths(["${data_root}/medtxt"], None, where="w")


def test_apply_overrides_does_not_touch_its_input():
    raw = {"name": "x", "stages": [{"kind": "cpt", "training": {"max_steps": 1}}]}
    apply_overrides(raw, ["training.max_steps=2"])
    assert raw["stages"][0]["training"]["max_steps"] == 1
