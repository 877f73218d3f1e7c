"""The one patient splitter (every stage of a run holds out the same patients) and the one --device option."""

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from neonet_core.device import add_device_option, check_device_name, resolve_device
from neonet_core.errors import NeoNetError
from neonet_core.manifest import Case, read_manifest
from neonet_core.splits import SPLITS_FILE, hold_out


def _cases(n_patients=20, positives=7, unlabelled=False):
    rng = np.random.default_rng(0)
    out = []
    for p in range(n_patients):
        for s in range(int(rng.integers(1, 3))):
            out.append(Case(f"p{p}_s{s}", Path("x"), Path("y"), None, None if unlabelled else int(p < positives), f"p{p}"))
    return out


def test_hold_out_is_stratified_grouped_and_deterministic():
    cases = _cases()
    split = hold_out(cases, 0.25, seed=1)
    assert split == hold_out(cases, 0.25, seed=1) and split != hold_out(cases, 0.25, seed=2)
    train, val = split.apply(cases)
    assert {c.patient_id for c in train}.isdisjoint({c.patient_id for c in val}) and len(train) + len(val) == len(cases)
    held = {c.patient_id: c.label for c in val}
    assert sorted(held.values()).count(1) == 2 and sorted(held.values()).count(0) == 3  # round(0.25 * 7), round(0.25 * 13)
    assert len(hold_out(_cases(4, 0, unlabelled=True), 0.01, 0).val_patients) == 1  # at least one patient
    assert hold_out(_cases(1, 0, unlabelled=True), 0.5, 0).val_patients == ()  # never every patient
    assert hold_out(cases, 0.0, 0).val_patients == ()


def test_a_folder_keeps_one_hold_out_per_cohort(tmp_path):
    cases = _cases()
    first = hold_out(cases, 0.25, seed=1, folder=tmp_path)
    # a later stage asking with another fraction and seed gets the saved hold-out of this cohort
    assert hold_out(cases, 0.5, seed=9, folder=tmp_path) == first
    other = [Case(f"q{i}", Path("x"), Path("y"), None, i % 2, f"q{i}") for i in range(6)]
    assert hold_out(other, 0.5, seed=9, folder=tmp_path).val_patients[0].startswith("q")  # another cohort, its own split
    assert len(json.loads((tmp_path / SPLITS_FILE).read_text())["holdouts"]) == 2
    (tmp_path / SPLITS_FILE).write_text("{not json")
    with pytest.raises(NeoNetError, match="splits.json: not a valid splits file"):
        hold_out(cases, 0.25, seed=1, folder=tmp_path)


def test_every_stage_of_a_bundle_validates_on_the_same_patients(tmp_path):
    """NeoSeg and the NeoGen autoencoder trained into one bundle (different seeds and fractions asked)
    hold out the same patients: the ones in the bundle's splits.json."""
    from neonet_core.config import get_preset
    from neonet_core.neogen.data import LatentCache
    from neonet_core.progress import set_default_mode
    from neonet_core.workflows.training import train_stage
    from test_neogen_data import make_cohort

    manifest = make_cohort(tmp_path / "cohort")
    cfg = get_preset("tiny")
    cfg.seg.channels, cfg.seg.roi_size = (4, 8, 16), (16, 16, 16)
    for section in (cfg.seg, cfg.ae):
        section.train.epochs, section.train.batch_size = 1, 4
    set_default_mode("none")
    try:
        train_stage("seg", manifest, cfg.with_overrides(seed=1), tmp_path / "bundle", "cpu")
        later = cfg.with_overrides(seed=2)
        later.val_fraction = 0.5
        train_stage("ae", manifest, later, tmp_path / "bundle", "cpu")
    finally:
        set_default_mode("bar")
    (saved,) = json.loads((tmp_path / "bundle" / SPLITS_FILE).read_text())["holdouts"].values()
    cases = {c.case_id: c for c in read_manifest(manifest)}
    cache = LatentCache.read(tmp_path / "bundle" / "runs" / "latents.safetensors")
    cache_val = {cases[cache.case_ids[i]].patient_id for i in cache.indices("val")}
    assert cache_val == set(saved["val_patients"]) and saved["seed"] == 1
    info = json.loads((tmp_path / "bundle" / "bundle.json").read_text())["training"]
    assert info["seg"]["val_cases"] == info["ae"]["val_cases"] == sum(c.patient_id in cache_val for c in cases.values())


@pytest.mark.parametrize("name", ["auto", "cpu", "cuda", "cuda:1", "mps"])
def test_device_names_accepted(name):
    assert check_device_name(name) == name


@pytest.mark.parametrize("name", ["banana", "cuda:", "cuda:x", "gpu", "", "cpu:0"])
def test_bad_device_names_are_one_clear_error(name):
    with pytest.raises(NeoNetError, match="not a device"):
        check_device_name(name)
    parser = argparse.ArgumentParser()
    add_device_option(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--device", name])


def test_resolve_device_checks_this_machine():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(NeoNetError, match="--device cuda:1: CUDA is not available"):
            resolve_device("cuda:1")


def _subcommands(parser):
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for action in actions:
        for name, sub in action.choices.items():
            nested = list(_subcommands(sub))
            yield from nested or [(name, sub)]


def test_every_command_that_runs_networks_has_the_one_device_option():
    from neonet_core.cli.main import build_parser

    with_device = {name for name, sub in _subcommands(build_parser()) if any("--device" in a.option_strings for a in sub._actions)}
    assert {"seg", "ae", "ldm", "controlnet", "cls", "all", "segment", "generate", "balance", "cv", "predict", "crop", "demo"} <= with_device
    for name, sub in _subcommands(build_parser()):
        for action in sub._actions:
            if "--device" in action.option_strings:
                assert action.choices is None and action.type.__name__ == "_argparse_device", name  # cuda:N accepted everywhere


def test_the_cli_model_choices_come_from_the_registry():
    from neonet_core.neocls.models import classifier_names
    from neonet_core.workflows.cv import parse_models

    assert [s.model for s in parse_models(list(classifier_names()), neogen=False)] == list(classifier_names())
    with pytest.raises(NeoNetError, match="unknown model"):
        parse_models(["vgg"])
