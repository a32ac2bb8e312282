from dataclasses import dataclass, field

import pytest

from jmedllm.config import ConfigError, apply_overrides, from_mapping, load_yaml, to_dict


@dataclass
class Inner:
    r: int = 8
    alpha: float = 16.0


@dataclass
class Cfg:
    model: str
    steps: int = 10
    lr: float = 1e-4
    bf16: bool = False
    targets: list[str] = field(default_factory=list)
    lora: Inner = field(default_factory=Inner)
    adapter: str | None = None


def test_from_mapping_coerces_and_nests():
    cfg = from_mapping(Cfg, {"model": "m", "steps": "20", "bf16": "true", "targets": "q_proj,v_proj",
                             "lora": {"r": 64}})
    assert cfg.steps == 20 and cfg.bf16 is True and cfg.targets == ["q_proj", "v_proj"]
    assert cfg.lora == Inner(r=64, alpha=16.0)
    assert to_dict(cfg)["lora"] == {"r": 64, "alpha": 16.0}


def test_unknown_key_is_an_error_listing_valid_ones():
    with pytest.raises(ConfigError, match="unknown key\\(s\\) stpes.*valid keys"):
        from_mapping(Cfg, {"model": "m", "stpes": 3})


def test_bad_type_names_the_field():
    with pytest.raises(ConfigError, match="config.lora.r: expected an integer"):
        from_mapping(Cfg, {"model": "m", "lora": {"r": "eight"}})


def test_missing_required():
    with pytest.raises(ConfigError, match="missing required key 'model'"):
        from_mapping(Cfg, {})


def test_overrides_are_yaml_typed_and_dotted():
    data = apply_overrides({"model": "m", "lora": {"r": 8}}, ["lora.r=64", "lr=2e-4", "adapter=null", "bf16=true"])
    assert data == {"model": "m", "lora": {"r": 64}, "lr": 2e-4, "adapter": None, "bf16": True}
    assert from_mapping(Cfg, data).lora.r == 64
    with pytest.raises(ConfigError):
        apply_overrides({}, ["noequals"])


def test_load_yaml_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(tmp_path / "missing.yaml")
    p = tmp_path / "list.yaml"
    p.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_yaml(p)
