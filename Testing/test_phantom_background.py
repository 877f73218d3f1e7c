"""Phantom lesions on real backgrounds (``neonet phantom --background``): grids, crop, labels, PNI
extensions vs decoys, determinism, intensities on MR and CT, files, refusals, CLI.

Backgrounds: Testing/Data's abdominal MR (with its organ labels, liver = 5) and 5-slice CT DICOM series.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage as ndi

from neonet_core.cli.main import main
from neonet_core.errors import InputError
from neonet_core.io import read_volume
from neonet_core.labels import TUMOUR_LABEL
from neonet_core.manifest import read_manifest
from neonet_core.phantom import BackgroundSpec, PhantomParams, cohort_labels, generate_background_case, load_background
from neonet_core.phantom.background_cohort import CASES_NAME, assign_backgrounds, generate_background_cohort

CUBE = np.ones((3, 3, 3), dtype=bool)  # 26-neighbourhood


@pytest.fixture(scope="module")
def mr(data_dir):
    return load_background(BackgroundSpec(data_dir / "abdomen_mr.nii.gz", data_dir / "abdomen_mr_organs.nii.gz", (5,)))


@pytest.fixture(scope="module")
def ct(data_dir):
    return load_background(BackgroundSpec(data_dir / "abdomen_ct_dicom5"))


def _arrays(case):
    return [case.image.array, case.tumour.array, case.extension, case.decoys] + ([case.anatomy.array] if case.anatomy else [])


def _same_geometry(a, b, tol=1e-6) -> bool:
    return (np.allclose(a.spacing, b.spacing, atol=tol) and np.allclose(a.origin, b.origin, atol=tol)
            and np.allclose(a.direction, b.direction, atol=tol))


@pytest.mark.parametrize("which", ["mr", "ct"])
def test_without_crop_masks_are_on_the_background_grid(which, request):
    background = request.getfixturevalue(which)
    case = generate_background_case(0, 0, 1, background, crop=0.0)
    volumes = [case.image, case.tumour] + ([case.anatomy] if which == "mr" else [])
    assert (case.anatomy is None) == (which == "ct")  # anatomy only where a site mask says what the host is
    for v in volumes:
        assert v.array.shape == background.volume.array.shape
        assert _same_geometry(v, background.volume)
    assert case.image.array.dtype == background.volume.array.dtype == np.int16
    outside = ~case.inserted
    assert np.array_equal(case.image.array[outside], background.volume.array[outside])
    assert case.inserted.mean() < 0.05 and (case.image.array != background.volume.array).any()


@pytest.mark.parametrize("index", [1, 2])
def test_crop_is_documented_and_the_rest_of_the_background_unchanged(mr, index):
    case = generate_background_case(index, 7, index % 2, mr, crop=0.1)
    i, j, k = case.crop_start
    nk, nj, ni = case.image.array.shape
    original = mr.volume.array[k:k + nk, j:j + nj, i:i + ni]
    assert case.image.array.shape != mr.volume.array.shape  # cropped
    assert np.allclose(case.image.origin, mr.volume.index_to_physical(np.array([i, j, k], float)), atol=1e-6)
    for v in (case.image, case.tumour, case.anatomy):
        assert v.array.shape == case.image.array.shape
        assert _same_geometry(v, case.image)
        assert np.allclose(v.spacing, mr.volume.spacing, atol=1e-6) and np.allclose(v.direction, mr.volume.direction, atol=1e-6)
    assert np.array_equal(case.image.array[~case.inserted], original[~case.inserted])
    # the tumour sits in the liver, around the chosen site
    liver = np.isin(read_volume(mr.spec.site_mask).array[k:k + nk, j:j + nj, i:i + ni], [5])
    tumour = case.tumour.array > 0
    assert tumour.sum() >= 8 and not (tumour & ~liver).any()
    assert np.array_equal(case.anatomy.array == TUMOUR_LABEL, tumour)
    assert np.array_equal(case.anatomy.array > 0, liver | tumour)
    site_ijk = np.rint(case.image.physical_to_index(np.array(case.site))).astype(int)
    dist = ndi.distance_transform_edt(~tumour, sampling=case.image.spacing[::-1])
    assert dist[tuple(site_ijk[::-1])] < 12.0


def test_same_seed_identical_other_seed_or_index_different(mr):
    a = generate_background_case(3, 5, 1, mr)
    b = generate_background_case(3, 5, 1, mr)
    assert all(np.array_equal(x, y) for x, y in zip(_arrays(a), _arrays(b)))
    assert a.crop_start == b.crop_start and _same_geometry(a.image, b.image, 0.0)
    for other in (generate_background_case(3, 6, 1, mr), generate_background_case(4, 5, 1, mr)):
        assert other.image.array.shape != a.image.array.shape or not np.array_equal(other.image.array, a.image.array)
        assert other.site != a.site


def test_label_changes_only_the_sleeves(ct):
    neg, pos = generate_background_case(2, 1, 0, ct), generate_background_case(2, 1, 1, ct)
    assert np.array_equal(neg.tumour.array, pos.tumour.array) and neg.crop_start == pos.crop_start
    changed = neg.image.array != pos.image.array
    assert changed.any()
    tumour_edge = ndi.binary_dilation(pos.tumour.array > 0, CUBE)  # partial volume where sleeves meet the tumour
    assert not (changed & ~(pos.extension | neg.decoys | tumour_edge)).any()


def _touches(structure: np.ndarray, tumour: np.ndarray) -> bool:
    return bool((structure & ndi.binary_dilation(tumour, CUBE)).any())


@pytest.mark.parametrize("which", ["mr", "ct"])
def test_extensions_touch_the_tumour_and_decoys_do_not(which, request):
    background = request.getfixturevalue(which)
    decoys_seen = 0
    for index in range(3):
        pos = generate_background_case(index, 11, 1, background)
        tumour = pos.tumour.array > 0
        assert pos.extension.sum() > 0 and not pos.decoys.any() and not (pos.extension & tumour).any()
        # every extension voxel is connected (26-neighbours) to the tumour
        labels, _ = ndi.label(pos.extension | tumour, structure=CUBE)
        attached = np.unique(labels[tumour])
        assert np.isin(labels[pos.extension], attached).all()

        neg = generate_background_case(index, 11, 0, background)
        assert not neg.extension.any()
        assert not _touches(neg.decoys, neg.tumour.array > 0)
        decoys_seen += int(neg.decoys.sum() > 0)
    assert decoys_seen >= 2


@pytest.mark.parametrize("which", ["mr", "ct"])
def test_tumour_is_darker_than_its_surroundings_on_mr_and_ct(which, request):
    background = request.getfixturevalue(which)
    for index in range(2):
        case = generate_background_case(index, 4, 0, background)
        image = case.image.array.astype(np.float64)
        tumour = case.tumour.array > 0
        core = ndi.binary_erosion(tumour, CUBE) if ndi.binary_erosion(tumour, CUBE).sum() >= 5 else tumour
        shell = ndi.binary_dilation(tumour, CUBE, iterations=3) & ~ndi.binary_dilation(tumour, CUBE) & background.host[
            tuple(slice(s, s + n) for s, n in zip(case.crop_start[::-1], image.shape))] & ~case.inserted
        assert np.median(image[core]) < np.median(image[shell])
        if which == "ct":  # Hounsfield units stay those of soft tissue
            assert -60 < np.median(image[core]) < 120


def test_backgrounds_spread_evenly_over_each_label():
    labels = cohort_labels(128, 44, 0)
    which = assign_backgrounds(labels, 3, 0)
    for label in (0, 1):
        counts = np.bincount(which[labels == label], minlength=3)
        assert counts.max() - counts.min() <= 1
    assert np.array_equal(which, assign_backgrounds(labels, 3, 0))


# --- cohort and CLI -----------------------------------------------------------------------------------------------
def _cli(data_dir, out, *extra):
    return main(["--progress", "none", "phantom", "--out", str(out), "--cases", "6", "--positives", "2",
                 "--background", str(data_dir / "abdomen_mr.nii.gz"),
                 "--site-mask", str(data_dir / "abdomen_mr_organs.nii.gz"), "--site-labels", "5",
                 "--background", str(data_dir / "abdomen_ct_dicom5"), *extra])


@pytest.fixture(scope="module")
def cli_cohort(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("bg") / "cohort"
    assert _cli(data_dir, out, "--seed", "3") == 0
    return out


def test_cli_cohort_files_manifest_and_grids(cli_cohort, data_dir):
    manifest = cli_cohort / "manifest.csv"
    assert manifest.read_text().splitlines()[0] == "case_id,image,tumor_mask,anatomy_mask,label,patient_id"
    rows = read_manifest(manifest, require_labels=True, require_tumor_masks=True)
    assert [r.case_id for r in rows] == [f"case_00{i}" for i in range(6)]
    assert [r.label for r in rows] == list(cohort_labels(6, 2, 3))
    assert all(r.patient_id == r.case_id for r in rows)
    settings = json.loads((cli_cohort / "phantom.json").read_text())
    assert settings["seed"] == 3 and settings["crop"] == 0.06 and len(settings["backgrounds"]) == 2
    assert settings["backgrounds"][0]["site_labels"] == [5]
    info = (cli_cohort / CASES_NAME).read_text().splitlines()
    assert len(info) == 7
    used = [line.split(",")[2] for line in info[1:]]
    for r, background in zip(rows, used):
        mr_case = background.endswith("abdomen_mr.nii.gz")
        assert (r.anatomy_mask is not None) == mr_case
        image = sitk.ReadImage(str(r.image))
        assert image.GetPixelID() == sitk.sitkInt16
        source = read_volume(background)
        assert np.allclose(image.GetSpacing(), source.spacing, atol=1e-6)
        assert np.allclose(image.GetDirection(), source.direction.ravel(), atol=1e-6)
        for mask_path in filter(None, (r.tumor_mask, r.anatomy_mask)):
            mask = sitk.ReadImage(str(mask_path))
            assert mask.GetPixelID() == sitk.sitkUInt8 and mask.GetSize() == image.GetSize()
            for a, b in ((mask.GetSpacing(), image.GetSpacing()), (mask.GetOrigin(), image.GetOrigin()),
                         (mask.GetDirection(), image.GetDirection())):
                assert np.allclose(a, b, atol=1e-6)
    labels_per_background = {b: sorted(r.label for r, u in zip(rows, used) if u == b) for b in set(used)}
    assert labels_per_background[str((data_dir / "abdomen_mr.nii.gz").resolve())] == [0, 0, 1]
    assert labels_per_background[str((data_dir / "abdomen_ct_dicom5").resolve())] == [0, 0, 1]
    assert "never touch the tumour" in (cli_cohort / "README.md").read_text()
    # the written case is the in-memory case
    r = rows[0]
    case = generate_background_case(0, 3, r.label, load_background(BackgroundSpec(used[0], *(
        (data_dir / "abdomen_mr_organs.nii.gz", (5,)) if used[0].endswith("mr.nii.gz") else (None, None)))))
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(r.image))), case.image.array)


def test_cli_same_seed_same_files_other_seed_other_files(cli_cohort, data_dir, tmp_path, capsys):
    assert _cli(data_dir, tmp_path / "again", "--seed", "3") == 0
    assert _cli(data_dir, tmp_path / "other", "--seed", "4") == 0
    assert (tmp_path / "again" / "manifest.csv").read_text() == (cli_cohort / "manifest.csv").read_text()
    differ = 0
    for name in sorted(p.name for p in (cli_cohort / "cases").iterdir()):
        ref = sitk.GetArrayFromImage(sitk.ReadImage(str(cli_cohort / "cases" / name)))
        assert np.array_equal(ref, sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "again" / "cases" / name))))
        if name.endswith("_image.nii.gz"):
            other = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "other" / "cases" / name)))
            differ += int(other.shape != ref.shape or not np.array_equal(other, ref))
    assert differ == 6
    # the same folder again: reused as it is; other parameters: refused, untouched
    before = (cli_cohort / "cases" / "case_001_image.nii.gz").read_bytes()
    assert _cli(data_dir, cli_cohort, "--seed", "3") == 0
    assert _cli(data_dir, cli_cohort, "--seed", "5") == 1
    assert "seed" in capsys.readouterr().err
    assert (cli_cohort / "cases" / "case_001_image.nii.gz").read_bytes() == before


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("neonet phantom: error:") and "\n" not in err
    return err


def test_bad_backgrounds_get_one_line_naming_the_file_and_nothing_is_written(data_dir, tmp_path, capsys):
    broken = tmp_path / "broken.nrrd"
    broken.write_bytes(b"NRRD0004\ntype: short\ndimension: 3\nsizes: 10 10 10\nencoding: raw\n\n" + b"\0" * 100)
    flat = tmp_path / "flat.nii.gz"
    sitk.WriteImage(sitk.Image(16, 16, 8, sitk.sitkInt16), str(flat))
    elsewhere = sitk.Image(16, 16, 8, sitk.sitkUInt8) + 1
    elsewhere.SetOrigin((5000.0, 0.0, 0.0))
    sitk.WriteImage(elsewhere, str(tmp_path / "elsewhere.nii.gz"))
    cases = [
        (["--background", str(broken)], str(broken)),
        (["--background", str(flat)], "constant"),
        (["--background", str(tmp_path / "missing.nii.gz")], "missing.nii.gz: file not found"),
        (["--background", str(data_dir / "abdomen_mr.nii.gz"), "--site-mask", str(data_dir / "abdomen_mr_organs.nii.gz"),
          "--site-labels", "99"], "abdomen_mr_organs.nii.gz: has no voxel with site label(s) [99]"),
        (["--background", str(data_dir / "abdomen_mr.nii.gz"), "--site-mask", str(tmp_path / "elsewhere.nii.gz")],
         "does not overlap"),
    ]
    for n, (args, expected) in enumerate(cases):
        out = tmp_path / f"out{n}"
        assert main(["--progress", "none", "phantom", "--out", str(out), "--cases", "4", "--positives", "2", *args]) == 1
        assert expected in _one_error_line(capsys)
        assert not out.exists()
    assert main(["--progress", "none", "phantom", "--out", str(tmp_path / "x"), "--cases", "2", "--positives", "1",
                 "--background", str(data_dir / "breast_mr.nrrd"), "--size", "8", "8", "8"]) == 1
    assert "--size" in _one_error_line(capsys)
    with pytest.raises(SystemExit):  # a site mask needs its background first
        main(["phantom", "--out", str(tmp_path / "y"), "--site-mask", str(flat)])
    assert not any(p.name.startswith(".") or p.name.startswith("out") for p in tmp_path.iterdir())  # nothing left


def test_cohort_is_all_or_nothing(data_dir, tmp_path, monkeypatch, fail_case):
    import neonet_core.phantom.background_cohort as bc

    real = fail_case(bc, "generate_background_case", 2)
    with pytest.raises(RuntimeError, match="disk full"):
        generate_background_cohort(tmp_path / "c", [data_dir / "breast_mr.nrrd"], cases=4, positives=2)
    assert list(tmp_path.iterdir()) == []  # neither the folder nor a partial one
    (tmp_path / "c").mkdir()  # an empty folder is fine and becomes the cohort
    monkeypatch.setattr(bc, "generate_background_case", real)
    manifest = generate_background_cohort(tmp_path / "c", [data_dir / "breast_mr.nrrd"], cases=4, positives=2, crop=0.0)
    assert len(read_manifest(manifest)) == 4
    assert [p.name for p in tmp_path.iterdir()] == ["c"]


def test_difficulty_and_parameters_are_checked(mr):
    with pytest.raises(ValueError, match="crop"):
        generate_background_case(0, 0, 1, mr, crop=0.5)
    with pytest.raises(ValueError, match="difficulty"):
        PhantomParams(difficulty=1.5)
    with pytest.raises(ValueError, match="site labels"):
        BackgroundSpec("scan.nii.gz", None, (5,))
    easy = generate_background_case(0, 0, 1, mr, PhantomParams(difficulty=0.0))
    hard = generate_background_case(0, 0, 1, mr, PhantomParams(difficulty=1.0))
    assert np.array_equal(easy.tumour.array, hard.tumour.array)
    assert easy.extension.sum() > hard.extension.sum()


def test_a_scan_without_room_for_a_tumour_is_refused(tmp_path):
    tiny = tmp_path / "tiny.nii.gz"
    image = sitk.GetImageFromArray(np.zeros((4, 4, 4), np.int16))
    sitk.WriteImage(image, str(tiny))
    with pytest.raises(InputError, match="tiny.nii.gz"):
        load_background(BackgroundSpec(tiny))


def test_workers_give_identical_files(data_dir, tmp_path):
    backgrounds = [data_dir / "breast_mr.nrrd", BackgroundSpec(data_dir / "abdomen_mr.nii.gz")]
    one = generate_background_cohort(tmp_path / "one", backgrounds, cases=4, positives=2, seed=2)
    two = generate_background_cohort(tmp_path / "two", backgrounds, cases=4, positives=2, seed=2, workers=2)
    assert one.read_text() == two.read_text()
    assert (one.parent / CASES_NAME).read_text() == (two.parent / CASES_NAME).read_text()
    for name in sorted(p.name for p in (one.parent / "cases").iterdir()):
        a = sitk.GetArrayFromImage(sitk.ReadImage(str(one.parent / "cases" / name)))
        assert np.array_equal(a, sitk.GetArrayFromImage(sitk.ReadImage(str(two.parent / "cases" / name))))
