"""vaelab.config: the run config's defaults, its one-line errors, its YAML in and out, its identity."""

import hashlib
import json
import math

import pytest
import yaml

from vaelab.config import (
    MAX_NESTING,
    EvalSettings,
    ModelConfig,
    build_config,
    config_hash,
    flatten,
    merge,
    nesting,
    preset,
    read_yaml,
    run_options,
    to_yaml,
)
from vaelab.errors import ConfigError
from vaelab.models import registry


def test_the_defaults_are_the_thesis_vae_on_the_embedded_digits():
    config = build_config({})
    assert config.data.name == "mnist-5k" and config.data.holdout == 0.2
    assert config.model.objective == "vae" and config.model.prior == "normal"
    # pytorch/examples vae/main.py's optimiser settings
    assert (config.train.lr, config.train.batch_size, config.train.epochs) == (1e-3, 128, 10)


@pytest.mark.parametrize("name", sorted(registry.PRESETS))
def test_every_preset_survives_its_yaml_and_keeps_its_identity(name):
    config = build_config({"model": preset(name), "train": {"epochs": 30}})
    again = build_config(yaml.safe_load(to_yaml(config)))
    assert again == config
    assert again.identity() == config.identity()


def test_the_identity_is_the_hash_of_the_canonical_json():
    values = {"b": 1, "a": {"y": [1, 2], "x": 0.5}}
    canonical = '{"a":{"x":0.5,"y":[1,2]},"b":1}'
    assert config_hash(values) == hashlib.sha256(canonical.encode()).hexdigest()[:16]
    assert config_hash(json.loads(json.dumps(values))) == config_hash({"a": {"y": [1, 2], "x": 0.5}, "b": 1})


def test_the_identity_changes_with_any_setting_and_not_otherwise():
    base = build_config({})
    assert build_config({}).identity() == base.identity()
    for change in ({"train": {"seed": 1}}, {"model": {"latent": 3}}, {"data": {"binarize": True}}):
        assert build_config(change).identity() != base.identity(), change


def test_an_idx_path_is_stored_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert build_config({"data": {"name": "idx:digits"}}).data.name == f"idx:{tmp_path / 'digits'}"


@pytest.mark.parametrize("values, message", [
    ({"bogus": 1}, "unknown config key 'bogus': remove it or check its spelling"),
    ({"train": {"lr": math.nan}}, "invalid config value for 'train.lr': Input should be a finite number (got nan)"),
    ({"data": {"holdout": 1.5}}, "invalid config value for 'data.holdout': Input should be less than 1 (got 1.5)"),
    ({"model": {"objective": "vae", "samples": 3}},
     "invalid config: samples applies to the iwae objective only, not vae: remove it or choose that model"),
    ({"model": {"objective": "vade", "pretrain_epochs": 20}, "train": {"epochs": 5}},
     "invalid config: train.epochs (5) must exceed model.pretrain_epochs (20): the vade stage comes after the "
     "pre-training"),
])
def test_a_bad_config_is_one_line_naming_the_key(values, message):
    with pytest.raises(ConfigError) as raised:
        build_config(values)
    assert str(raised.value) == message


def test_an_unknown_model_lists_every_registered_one():
    with pytest.raises(ConfigError, match="model.objective") as raised:
        build_config({"model": {"objective": "nope"}})
    assert all(name in str(raised.value) for name in registry.MODELS)
    assert "\n" not in str(raised.value)


def test_an_unknown_preset_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match="unknown model preset 'nope': choose one of ae, "):
        preset("nope")


def test_the_model_section_is_the_vae_where_no_objective_is_given():
    assert ModelConfig().objective == "vae"
    assert ModelConfig(objective="iwae", samples=3).samples == 3


def test_run_options_name_every_leaf_setting_once():
    options = run_options()
    assert options["dataset"][:2] == ("data", "name")
    assert options["lr"][:2] == ("train", "lr") and options["latent"][:2] == ("model", "latent")
    model_keys = {key for module in registry.MODELS.values() for key in module.Settings.model_fields}
    # every model's settings, and the options earlier versions took (``--conditional``), upgraded when read
    assert model_keys <= {key for section, key, _ in options.values() if section == "model"}
    assert len(options) == len(set(options))


def test_evaluation_settings_refuse_a_negative_or_missing_noise_scale():
    assert EvalSettings().sigmas == (0.0, 0.5, 1.0, 2.0, 4.0)
    for sigmas in ((-1.0,), (), (math.inf,)):
        with pytest.raises(ValueError):
            EvalSettings(sigmas=sigmas)


def test_read_yaml_reads_a_mapping_and_an_empty_file(tmp_path):
    (tmp_path / "run.yaml").write_text("train:\n  epochs: 3\n")
    (tmp_path / "empty.yaml").write_text("")
    assert read_yaml(tmp_path / "run.yaml") == {"train": {"epochs": 3}}
    assert read_yaml(tmp_path / "empty.yaml") == {}


@pytest.mark.parametrize("text, message", [
    ("a: 1\na: 2\n", "key 'a' appears twice (line 2): give each key once"),
    ("a: [1,\n", "is not valid YAML at line 2: fix its syntax"),
    ("- 1\n- 2\n", "must hold a mapping with data/model/train sections"),
    ("a: " + "[" * (MAX_NESTING + 1) + "]" * (MAX_NESTING + 1) + "\n", f"levels deep: vaelab's files nest a few "
                                                                        f"levels (at most {MAX_NESTING})"),
])
def test_read_yaml_refuses_a_damaged_file_in_one_line(tmp_path, text, message):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        read_yaml(path)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_read_yaml_names_a_missing_or_binary_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist: check the path given to --config"):
        read_yaml(tmp_path / "absent.yaml")
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00junk")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        read_yaml(tmp_path / "binary.yaml")


def test_merge_flatten_and_nesting_by_hand():
    base = {"train": {"lr": 1e-3, "epochs": 10}, "data": {"name": "mnist-5k"}}
    merged = merge(base, {"train": {"epochs": 2}, "model": {"latent": 3}})
    assert merged == {"train": {"lr": 1e-3, "epochs": 2}, "data": {"name": "mnist-5k"}, "model": {"latent": 3}}
    assert base["train"]["epochs"] == 10  # the base is not changed
    assert flatten(merged) == {"train.lr": 1e-3, "train.epochs": 2, "data.name": "mnist-5k", "model.latent": 3}
    assert [nesting(v) for v in (1, {}, [1], {"a": [1, {"b": 2}]})] == [0, 1, 1, 3]
