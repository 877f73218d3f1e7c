"""Configs round-trip through JSON, presets differ where they should, bad options fail clearly."""

import json

import pytest

from neonet_core.config import NeoNetConfig, get_preset, load_config
from neonet_core.errors import InputError


@pytest.mark.parametrize("preset", ["tiny", "paper"])
def test_presets_round_trip_through_json(preset):
    config = get_preset(preset)
    assert NeoNetConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_presets_set_patch_sizes():
    assert get_preset("tiny").preprocess.patch_size == 32
    assert get_preset("paper").preprocess.patch_size == 64


def test_config_file_overrides_its_preset(tmp_path):
    path = tmp_path / "my.json"
    path.write_text(json.dumps({"preset": "paper", "seg": {"train": {"epochs": 3}}}))
    config = load_config(str(path))
    assert config.seg.train.epochs == 3 and config.seg.spacing_mm == get_preset("paper").seg.spacing_mm


def test_unknown_option_names_the_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"seg": {"chanels": [1]}}))
    with pytest.raises(InputError, match=r"bad\.json: invalid config: unknown SegConfig option\(s\): chanels"):
        load_config(str(path))
    with pytest.raises(ValueError, match="not a preset"):
        load_config("huge")
