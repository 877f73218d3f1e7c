"""Cohort manifests: parsing, every kind of problem, loading cases onto the image grid, writing."""

from __future__ import annotations

import numpy as np
import pytest

from neonet_core.errors import InputError, ManifestError
from neonet_core.io import write_volume
from neonet_core.manifest import Case, Problem, check_cohort, load_case, parse_manifest, read_manifest, write_manifest
from neonet_core.volume import Volume

HEADER = "case_id,image,tumor_mask,anatomy_mask,label,patient_id\n"
SPACING, ORIGIN = (1.0, 1.2, 2.0), (-10.0, 5.0, 3.0)


def make_case(folder, name, tumour=True, anatomy=True, image_array=None, mask_array=None, anatomy_array=None, origin=ORIGIN):
    """Write a small image (12x10x8 voxels), tumour mask and anatomy mask; return their file names."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    image = image_array if image_array is not None else rng.normal(100, 10, (8, 10, 12)).astype(np.float32)
    write_volume(Volume(image, SPACING, ORIGIN), folder / f"{name}.nii.gz")
    files = [f"{name}.nii.gz", "", ""]
    if tumour:
        mask = mask_array if mask_array is not None else np.zeros((8, 10, 12), np.uint8)
        if mask_array is None:
            mask[3:5, 4:7, 5:8] = 1
        write_volume(Volume(mask, SPACING, origin), folder / f"{name}_tumour.nrrd")
        files[1] = f"{name}_tumour.nrrd"
    if anatomy:
        labels = anatomy_array if anatomy_array is not None else np.zeros((8, 10, 12), np.uint8)
        if anatomy_array is None:
            labels[1:7, 1:9, 1:11], labels[3:5, 4:7, 5:8], labels[2, 2, 2:6] = 1, 4, 2
        write_volume(Volume(labels, SPACING, ORIGIN), folder / f"{name}_anatomy.nii.gz")
        files[2] = f"{name}_anatomy.nii.gz"
    return files


def write_csv(path, rows, header=HEADER):
    path.write_text(header + "".join(",".join(map(str, r)) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def cohort(tmp_path):
    """A clean 3-case cohort: c1 (PNI+), c2 (PNI-, same patient as c1), c3 (PNI-, no anatomy)."""
    rows = []
    for case_id, label, patient in (("c1", 1, "p1"), ("c2", 0, "p1"), ("c3", 0, "")):
        image, tumour, anatomy = make_case(tmp_path / "scans", case_id, anatomy=case_id != "c3")
        rows.append((case_id, f"scans/{image}", f"scans/{tumour}", f"scans/{anatomy}" if anatomy else "", label, patient))
    return write_csv(tmp_path / "cohort.csv", rows)


def test_clean_cohort(cohort, tmp_path):
    cases = read_manifest(cohort, require_labels=True, require_tumor_masks=True)
    assert [c.case_id for c in cases] == ["c1", "c2", "c3"]
    assert [c.label for c in cases] == [1, 0, 0]
    assert [c.patient_id for c in cases] == ["p1", "p1", "c3"]  # defaults to case_id
    assert cases[0].image == (tmp_path / "scans" / "c1.nii.gz").resolve()
    assert cases[2].anatomy_mask is None and cases[0].synthetic is False
    assert check_cohort(cohort, require_labels=True, require_tumor_masks=True) == []


def test_missing_columns(tmp_path):
    path = write_csv(tmp_path / "m.csv", [("c1", "x.nii.gz")], header="case,image\n")
    with pytest.raises(ManifestError, match=r"missing column\(s\) case_id \(found: case, image\)"):
        read_manifest(path)
    path = write_csv(tmp_path / "m2.csv", [("c1", "x.nii.gz")], header="case_id,image\n")
    with pytest.raises(ManifestError, match=r"missing column\(s\) tumor_mask, label"):
        read_manifest(path, require_labels=True, require_tumor_masks=True)
    assert check_cohort(path, require_labels=True)[0].problem.startswith("missing column(s) label")


def test_every_row_problem_is_listed(tmp_path):
    files = make_case(tmp_path, "a")
    rows = [
        ("a", files[0], files[1], files[2], 2, ""),  # bad label
        ("b", files[0], files[1], files[2], "yes", ""),  # bad label
        ("dup", files[0], files[1], "", 1, ""),
        ("dup", files[0], files[1], "", 0, ""),
        ("gone", "missing.nii.gz", "missing_mask.nrrd", "missing_anatomy.nii.gz", 0, ""),
        ("", files[0], "", "", 1, ""),
        ("noimage", "", files[1], "", 0, ""),
    ]
    path = write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(ManifestError) as err:
        read_manifest(path)
    problems = [Problem(*p) for p in err.value.problems]
    text = [(p.case_id, p.problem) for p in problems]
    assert ("a", "label '2' is not 0 (PNI-) or 1 (PNI+)") in text
    assert ("b", "label 'yes' is not 0 (PNI-) or 1 (PNI+)") in text
    assert sum("case_id appears 2 times" in p for c, p in text if c == "dup") == 2
    assert {p.problem for p in problems if p.case_id == "gone"} == {"image not found", "tumor_mask not found", "anatomy_mask not found"}
    assert [p.file for p in problems if p.case_id == "gone" and p.problem == "image not found"] == [str(tmp_path / "missing.nii.gz")]
    assert ("row 7", "empty case_id") in text
    assert ("noimage", "empty image path") in text
    assert len(problems) == 9
    assert "(and 8 more problem(s); run `neonet cohort check`)" in str(err.value)
    assert check_cohort(path) == problems  # the deep check lists the same, and reads only good rows


def test_required_labels_and_masks(tmp_path):
    files = make_case(tmp_path, "a", tumour=False)
    path = write_csv(tmp_path / "m.csv", [("a", files[0], "", "", "", "")])
    assert read_manifest(path)[0].label is None
    with pytest.raises(ManifestError) as err:
        read_manifest(path, require_labels=True, require_tumor_masks=True)
    assert [p[2] for p in err.value.problems] == [
        "empty tumor_mask (a tumour mask is required here)",
        "empty label (0 or 1 is required for training)",
    ]


def test_unicode_and_spaces_in_paths(tmp_path):
    folder = tmp_path / "dossier é ü" / "Patiënt 1"
    files = make_case(folder, "scan ø 1")
    path = tmp_path / "dossier é ü" / "cohorte été.csv"
    write_csv(path, [("cas-ü", f"Patiënt 1/{files[0]}", f"Patiënt 1/{files[1]}", f"Patiënt 1/{files[2]}", 1, "")])
    (case,) = read_manifest(path)
    assert case.case_id == "cas-ü" and case.image.name == "scan ø 1.nii.gz"
    assert check_cohort(path) == []
    image, tumour, anatomy = load_case(case)
    assert int(tumour.array.sum()) == 18


def test_absolute_paths_and_utf8_bom(tmp_path):
    files = make_case(tmp_path / "data", "a")
    path = tmp_path / "elsewhere" / "m.csv"
    path.parent.mkdir()
    body = HEADER + f"a,{tmp_path / 'data' / files[0]},{tmp_path / 'data' / files[1]},,1,\n"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))  # Excel writes a BOM
    (case,) = read_manifest(path)
    assert case.image == tmp_path / "data" / files[0]


def test_deep_problems(tmp_path):
    shape = (8, 10, 12)
    nan_image = np.ones(shape, np.float32)
    nan_image[0, 0, :5] = np.nan
    two_values = np.zeros(shape, np.uint8)
    two_values[2:4, 2:4, 2:4], two_values[5, 5, 5] = 1, 2
    bad_anatomy = np.zeros(shape, np.uint8)
    bad_anatomy[1:3, 1:3, 1:3], bad_anatomy[4, 4, 4] = 1, 7
    specs = {
        "empty": dict(mask_array=np.zeros(shape, np.uint8)),
        "nan": dict(image_array=nan_image),
        "twovalues": dict(mask_array=two_values),
        "anatomy7": dict(anatomy_array=bad_anatomy),
        "far": dict(origin=(0.0, 0.0, 900.0)),
        "shifted": dict(origin=(-10.0, 5.0, 5.0)),  # overlaps: fine, resampled onto the image
    }
    rows = []
    for name, kw in specs.items():
        image, tumour, anatomy = make_case(tmp_path, name, **kw)
        rows.append((name, image, tumour, anatomy, 0, ""))
    (tmp_path / "broken.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    rows.append(("broken", "broken.nii.gz", "", "", 1, ""))
    path = write_csv(tmp_path / "m.csv", rows)
    assert len(read_manifest(path)) == 7  # the cheap checks see nothing wrong
    problems = check_cohort(path)
    found = {p.case_id: p for p in problems}
    assert len(problems) == 6 and set(found) == {"empty", "nan", "twovalues", "anatomy7", "far", "broken"}
    assert found["empty"].problem == "tumour mask is empty" and found["empty"].file.endswith("empty_tumour.nrrd")
    assert found["nan"].problem == "has 5 NaN/Inf voxel(s) out of 960" and found["nan"].file.endswith("nan.nii.gz")
    assert found["twovalues"].problem.startswith("tumour mask holds values other than 0 and 1: [2]")
    assert found["anatomy7"].problem.startswith("anatomy labels [7] are not NeoNet anatomy labels (1 liver, 2 bile_duct")
    assert found["far"].problem.startswith("does not overlap the image") and str(tmp_path / "far.nii.gz") in found["far"].problem
    assert "cannot be read" in found["broken"].problem


def test_mask_partly_outside_becomes_empty_on_the_image(tmp_path):
    mask = np.zeros((8, 10, 12), np.uint8)
    mask[7, 0, 0] = 1  # tumour in the mask's last slice, which lies beyond the image after the shift
    files = make_case(tmp_path, "edge", mask_array=mask, origin=(-10.0, 5.0, 9.0))
    path = write_csv(tmp_path / "m.csv", [("edge", *files, 1, "")])
    (problem,) = check_cohort(path)
    assert problem.problem == "tumour mask is empty on the image grid (it lies outside the image)"


def test_load_case_puts_masks_on_the_image_grid(tmp_path):
    mask = np.zeros((8, 10, 12), np.uint8)
    mask[3:5, 4:7, 5:8] = 3  # a non-binary tumour mask: every non-zero voxel is tumour
    files = make_case(tmp_path, "a", mask_array=mask, origin=(-10.0, 5.0, 5.0))  # one slice (2 mm) higher
    path = write_csv(tmp_path / "m.csv", [("a", *files, 1, "")])
    (case,) = read_manifest(path)
    image, tumour, anatomy = load_case(case)
    assert tumour.same_grid(image) and anatomy.same_grid(image)
    assert tumour.array.dtype == np.uint8 and set(np.unique(tumour.array)) == {0, 1}
    assert int(tumour.array.sum()) == 18
    assert np.argwhere(tumour.array)[:, 0].min() == 4  # moved up by one slice
    assert anatomy.array.dtype == np.uint8 and set(np.unique(anatomy.array)) == {0, 1, 2, 4}
    assert image.metadata["case_id"] == "a"


def test_load_case_errors_name_the_case_and_file(tmp_path):
    files = make_case(tmp_path, "far", origin=(0.0, 0.0, 900.0))
    case = Case("far", tmp_path / files[0], tmp_path / files[1], None, 1, "far")
    with pytest.raises(InputError, match="case far: does not overlap") as err:
        load_case(case)
    assert err.value.path == str(tmp_path / files[1])
    bad = np.zeros((8, 10, 12), np.uint8)
    bad[1, 1, 1] = 9
    files = make_case(tmp_path, "b", anatomy_array=bad)
    with pytest.raises(InputError, match=r"case b: anatomy labels \[9\]"):
        load_case(Case("b", tmp_path / files[0], None, tmp_path / files[2], None, "b"))
    with pytest.raises(InputError, match="case gone: file not found"):
        load_case(Case("gone", tmp_path / "gone.nii.gz", None, None, None, "gone"))


def test_write_manifest_round_trip(cohort, tmp_path):
    cases = read_manifest(cohort)
    synthetic = Case("c1_syn0", tmp_path / "syn" / "p 0.nii.gz", None, None, 1, "p1", synthetic=True, source_case="c1")
    out = write_manifest(cases + [synthetic], tmp_path / "out" / "nested" / "all.csv")
    text = out.read_text(encoding="utf-8")
    assert text.splitlines()[0] == "case_id,image,tumor_mask,anatomy_mask,label,patient_id,synthetic,source_case"
    assert text.splitlines()[1] == "c1,../../scans/c1.nii.gz,../../scans/c1_tumour.nrrd,../../scans/c1_anatomy.nii.gz,1,p1,0,"
    assert text.splitlines()[4] == 'c1_syn0,../../syn/p 0.nii.gz,,,1,p1,1,c1'
    (tmp_path / "syn").mkdir()
    write_volume(Volume(np.zeros((4, 4, 4), np.float32)), tmp_path / "syn" / "p 0.nii.gz")
    assert read_manifest(out) == cases + [synthetic]
    with pytest.raises(InputError, match="already exists"):
        write_manifest(cases, out)
    write_manifest(cases, out, overwrite=True)
    assert read_manifest(out) == cases and "synthetic" not in out.read_text().splitlines()[0]


def test_parse_manifest_keeps_good_rows_and_reports_bad_ones(tmp_path):
    files = make_case(tmp_path, "a")
    rows = [("a", *files, 1, ""), ("b", "missing.nii.gz", "", "", 0, ""), ("c", files[0], "", "", "1", "x,extra")]
    path = write_csv(tmp_path / "m.csv", rows)
    cases, problems = parse_manifest(path)
    assert [c.case_id for c in cases] == ["a"]
    assert [(p.case_id, p.problem) for p in problems] == [
        ("b", "image not found"),
        ("c", "row 4 has more values than the header has columns (quote paths that hold commas)"),
    ]
    assert parse_manifest(tmp_path / "none.csv") == ([], [Problem("", str(tmp_path / "none.csv"), "manifest not found")])
