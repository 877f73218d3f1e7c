"""``neonet crop`` through the real CLI entry (main.main): one case, manifests, bad cases, overwrite."""

import json

import numpy as np
import pytest

from neonet_core.cli import main as cli_main
from neonet_core.config import PreprocessConfig
from neonet_core.io import read_volume, write_volume
from neonet_core.manifest import load_case, read_manifest
from neonet_core.markups import read_roi_mrk_json
from neonet_core.volume import Volume


@pytest.fixture
def neonet(monkeypatch):
    """Run ``neonet <argv>`` in-process with only the crop subcommand registered."""
    monkeypatch.setattr(cli_main, "COMMAND_MODULES", ["crop"])
    return lambda *argv: cli_main.main(["--progress", "none", *[str(a) for a in argv]])


def _write_case(folder, name, empty=False, shift=0):
    rng = np.random.default_rng(shift)
    image = rng.integers(100, 200, size=(30, 40, 40)).astype(np.int16)
    mask = np.zeros(image.shape, np.uint8)
    if not empty:
        mask[10:16, 12 + shift : 20 + shift, 15:22] = 1
        image[mask > 0] += 400
    geometry = dict(spacing=(1.0, 1.2, 2.0), origin=(5.0, -3.0, 10.0))
    write_volume(Volume(image, **geometry), folder / f"{name}.nii.gz")
    write_volume(Volume(mask, **geometry), folder / f"{name}_tumour.nii.gz")
    write_volume(Volume(mask * 4 + (mask == 0), **geometry), folder / f"{name}_anatomy.nii.gz")
    return folder / f"{name}.nii.gz", folder / f"{name}_tumour.nii.gz", folder / f"{name}_anatomy.nii.gz"


def test_one_case_nifti(tmp_path, neonet, capsys):
    image, mask, anatomy = _write_case(tmp_path, "c1")
    out = tmp_path / "out"
    assert neonet("crop", "--image", image, "--mask", mask, "--anatomy", anatomy, "--out", out, "--roi-mm", 40, "--patch-size", 20) == 0
    cases = read_manifest(out / "patches.csv", require_tumor_masks=True)
    assert [c.case_id for c in cases] == ["c1"]
    patch, tumour, anat = load_case(cases[0])
    assert patch.array.shape == (20, 20, 20) and np.allclose(patch.spacing, 2.0)
    assert patch.array.dtype == np.float32 and patch.array.min() >= 0.0 and patch.array.max() == 1.0
    assert tumour.array.sum() > 0 and set(np.unique(anat.array)) <= {0, 1, 4}
    roi = read_roi_mrk_json(out / "c1" / "roi.mrk.json")
    source = read_volume(image)
    assert np.allclose(roi.center, source.index_to_physical([18, 15.5, 12.5]), atol=1e-4)
    report = json.loads((out / "crop_report.json").read_text())
    assert report["cases"]["c1"]["status"] == "ok" and report["cases"]["c1"]["tumour_fits"]
    assert "cropped 1 of 1" in capsys.readouterr().err


def test_manifest_with_bad_cases_exits_1_and_writes_the_others(tmp_path, neonet, capsys):
    rows = ["case_id,image,tumor_mask,anatomy_mask,label,patient_id"]
    for name, empty, shift in (("good1", False, 0), ("empty", True, 0), ("good2", False, 5)):
        image, mask, anatomy = _write_case(tmp_path, name, empty, shift)
        rows.append(f"{name},{image.name},{mask.name},{anatomy.name},{int(shift > 0)},p_{name}")
    rows.append("missing,nowhere.nii.gz,nowhere_mask.nii.gz,,0,p_missing")
    (tmp_path / "cohort.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    assert neonet("crop", "--manifest", tmp_path / "cohort.csv", "--out", out, "--format", "npz", "--patch-size", 16) == 1
    err = capsys.readouterr().err
    assert "case empty:" in err and "empty tumour mask" in err and "empty_tumour.nii.gz" in err
    assert "case missing:" in err and "image not found" in err
    assert "cropped 2 of 4" in err
    report = json.loads((out / "crop_report.json").read_text())["cases"]
    assert {k: v["status"] for k, v in report.items()} == {"good1": "ok", "good2": "ok", "empty": "failed", "missing": "failed"}
    lines = (out / "patches.csv").read_text().splitlines()
    assert lines[0].startswith("case_id,image,tumor_mask,anatomy_mask,label,patient_id")
    assert [line.split(",")[0] for line in lines[1:]] == ["good1", "good2"]
    assert lines[2].split(",")[1:] == ["good2/patch.npz"] * 3 + ["1", "p_good2"]
    data = np.load(out / "good2" / "patch.npz")
    assert data["image"].shape == data["tumour"].shape == data["anatomy"].shape == (16, 16, 16)
    assert data["image"].dtype == np.float32 and data["tumour"].dtype == np.uint8
    roi_mm = PreprocessConfig().roi_mm  # the default cube, resampled to 16^3
    assert np.allclose(data["spacing"], roi_mm / 16) and json.loads(str(data["roi"]))["size_mm"] == [roi_mm] * 3
    assert not (out / "empty").exists()


def test_refuses_to_overwrite(tmp_path, neonet, capsys):
    image, mask, _ = _write_case(tmp_path, "c1")
    out = tmp_path / "out"
    args = ("crop", "--image", image, "--mask", mask, "--out", out, "--patch-size", 8)
    assert neonet(*args) == 0
    before = (out / "c1" / "image.nii.gz").read_bytes()
    capsys.readouterr()
    assert neonet(*args, "--no-normalise") == 1
    assert "already exists" in capsys.readouterr().err and (out / "c1" / "image.nii.gz").read_bytes() == before
    assert neonet(*args, "--no-normalise", "--overwrite") == 0
    raw = read_volume(out / "c1" / "image.nii.gz")
    assert raw.array.min() >= 100 and raw.array.max() > 150  # raw intensities now, not 0..1


def test_usage_errors(tmp_path, neonet, capsys):
    image, mask, _ = _write_case(tmp_path, "c1")
    assert neonet("crop", "--image", image, "--out", tmp_path / "o") == 1
    assert "no tumour mask" in capsys.readouterr().err
    assert neonet("crop", "--out", tmp_path / "o") == 1
    assert "either --image" in capsys.readouterr().err
    assert neonet("crop", "--manifest", tmp_path / "none.csv", "--out", tmp_path / "o") == 1
    assert "manifest not found" in capsys.readouterr().err


def test_case_ids_become_safe_folder_names():
    from neonet_core.batch import safe_case_name

    assert safe_case_name("pat 01/scan:2") == "pat_01_scan_2"
    assert safe_case_name("..hidden.") == "hidden" and safe_case_name("...") == "case"
    assert safe_case_name("patient-é.v2") == "patient-_.v2"
