"""`neonet train all|cls` and `neonet demo --quick` through the real command line (slow stage)."""

import json

import pytest

from neonet_core.bundle import load_bundle
from neonet_core.cli.main import main
from neonet_core.demo_presets import QUICK
from neonet_core.phantom.cohort import generate_cohort
from neonet_core.workflows.cv import parse_models

MICRO = {
    "preset": "tiny",
    "preprocess": {"patch_size": 16, "roi_mm": 48.0},
    "seg": {"channels": [4, 8, 16], "roi_size": [16, 32, 32], "spacing_mm": 4.0, "train": {"batch_size": 2}},
    "ae": {"channels": [8, 16, 16], "train": {"batch_size": 4}},
    "ldm": {"channels": [16, 16, 16], "attention_levels": [False, False, False], "num_head_channels": 8, "sampling_steps": 2,
            "train": {"batch_size": 4}},
    "controlnet": {"conditioning_channels": [8, 16], "train": {"batch_size": 4}},
    "val_fraction": 0.25,
    "cls": {"train": {"batch_size": 4}},
}


@pytest.mark.slow
def test_train_all_then_cls_from_the_command_line(tmp_path):
    manifest = generate_cohort(tmp_path / "cohort", cases=8, positives=4, seed=1, size=(48, 48, 16), spacing=(3.0, 3.0, 5.0))
    config = tmp_path / "micro.json"
    config.write_text(json.dumps(MICRO))
    out = tmp_path / "bundle"
    common = ["--manifest", str(manifest), "--config", str(config), "--device", "cpu", "--epochs", "1", "--seed", "5"]
    assert main(["--progress", "none", "train", "all", *common, "--out", str(out)]) == 0
    bundle = load_bundle(out)
    assert set(bundle.networks) == {"seg", "autoencoder", "ldm", "controlnet", "cls"}
    for section in ("seg", "ae", "ldm", "controlnet", "cls"):  # --epochs/--seed reach every stage
        assert bundle.info["config"][section]["train"]["epochs"] == 1, section
        assert bundle.info["config"][section]["train"]["seed"] == 5, section
    assert 0.0 <= bundle.info["threshold"] <= 1.0 and bundle.info["cohort"]["cases"] == 8
    assert bundle.networks["cls"]["config"]["model_name"] == "cnn" and bundle.info["cohort"]["synthetic"] == 0  # the default
    # stage by stage: the default classifier needs nothing else; PattenNet needs the autoencoder, --neogen the LDM too
    assert main(["--progress", "none", "train", "cls", *common, "--out", str(tmp_path / "plain")]) == 0
    assert set(load_bundle(tmp_path / "plain").networks) == {"cls"}
    pattennet = ["--model", "pattennet"]
    assert main(["--progress", "none", "train", "cls", *common, *pattennet, "--out", str(tmp_path / "empty")]) == 1  # no encoder
    assert not (tmp_path / "empty").exists()
    staged = tmp_path / "staged"
    assert main(["--progress", "none", "train", "ae", *common, "--out", str(staged)]) == 0
    assert main(["--progress", "none", "train", "cls", *common, *pattennet, "--out", str(staged), "--neogen"]) == 1  # no LDM
    assert main(["--progress", "none", "train", "cls", *common, *pattennet, "--out", str(staged)]) == 0
    cls = load_bundle(staged)
    assert set(cls.networks) == {"autoencoder", "cls"} and cls.networks["cls"]["config"]["model_name"] == "pattennet"
    assert cls.info["config"]["cls"]["train"]["seed"] == 5 and cls.info["training"]["cls"]["steps"] >= 1
    assert main(["--progress", "none", "train", "cls", *common, *pattennet, "--out", str(staged)]) == 1  # already there


@pytest.mark.slow
def test_demo_quick_runs_the_whole_pipeline(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["--progress", "none", "demo", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"report: {out / 'cv' / 'report.md'}" in printed
    metrics = json.loads((out / "cv" / "metrics.json").read_text())["models"]
    assert set(metrics) == {spec.name for spec in parse_models(QUICK["models"])} == {"pattennet-regions+neogen", "cnn"}
    bundle = load_bundle(out / "bundle")
    assert set(bundle.networks) == {"seg", "autoencoder", "ldm", "controlnet", "cls"}
    assert bundle.networks["cls"]["config"]["model_name"] == "cnn"  # the default classifier, no NeoGen balancing
    assert bundle.info["threshold"] == metrics["cnn"]["youden_pooled"]["threshold"]  # from the cv
    result = json.loads(next((out / "prediction").glob("*result.json")).read_text())
    assert 0.0 <= result["probability"] <= 1.0
