"""Random crops for the NeoGen autoencoder (neonet_core.patches.cohort_crops) on a small phantom cohort,
and the autoencoder trainer taking them and recording the held-out PSNR."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neonet_core.config import get_preset
from neonet_core.errors import NeoNetError
from neonet_core.manifest import load_case, read_manifest
from neonet_core.neogen.training import train_autoencoder
from neonet_core.patches import CROP_SEPARATOR, cohort_crops, cohort_patches, crop_source, crops_of_cases, extract_crops
from neonet_core.phantom.background import body_mask
from neonet_core.phantom.cohort import generate_cohort

PER_CASE = 3


@pytest.fixture(scope="module", autouse=True)
def quiet(quiet_single_thread):
    """No progress output; one torch thread (conftest.quiet_single_thread)."""


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    manifest = generate_cohort(tmp_path_factory.mktemp("cohort"), cases=4, positives=2, seed=1, size=(64, 64, 24), spacing=(3.0, 3.0, 5.0))
    return read_manifest(manifest)


@pytest.fixture(scope="module")
def cfg():
    return get_preset("tiny")


@pytest.fixture(scope="module")
def crops(cases, cfg):
    return extract_crops(cases, cfg, PER_CASE, seed=7)


def test_crops_have_the_patch_grid_ids_patients_and_labels_of_their_case(cases, cfg, crops):
    n = cfg.preprocess.patch_size
    assert len(crops) == PER_CASE * len(cases)
    assert crops.images.shape == (len(crops), n, n, n) and crops.images.dtype == np.float32
    assert crops.tumour.shape == crops.images.shape and crops.anatomy.shape == crops.images.shape
    assert 0.0 <= crops.images.min() and crops.images.max() <= 1.0 and crops.images.std() > 0.05  # normalised like a TLCR patch
    assert crops.case_ids[:PER_CASE] == [f"{cases[0].case_id}{CROP_SEPARATOR}{j}" for j in range(PER_CASE)]
    by_case = {c.case_id: c for c in cases}
    for cid, pid, label in zip(crops.case_ids, crops.patient_ids, crops.labels):
        assert pid == by_case[crop_source(cid)].patient_id and label == by_case[crop_source(cid)].label
    assert not crops.synthetic.any()
    for roi in crops.rois:  # the TLCR's physical cube
        assert roi.size_mm == (cfg.preprocess.roi_mm,) * 3


def test_crop_centres_lie_in_the_body_and_the_cubes_inside_the_volume(cases, crops):
    for case in cases:
        image = load_case(case)[0]
        body = body_mask(image.array.astype(np.float32), *np.percentile(image.array, [1, 99]))
        lo, hi = -0.5, np.asarray(image.size_ijk) - 0.5  # the image's outer voxel edges, in index space
        rois = [r for r, cid in zip(crops.rois, crops.case_ids) if crop_source(cid) == case.case_id]
        assert len(rois) == PER_CASE
        for roi in rois:
            i, j, k = np.rint(image.physical_to_index(np.asarray(roi.center)[None])[0]).astype(int)
            assert body[k, j, i]
            corners = image.physical_to_index(roi.corners())
            assert np.all(corners >= lo - 1e-6) and np.all(corners <= hi + 1e-6)


def test_crops_follow_the_seed_and_differ_across_seeds_and_cases(cases, cfg, crops):
    again = extract_crops(cases, cfg, PER_CASE, seed=7)
    assert again.case_ids == crops.case_ids and np.array_equal(again.images, crops.images)
    other = extract_crops(cases, cfg, PER_CASE, seed=8)
    assert not np.array_equal(other.images, crops.images)
    assert [r.center for r in other.rois] != [r.center for r in crops.rois]
    alone = extract_crops(cases[1:2], cfg, PER_CASE, seed=7)  # a case's crops do not depend on the other cases
    assert np.array_equal(alone.images, crops_of_cases(crops, cases[1:2]).images)


def test_crops_are_cached_and_recropped_when_the_key_changes(cases, cfg, crops, tmp_path, monkeypatch):
    first = cohort_crops(cases, cfg, PER_CASE, 7, tmp_path)
    assert (tmp_path / "crops.npz").exists() and (tmp_path / "crops.key").exists()
    assert np.array_equal(first.images, crops.images)
    import neonet_core.patches as patches_module

    monkeypatch.setattr(patches_module, "extract_crops", lambda *a, **k: pytest.fail("recropped a cached set"))
    cached = cohort_crops(cases, cfg, PER_CASE, 7, tmp_path)
    assert cached.case_ids == crops.case_ids and np.array_equal(cached.images, crops.images)
    assert np.array_equal(cached.tumour, crops.tumour) and cached.patient_ids == crops.patient_ids
    monkeypatch.undo()
    assert len(cohort_crops(cases, cfg, PER_CASE + 1, 7, tmp_path)) == (PER_CASE + 1) * len(cases)  # per_case is in the key
    assert not np.array_equal(cohort_crops(cases, cfg, PER_CASE + 1, 8, tmp_path).images[:1], crops.images[:1])  # and the seed
    patches = cohort_patches(cases, cfg, tmp_path)  # the TLCR patches keep their own cache beside the crops
    assert (tmp_path / "patches.npz").exists() and len(patches) == len(cases)


def test_crops_of_cases_picks_the_crops_of_a_split(cases, crops):
    picked = crops_of_cases(crops, cases[:2])
    assert len(picked) == 2 * PER_CASE
    assert {crop_source(c) for c in picked.case_ids} == {cases[0].case_id, cases[1].case_id}
    assert len(crops_of_cases(crops, [])) == 0


def test_autoencoder_trains_on_crops_and_records_the_held_out_psnr(cases, cfg, crops, tmp_path):
    patches = cohort_patches(cases, cfg)
    train, val = patches.of_cases(cases[:3]), patches.of_cases(cases[3:])
    cfg = get_preset("tiny")
    cfg.ae.train.epochs, cfg.ae.train.batch_size = 1, 4
    train_autoencoder(train, val, cfg, tmp_path / "b", "cpu", crops=crops_of_cases(crops, cases[:3]))
    info = json.loads((tmp_path / "b" / "bundle.json").read_text())["training"]["ae"]
    assert info["crops"] == 3 * PER_CASE and info["train_cases"] == 3 and info["val_cases"] == 1
    assert info["steps"] == (3 + 3 * PER_CASE) // 4  # one epoch over the TLCR patches and the crops
    assert np.isfinite(info["val_psnr"]) and info["val_psnr"] == info["validation"]["psnr"] and info["best_val_psnr"] >= info["val_psnr"]
    with pytest.raises(NeoNetError, match="validation patient"):  # crops of a held-out patient would leak into the autoencoder
        train_autoencoder(train, val, cfg, tmp_path / "c", "cpu", crops=crops)
