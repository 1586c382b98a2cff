"""Config resolution: presets, overrides and the one-line errors for bad input."""

import pytest

from gankit.config import apply_overrides, parse_override, preset_descriptions, preset_names, to_yaml
from gankit.variants import resolve, validate_config as validate
from gankit.errors import UserError


def test_presets_ship_with_descriptions():
    assert {"ring8-gan", "grid25-gan", "digits-dcgan"} <= set(preset_names())
    assert all(desc for desc in preset_descriptions().values())


def test_override_values_are_typed():
    assert parse_override("train.steps=200") == (["train", "steps"], 200)
    assert parse_override("optim.lr_d=1e-4")[1] in ("1e-4", 1e-4)
    cfg, name = resolve("ring8-gan", ["train.steps=200", "optim.lr_d=1e-4", "model.g_hidden=[8, 8]", "seed=3"])
    assert (cfg.train.steps, cfg.optim.lr_d, cfg.model.g_hidden, cfg.seed, name) == (200, 1e-4, [8, 8], 3, "ring8-gan")


def test_overrides_do_not_touch_the_source():
    raw = {"train": {"steps": 1}}
    assert apply_overrides(raw, ["train.steps=5"])["train"]["steps"] == 5
    assert raw["train"]["steps"] == 1


def test_unknown_key_suggests_the_closest():
    with pytest.raises(UserError, match="unknown config key 'train.stepz'") as info:
        resolve("ring8-gan", ["train.stepz=10"])
    assert "train.steps" in info.value.hint


def test_a_mistake_in_a_config_file_names_the_file_and_one_in_an_override_the_command_line(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("variant: gann\ntrain: {steps: 10}\n")
    with pytest.raises(UserError, match=f"^{path}: unknown variant 'gann'"):
        resolve(str(path), ["train.steps=20"])
    path.write_text("variant: gan\ntrain: {steps: 10}\n")
    with pytest.raises(UserError, match="^the command line: unknown config key 'train.stepz'"):
        resolve(str(path), ["train.stepz=20"])
    assert resolve(str(path), ["train.steps=20"])[0].train.steps == 20
    path.write_text("variant: gan\ntrain: {steps: -1}\n")  # the file is wrong, but an override fixes it
    with pytest.raises(UserError, match="^the command line: unknown config key 'train.stepz'"):
        resolve(str(path), ["train.steps=20", "train.stepz=20"])


@pytest.mark.parametrize("override, fragment", [("train.steps=-5", "train.steps"), ("train.steps=abc", "train.steps"),
                                                ("loss.name=nope", "loss.name"), ("data.channels=2", "data.channels"),
                                                ("optim.lr_d=.inf", "optim.lr_d"), ("optim.lr_g=.nan", "optim.lr_g"),
                                                ("train.steps=true", "train.steps.*not true or false"),
                                                ("optim.lr_d=false", "optim.lr_d.*not true or false"),
                                                ("data.channels=true", "data.channels.*not true or false"),
                                                ("model.g_hidden=[true,64]", "model.g_hidden.*not true or false"),
                                                ("data.size_range=[0.2,true]", "data.size_range.*not true or false")])
def test_bad_values_name_the_key(override, fragment):
    with pytest.raises(UserError, match=fragment):
        resolve("ring8-gan", [override])


def test_unknown_preset_suggests_a_name():
    with pytest.raises(UserError, match="unknown preset 'ring8-ga'") as info:
        resolve("ring8-ga")
    assert "ring8-gan" in info.value.hint


def test_malformed_yaml_reports_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  steps: 10\n  batch_size: [1, 2\n")
    with pytest.raises(UserError, match="malformed YAML at line"):
        resolve(str(bad))


def test_a_key_given_twice_is_refused_but_yaml_merges_still_override(tmp_path):
    """YAML keeps the last of two `train:` sections in silence: the first one's settings would be lost."""
    twice = tmp_path / "twice.yaml"
    twice.write_text("variant: gan\ntrain: {steps: 10}\ndata: {name: ring}\ntrain: {batch_size: 8}\n")
    with pytest.raises(UserError, match="line 4, column 1: the key 'train' is given twice"):
        resolve(str(twice))
    merged = tmp_path / "merged.yaml"  # a merged key given again overrides it, as YAML means
    merged.write_text("data: {name: ring}\ntrain:\n  <<: {steps: 7, batch_size: 8}\n  steps: 9\n")
    train = resolve(str(merged))[0].train
    assert (train.steps, train.batch_size) == (9, 8)
    listed = tmp_path / "listed.yaml"  # a list as a key is the config checks' to refuse, not a traceback
    listed.write_text("? [a, b]\n: 1\n")
    with pytest.raises(UserError):
        resolve(str(listed))


def test_override_without_equals_is_an_error():
    with pytest.raises(UserError, match="key=value"):
        parse_override("train.steps")


def test_resolved_config_round_trips_through_yaml(tmp_path):
    cfg, _ = resolve("digits-dcgan", ["train.steps=7"])
    path = tmp_path / "c.yaml"
    path.write_text(to_yaml(cfg))
    again, _ = resolve(str(path))
    assert again == cfg
    assert validate(cfg.model_dump()) == cfg
