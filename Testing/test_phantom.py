"""Phantom cohort generator and ``neonet phantom``: determinism, labels, masks, files, refusals, CLI.

Small grids (the design field of view at coarse spacing) keep this file fast.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.ndimage import binary_dilation

from neonet_core.cli.main import main
from neonet_core.errors import InputError
from neonet_core.labels import ANATOMY_LABELS, TUMOUR_LABEL
from neonet_core.manifest import read_manifest
from neonet_core.phantom import PhantomParams, cohort_labels, generate_case, generate_cohort

SMALL = PhantomParams(size=(64, 64, 20), spacing=(3.0, 3.0, 6.0))  # same 192 x 192 x 120 mm field of view
TINY = dict(size=(32, 32, 10), spacing=(6.0, 6.0, 12.0))


@pytest.fixture(scope="module")
def pair():
    """Case 5 of seed 3 generated as negative and as positive."""
    return generate_case(5, 3, 0, SMALL), generate_case(5, 3, 1, SMALL)


def _same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def _arrays(case):
    return case.image.array, case.tumour.array, case.anatomy.array, case.extension


def test_same_seed_and_index_give_identical_arrays(pair):
    again = generate_case(5, 3, 1, SMALL)
    assert _same(_arrays(pair[1]), _arrays(again))


def test_other_seed_or_index_give_other_cases(pair):
    base = pair[1].image.array
    assert not np.array_equal(base, generate_case(5, 4, 1, SMALL).image.array)
    assert not np.array_equal(base, generate_case(6, 3, 1, SMALL).image.array)


def test_label_changes_only_the_pni_extension(pair):
    neg, pos = pair
    assert np.array_equal(neg.tumour.array, pos.tumour.array)
    assert np.array_equal(neg.anatomy.array, pos.anatomy.array)
    changed = neg.image.array != pos.image.array
    assert changed.any()
    near_extension = binary_dilation(pos.extension, iterations=3)  # blur and noise spread a little
    assert (changed & ~near_extension).sum() == 0


@pytest.mark.parametrize("index,difficulty", [(0, 0.0), (1, 0.5), (2, 1.0)])
def test_extension_mask_empty_for_negatives_present_for_positives(index, difficulty):
    params = PhantomParams(SMALL.size, SMALL.spacing, difficulty)
    assert generate_case(index, 0, 0, params).extension.sum() == 0
    pos = generate_case(index, 0, 1, params)
    assert pos.extension.sum() > 0
    assert not (pos.extension & (pos.tumour.array > 0)).any()  # extensions are not tumour-mask voxels


def test_masks_are_consistent(pair):
    _, case = pair
    tumour, anatomy = case.tumour.array, case.anatomy.array
    assert tumour.dtype == np.uint8 and set(np.unique(tumour)) == {0, 1}
    assert tumour.sum() >= 20
    assert tumour[~case.liver].sum() == 0  # inside the liver
    assert set(np.unique(anatomy)) <= {0, *ANATOMY_LABELS}
    assert set(np.unique(anatomy)) >= {0, 1, 2, 3, 4}
    assert np.array_equal(anatomy == TUMOUR_LABEL, tumour == 1)
    # nerves are not labelled: most nerve voxels carry liver/background (the rest cross ducts, vessels, tumour)
    assert case.nerves.sum() > 0
    assert np.mean(anatomy[case.nerves] <= 1) > 0.5
    assert np.all(anatomy[case.extension] != TUMOUR_LABEL)


def test_image_looks_like_a_hepatobiliary_phase(pair):
    _, case = pair
    image = case.image.array.astype(np.float64)
    anatomy = case.anatomy.array
    assert case.image.array.dtype == np.int16
    liver, tumour = image[anatomy == 1].mean(), image[anatomy == TUMOUR_LABEL].mean()
    ducts, vessels = image[anatomy == 2].mean(), image[anatomy == 3].mean()
    corner = image[:, :4, :4].mean()  # air outside the body
    assert liver > 1.3 * tumour and liver > 1.3 * ducts and liver > 1.3 * vessels
    assert corner < 0.15 * liver


def test_geometry_of_the_case(pair):
    _, case = pair
    for volume in (case.image, case.tumour, case.anatomy):
        assert volume.array.shape == (20, 64, 64)
        assert volume.spacing == SMALL.spacing
        assert np.allclose(volume.direction, np.eye(3))
        centre = volume.index_to_physical(np.array([31.5, 31.5, 9.5]))
        assert np.allclose(centre, 0.0, atol=1e-6)


@pytest.mark.parametrize("cases,positives,seed", [(128, 44, 0), (10, 3, 1), (5, 0, 2), (4, 4, 3)])
def test_cohort_labels_exact_and_deterministic(cases, positives, seed):
    labels = cohort_labels(cases, positives, seed)
    assert len(labels) == cases and labels.sum() == positives
    assert np.array_equal(labels, cohort_labels(cases, positives, seed))


def test_cohort_labels_shuffle_depends_on_seed():
    assert not np.array_equal(cohort_labels(128, 44, 0), cohort_labels(128, 44, 1))
    with pytest.raises(ValueError):
        cohort_labels(4, 5, 0)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom") / "cohort"
    return generate_cohort(out, cases=4, positives=2, seed=1, difficulty=0.5, **TINY)


def test_cohort_files_manifest_and_geometry(cohort):
    rows = read_manifest(cohort, require_labels=True, require_tumor_masks=True)
    assert [r.case_id for r in rows] == ["case_000", "case_001", "case_002", "case_003"]
    assert sum(r.label for r in rows) == 2
    assert [r.label for r in rows] == list(cohort_labels(4, 2, 1))
    assert all(r.patient_id == r.case_id for r in rows)
    header = cohort.read_text().splitlines()[0]
    assert header == "case_id,image,tumor_mask,anatomy_mask,label,patient_id"
    assert "cases/case_000_image.nii.gz" in cohort.read_text()  # relative paths
    for r in rows:
        image, tumour, anatomy = (sitk.ReadImage(str(p)) for p in (r.image, r.tumor_mask, r.anatomy_mask))
        assert image.GetPixelID() == sitk.sitkInt16
        assert tumour.GetPixelID() == anatomy.GetPixelID() == sitk.sitkUInt8
        for volume in (image, tumour, anatomy):
            assert volume.GetSize() == TINY["size"]
            assert np.allclose(volume.GetSpacing(), TINY["spacing"], atol=1e-6)
            assert np.allclose(volume.GetDirection(), np.eye(3).ravel(), atol=1e-6)
            assert np.allclose(volume.GetOrigin(), [-93.0, -93.0, -54.0], atol=1e-4)
        # the written case is the in-memory case
        label = int(r.label)
        index = int(r.case_id.split("_")[1])
        case = generate_case(index, 1, label, PhantomParams(**TINY))
        assert np.array_equal(sitk.GetArrayFromImage(image), case.image.array)
        assert np.array_equal(sitk.GetArrayFromImage(anatomy), case.anatomy.array)
    readme = (cohort.parent / "README.md").read_text()
    assert "NOT in the tumour mask" in readme and "seed 1" in readme
    assert json.loads((cohort.parent / "phantom.json").read_text())["positives"] == 2


def test_workers_give_identical_files(cohort, tmp_path):
    parallel = generate_cohort(tmp_path / "p", cases=4, positives=2, seed=1, difficulty=0.5, workers=2, **TINY)
    assert parallel.read_text() == cohort.read_text()
    for name in ("case_001_image.nii.gz", "case_002_tumour.nii.gz", "case_003_anatomy.nii.gz"):
        a = sitk.GetArrayFromImage(sitk.ReadImage(str(cohort.parent / "cases" / name)))
        b = sitk.GetArrayFromImage(sitk.ReadImage(str(parallel.parent / "cases" / name)))
        assert np.array_equal(a, b)


def test_refuses_a_foreign_non_empty_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a phantom output"):
        generate_cohort(tmp_path, cases=2, positives=1, seed=0, **TINY)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_refuses_a_phantom_with_other_parameters_and_reuses_the_same(tmp_path):
    out = tmp_path / "c"
    manifest = generate_cohort(out, cases=2, positives=1, seed=0, **TINY)
    first = (out / "cases" / "case_001_image.nii.gz").read_bytes()
    with pytest.raises(InputError, match="seed"):
        generate_cohort(out, cases=2, positives=1, seed=9, **TINY)
    (out / "notes.txt").write_text("mine")
    assert generate_cohort(out, cases=2, positives=1, seed=0, **TINY) == manifest  # same parameters: fine
    assert (out / "cases" / "case_001_image.nii.gz").read_bytes() == first
    assert (out / "notes.txt").read_text() == "mine"


def _cli(tmp_path, *extra):
    size = [str(v) for v in TINY["size"]]
    spacing = [str(v) for v in TINY["spacing"]]
    return main(["--progress", "none", "phantom", "--cases", "2", "--positives", "1", "--size", *size,
                 "--spacing", *spacing, *extra])


def test_cli_exit_codes(tmp_path, capsys):
    assert _cli(tmp_path, "--out", str(tmp_path / "ok")) == 0
    err = capsys.readouterr().err
    assert "manifest" in err and str(tmp_path / "ok" / "manifest.csv") in err
    assert len(read_manifest(tmp_path / "ok" / "manifest.csv")) == 2

    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "x.txt").write_text("x")
    assert _cli(tmp_path, "--out", str(tmp_path / "foreign")) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("neonet phantom: error:") and "not a phantom output" in err and "\n" not in err

    assert _cli(tmp_path, "--out", str(tmp_path / "bad"), "--difficulty", "2") == 1
    assert "difficulty" in capsys.readouterr().err
    assert main(["--progress", "none", "phantom", "--out", str(tmp_path / "b2"), "--cases", "3", "--positives", "5"]) == 1
    assert not (tmp_path / "bad").exists() and not (tmp_path / "b2").exists()


def test_cohort_is_published_whole_or_not_at_all(tmp_path, monkeypatch, fail_case):
    import os

    import neonet_core.phantom.cohort as cohort_module

    real = fail_case(cohort_module, "generate_case", 1)
    with pytest.raises(RuntimeError, match="disk full"):
        generate_cohort(tmp_path / "c", cases=3, positives=1, seed=0, **TINY)
    assert list(tmp_path.iterdir()) == []  # neither the folder nor a partial one
    monkeypatch.setattr(cohort_module, "generate_case", real)
    manifest = generate_cohort(tmp_path / "c", cases=3, positives=1, seed=0, **TINY)
    assert [p.name for p in tmp_path.iterdir()] == ["c"]
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "c").stat().st_mode & 0o777 == 0o777 & ~mask  # an ordinary folder, not a private temp one
    assert len(read_manifest(manifest)) == 3


def test_refuses_an_incomplete_phantom_of_an_older_version(tmp_path):
    out = tmp_path / "c"
    generate_cohort(out, cases=2, positives=1, seed=0, **TINY)
    (out / "manifest.csv").unlink()
    with pytest.raises(InputError, match="incomplete phantom"):
        generate_cohort(out, cases=2, positives=1, seed=0, **TINY)
