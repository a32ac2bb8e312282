"""Issue 10, fault 8: duplicate YAML keys, recipe ranges and lines, and no empty stage folder.

Every YAML a user hands us (eval configs, recipes; custom mappings use the same reader) goes
through jmedllm.config.parse_yaml: duplicate keys name both lines, errors name file and line.
"""

from __future__ import annotations

import pytest

from jmedllm.cli import main
from jmedllm.config import YamlError, load_yaml, load_yaml_lines, parse_yaml
from jmedllm.errors import UserError
from jmedllm.train.recipe import load_recipe

RECIPE = """\
name: r
seed: 0
stages:
  - name: sft
    kind: sft
    model:
      name_or_path: m
    training:
      max_steps: 8
      learning_rate: 1.0e-4
    instructions:
      sources:
        - path: {qa}
"""


def test_duplicate_keys_name_both_lines(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: a\nmode: loglik\nshots: 1\nmode: generate\n", encoding="utf-8")
    with pytest.raises(YamlError) as info:
        load_yaml(path)
    assert (info.value.line, info.value.key) == (4, "mode")
    assert str(info.value) == (f"{path}, line 4: mode: duplicate key (first given at line 2, again at line 4); "
                               "YAML would silently keep the last one")
    assert isinstance(info.value, UserError)
    # nested mappings too; the same key in two different mappings is fine
    data, lines = parse_yaml("a:\n  x: 1\nb:\n  x: 2\nc:\n  - y: 1\n    z: 2\n", "s.yaml")
    assert data == {"a": {"x": 1}, "b": {"x": 2}, "c": [{"y": 1, "z": 2}]}
    assert lines[("b", "x")] == 4 and lines[("c", 0, "z")] == 7
    with pytest.raises(YamlError, match=r"s.yaml, line 3: y: duplicate key \(first given at line 2"):
        parse_yaml("c:\n  - y: 1\n    y: 2\n", "s.yaml")
    # YAML merge keys stay legal
    assert parse_yaml("base: &b {x: 1}\nd:\n  <<: *b\n  x: 2\n")[0]["d"] == {"x": 2}


def test_yaml_syntax_and_shape_errors_carry_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("a: 1\nb: [1, 2\nc: 3\n", encoding="utf-8")
    with pytest.raises(YamlError, match=rf"{path}, line \d: invalid YAML"):
        load_yaml(path)
    path.write_text("- 1\n- 2\n", encoding="utf-8")
    with pytest.raises(YamlError, match="line 1: the top level must be a mapping, got list"):
        load_yaml_lines(path)
    with pytest.raises(UserError, match="is a folder"):
        load_yaml(tmp_path)
    with pytest.raises(YamlError, match="could not determine a constructor"):  # no Python objects
        parse_yaml("a: !!python/object/apply:os.system ['id']\n")


def test_recipe_kind_cannot_change_through_a_duplicate_key(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(RECIPE.format(qa="qa.jsonl").replace("    kind: sft\n", "    kind: sft\n    kind: cpt\n"),
                    encoding="utf-8")
    with pytest.raises(UserError, match=r"r.yaml, line 6: kind: duplicate key \(first given at line 5"):
        load_recipe(path)


@pytest.mark.parametrize("field, value, message", [
    ("max_steps: 8", "max_steps: -5", r"line 9: stages\[0\].training.max_steps: must be -1 \(train for `epochs`\) "
                                      r"or >= 1, got -5"),
    ("max_steps: 8", "max_steps: 0", r"line 9: .*max_steps: must be -1"),
    ("learning_rate: 1.0e-4", "learning_rate: -1", r"line 10: stages\[0\].training.learning_rate: must be >= 0"),
    ("max_steps: 8", "batch_size: 0", r"line 9: stages\[0\].training.batch_size: must be >= 1, got 0"),
    ("max_steps: 8", "warmup_ratio: 1.5", r"line 9: .*warmup_ratio: must be in \[0, 1\)"),
    ("seed: 0", "seed: -1", r"line 2: seed: must be in \[0, 2\*\*32\)"),
    ("max_steps: 8", "max_steps: many", r"line 9: recipe.stages\[0\].training.max_steps: expected an integer"),
    ("max_steps: 8", "max_stepz: 8", r"line 9: recipe.stages\[0\].training: unknown key\(s\) max_stepz"),
])
def test_recipe_errors_carry_file_line_and_field(tmp_path, field, value, message):
    path = tmp_path / "r.yaml"
    path.write_text(RECIPE.format(qa="qa.jsonl").replace(field, value), encoding="utf-8")
    with pytest.raises(UserError, match=rf"recipe {path}, {message}"):
        load_recipe(path)


def test_a_bad_override_is_named_as_an_override(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(RECIPE.format(qa="qa.jsonl"), encoding="utf-8")
    with pytest.raises(UserError, match=r"\(set on the command line\): stages\[0\].training.max_steps: must be"):
        load_recipe(path, ["training.max_steps=-5"])
    for shipped in ("tiny-sft", "tiny-cpt", "jmedllm-v1-qwen2-7b"):
        with pytest.raises(UserError, match="lora.dropout: must be in"):
            load_recipe(shipped, ["lora.dropout=1.0"])


def test_failed_validation_leaves_no_empty_stage_folder(tmp_path, tiny_model_dir, capsys):
    """A stage stopped by its data (here a missing instruction file) leaves no folder behind."""
    path = tmp_path / "r.yaml"
    path.write_text(RECIPE.format(qa=tmp_path / "missing.jsonl"), encoding="utf-8")
    out = tmp_path / "out"
    code = main(["train", "sft", "--recipe", str(path), "--model", str(tiny_model_dir), "--output-dir", str(out),
                 "contamination.enabled=false"])
    assert code == 2 and "missing.jsonl" in capsys.readouterr().err
    assert not out.exists()


def test_eval_config_file_errors_name_file_line_and_field(tmp_path, capsys):
    path = tmp_path / "eval.yaml"
    path.write_text("model: m\nmode: loglik\nshots: 1\nmode: generate\n", encoding="utf-8")
    assert main(["eval", "--config", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "line 4: mode: duplicate key (first given at line 2, again at line 4)" in capsys.readouterr().err
    path.write_text("model: m\nbenchmarks: [igakuqa]\nshots: many\n", encoding="utf-8")
    assert main(["eval", "--config", str(path), "--out", str(tmp_path / "o")]) == 2
    assert f"{path}, line 3: eval.shots: expected an integer, got 'many'" in capsys.readouterr().err
    assert main(["eval", "--config", str(path), "shots=two", "--out", str(tmp_path / "o")]) == 2
    assert f"{path} (set on the command line): eval.shots: expected an integer" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
