"""``neonet train seg`` and ``neonet segment`` through the real CLI entry point: exit codes, messages, files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from neonet_core.cli.main import main
from neonet_core.config import get_preset
from neonet_core.io import read_volume, write_volume
from neonet_core.neoseg import save_seg_network

sys.path.insert(0, str(Path(__file__).parent))
from test_neoseg import ellipsoid_case, silent_unet, write_cohort  # noqa: E402

TINY = {"preset": "tiny", "seg": {"channels": [4, 8, 16], "roi_size": [16, 32, 32], "train": {"checkpoint_every": 2, "lr": 0.01, "batch_size": 1}}}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-seg")
    manifest = write_cohort(root / "cohort", n=3, seed=2)
    config = root / "tiny_seg.json"
    config.write_text(json.dumps(TINY))
    return root, manifest, config


@pytest.fixture(scope="module")
def trained_bundle(cohort):
    root, manifest, config = cohort
    out = root / "bundle"
    code = main(["--progress", "none", "train", "seg", "--manifest", str(manifest), "--config", str(config), "--out", str(out),
                 "--epochs", "10", "--device", "cpu", "--seed", "3"])
    assert code == 0
    return out


def test_train_seg_writes_a_bundle_and_reports_the_dice(trained_bundle, capsys):
    info = json.loads((trained_bundle / "bundle.json").read_text())
    assert "seg" in info["networks"] and info["config"]["seg"]["channels"] == [4, 8, 16]
    assert info["config"]["seg"]["train"]["seed"] == 3 and info["config"]["seg"]["train"]["epochs"] == 10
    assert info["training"]["seg"]["steps"] == 10 * 2  # 2 training cases, batch 1


def test_train_seg_refuses_an_existing_bundle_and_resumes_it(cohort, trained_bundle, capsys):
    root, manifest, config = cohort
    args = ["--progress", "none", "train", "seg", "--manifest", str(manifest), "--config", str(config), "--out", str(trained_bundle), "--device", "cpu"]
    assert main(args + ["--epochs", "10", "--seed", "3"]) == 1
    assert "already holds a NeoSeg network; use --resume" in capsys.readouterr().err
    assert main(args + ["--epochs", "11", "--seed", "3", "--resume"]) == 0
    assert "best validation Dice" in capsys.readouterr().out
    assert json.loads((trained_bundle / "bundle.json").read_text())["training"]["seg"]["steps"] == 11 * 2


def test_train_seg_bad_inputs(cohort, tmp_path, capsys):
    root, manifest, config = cohort
    assert main(["train", "seg", "--manifest", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "b")]) == 1
    assert "missing.csv" in capsys.readouterr().err
    assert main(["train", "seg", "--manifest", str(manifest), "--config", "huge", "--out", str(tmp_path / "b")]) == 1
    assert "huge: not a preset" in capsys.readouterr().err
    assert main(["train", "seg", "--manifest", str(manifest), "--out", str(tmp_path / "b"), "--epochs", "0"]) == 1
    assert "--epochs must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "seg", "--out", str(tmp_path / "b")])  # --manifest missing: argparse usage error
    assert exit_info.value.code == 2


def test_segment_writes_the_mask_on_the_image_grid_and_prints_the_volume(cohort, trained_bundle, tmp_path, capsys):
    root, manifest, _ = cohort
    image_path = manifest.parent / "case0.nii.gz"
    out, prob = tmp_path / "mask.nii.gz", tmp_path / "prob.nrrd"
    code = main(["segment", "--bundle", str(trained_bundle), "--image", str(image_path), "--out", str(out),
                 "--probability", str(prob), "--device", "cpu", "--allow-empty"])
    assert code == 0
    text = capsys.readouterr().out
    image, mask, probability = read_volume(image_path), read_volume(out), read_volume(prob)
    assert mask.same_grid(image) and probability.same_grid(image) and mask.array.dtype == np.uint8
    assert set(np.unique(mask.array)) <= {0, 1} and 0.0 <= probability.array.min() and probability.array.max() <= 1.0
    ml = mask.array.sum() * np.prod(image.spacing) / 1000
    assert (f"tumour volume: {ml:.2f} mL" in text) if mask.array.any() else ("no tumour found" in text)


def test_segment_never_overwrites(cohort, trained_bundle, tmp_path, capsys):
    root, manifest, _ = cohort
    out = tmp_path / "mask.nii.gz"
    out.write_bytes(b"user data")
    code = main(["segment", "--bundle", str(trained_bundle), "--image", str(manifest.parent / "case0.nii.gz"), "--out", str(out)])
    assert code == 1
    assert f"{out}: already exists" in capsys.readouterr().err
    assert out.read_bytes() == b"user data"


def test_segment_reports_no_tumour_and_writes_nothing(tmp_path, capsys):
    cfg = get_preset("tiny")
    cfg.seg.channels, cfg.seg.roi_size = (4, 8, 16), (16, 32, 32)
    save_seg_network(tmp_path / "silent", silent_unet(cfg.seg), cfg)
    image, _ = ellipsoid_case(np.random.default_rng(0))
    write_volume(image, tmp_path / "scan.nii.gz")
    args = ["segment", "--bundle", str(tmp_path / "silent"), "--image", str(tmp_path / "scan.nii.gz"), "--out", str(tmp_path / "m.nii.gz")]
    assert main(args) == 1
    assert f"NeoSeg found no tumour in {tmp_path / 'scan.nii.gz'}" in capsys.readouterr().err
    assert not (tmp_path / "m.nii.gz").exists()
    assert main(args + ["--allow-empty"]) == 0
    assert "no tumour found; empty mask written" in capsys.readouterr().out
    assert read_volume(tmp_path / "m.nii.gz").array.sum() == 0


def test_segment_bad_inputs(cohort, trained_bundle, tmp_path, capsys):
    root, manifest, _ = cohort
    image = str(manifest.parent / "case0.nii.gz")
    assert main(["segment", "--bundle", str(tmp_path / "nope"), "--image", image, "--out", str(tmp_path / "a.nii.gz")]) == 1
    assert "nope: no such bundle" in capsys.readouterr().err
    assert main(["segment", "--bundle", str(trained_bundle), "--image", str(tmp_path / "x.nii.gz"), "--out", str(tmp_path / "a.nii.gz")]) == 1
    assert "x.nii.gz: file not found" in capsys.readouterr().err
    assert main(["segment", "--bundle", str(trained_bundle), "--image", image, "--out", str(tmp_path / "a.png")]) == 1
    assert "a.png: cannot write this format" in capsys.readouterr().err


def test_crop_finds_the_tumour_with_a_bundle_when_no_mask_is_given(cohort, trained_bundle, tmp_path, capsys):
    """`neonet crop --bundle`: NeoSeg localises, TLCR crops; no bundle and no mask -> a clear failure."""
    from neonet_core.tlcr import ROI

    root, manifest, _ = cohort
    args = ["--progress", "none", "crop", "--image", str(manifest.parent / "case0.nii.gz"), "--out", str(tmp_path / "auto"),
            "--bundle", str(trained_bundle)]
    assert main(args) == 0
    case = next(iter(json.loads((tmp_path / "auto" / "crop_report.json").read_text())["cases"].values()))
    assert case["tumour_source"] == "neoseg"
    truth = read_volume(manifest.parent / "case0_tumour.nii.gz")
    true_centre = truth.index_to_physical(np.argwhere(truth.array)[:, ::-1].mean(axis=0))
    assert np.linalg.norm(np.subtract(ROI.from_dict(case["roi"]).center, true_centre)) < 6.0

    image, truth = ellipsoid_case(np.random.default_rng(5), shape=(20, 48, 48))
    write_volume(image, tmp_path / "scan.nii.gz")
    cfg = get_preset("tiny")
    cfg.seg.channels, cfg.seg.roi_size = (4, 8, 16), (16, 32, 32)
    save_seg_network(tmp_path / "silent", silent_unet(cfg.seg), cfg)
    base = ["--progress", "none", "crop", "--image", str(tmp_path / "scan.nii.gz")]
    assert main(base + ["--out", str(tmp_path / "a")]) == 1
    assert "no tumour mask given (give one, or --bundle" in capsys.readouterr().err
    assert main(base + ["--out", str(tmp_path / "b"), "--bundle", str(tmp_path / "silent")]) == 1
    assert "NeoSeg found no tumour in" in capsys.readouterr().err
    write_volume(truth, tmp_path / "mask.nii.gz")
    assert main(base + ["--mask", str(tmp_path / "mask.nii.gz"), "--out", str(tmp_path / "c"), "--bundle", str(tmp_path / "silent")]) == 0
    report = json.loads((tmp_path / "c" / "crop_report.json").read_text())
    assert [c["tumour_source"] for c in report["cases"].values()] == ["user"]  # the user's mask wins
