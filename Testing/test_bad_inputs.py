"""Bad inputs: one clear line naming the file and the problem, a NeoNetError subclass from the library,
a non-zero exit from the real CLI, and never a partial output file.

Complements test_io, test_manifest, test_bundle and test_cli_* (which pin the single cases): here
property-based corruption and truncation of NIfTI/NRRD/MetaImage files, random spacings, damaged
DICOM series, mask values that are not labels, tumours anywhere up to the border, bundle configs
that cannot build their network, and a few runs of ``python -m neonet_core.cli.main`` in subprocesses.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neonet_core.bundle import add_network, load_bundle, new_bundle_info, write_bundle_info
from neonet_core.cli import main as cli_main
from neonet_core.config import NeoNetConfig
from neonet_core.errors import BundleError, InputError, ManifestError, NeoNetError, NoTumourFoundError
from neonet_core.io import read_mask_on_image, read_segmentation, read_volume, write_volume
from neonet_core.manifest import read_manifest
from neonet_core.tlcr import background_value, tlcr_crop
from neonet_core.volume import Volume

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "Data"
PROPERTY = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def one_line_naming(err: BaseException, path) -> None:
    text = str(err)
    assert "\n" not in text and str(path) in text, text


def small_volume(dtype=np.float32, spacing=(1.0, 2.0, 3.0), shape=(6, 7, 8)) -> Volume:
    array = np.random.default_rng(0).normal(100, 20, shape).astype(dtype)
    return Volume(array, spacing, (1.0, -2.0, 3.0))


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# --- corrupted and truncated files (property-based) ------------------------------------------------
@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("sources")
    volume = small_volume()
    out = {}
    for suffix in (".nii", ".nii.gz", ".nrrd"):
        out[suffix] = write_volume(volume, folder / f"v{suffix}", compress=suffix != ".nii").read_bytes()
    sitk.WriteImage(volume.to_sitk(), str(folder / "v.mha"))
    out[".mha"] = (folder / "v.mha").read_bytes()
    return out


@PROPERTY
@given(
    suffix=st.sampled_from([".nii", ".nii.gz", ".nrrd", ".mha"]),
    cut=st.floats(0.0, 0.999),
    edits=st.lists(st.tuples(st.floats(0.0, 0.999), st.integers(0, 255)), max_size=6),
    header_only=st.booleans(),
)
def test_corrupted_or_truncated_files_give_input_error_or_a_valid_volume(sources, tmp_path, suffix, cut, edits, header_only):
    data = bytearray(sources[suffix])
    span = min(len(data), 400) if header_only else len(data)
    for where, value in edits:
        data[int(where * span)] = value
    if not edits or cut > 0.5:
        data = data[: int(cut * len(data))]
    path = tmp_path / f"damaged{suffix}"
    path.write_bytes(bytes(data))
    for reader in (read_volume, read_segmentation):
        try:
            volume = reader(path)
        except InputError as err:
            one_line_naming(err, path)
            continue
        assert volume.array.ndim == 3 and min(volume.array.shape) >= 2
        assert all(s > 0 and math.isfinite(s) for s in volume.spacing)
        if volume.array.dtype.kind == "f":
            assert np.isfinite(volume.array).all()


finite_or_not = st.one_of(st.floats(-5.0, 5.0), st.sampled_from([0.0, -0.0, 1e-30, 1e30, math.nan, math.inf, -math.inf]))


@PROPERTY
@given(spacing=st.tuples(finite_or_not, finite_or_not, finite_or_not))
def test_random_nifti_spacing_is_used_or_refused(tmp_path, spacing):
    import struct

    path = write_volume(small_volume(), tmp_path / "v.nii", compress=False)
    data = bytearray(path.read_bytes())
    data[80:92] = struct.pack("<3f", *spacing)  # pixdim[1..3]
    path.write_bytes(bytes(data))
    stored = np.asarray(spacing, dtype=np.float32).astype(np.float64)
    try:
        volume = read_volume(path)
    except InputError as err:
        one_line_naming(err, path)
        assert not (np.all(np.isfinite(stored)) and np.all(stored > 0) and np.all(stored < 1e29)) or "spacing" in str(err)
        return
    assert np.all(np.isfinite(stored)) and np.all(stored > 0)
    np.testing.assert_allclose(volume.spacing, stored, rtol=1e-6)


@PROPERTY
@given(spacing=st.tuples(finite_or_not, finite_or_not, finite_or_not))
def test_random_nrrd_spacing_is_used_or_refused(tmp_path, spacing):
    """NRRD keeps spacing in 'space directions': a negative entry is a flipped axis (valid), zero or
    non-finite is refused."""
    volume = small_volume()
    nk, nj, ni = volume.array.shape
    dirs = " ".join(f"({','.join(repr(float(s)) if a == b else '0' for b in range(3))})" for a, s in enumerate(spacing))
    header = (f"NRRD0004\ntype: float\ndimension: 3\nspace: left-posterior-superior\nsizes: {ni} {nj} {nk}\n"
              f"space directions: {dirs}\nkinds: domain domain domain\nendian: little\nencoding: raw\n"
              "space origin: (0,0,0)\n\n")
    path = tmp_path / "v.nrrd"
    path.write_bytes(header.encode() + volume.array.astype("<f4").tobytes())
    try:
        read = read_volume(path)
    except InputError as err:
        one_line_naming(err, path)
        return
    given_abs = np.abs(np.asarray(spacing, dtype=np.float64))
    assert np.all(np.isfinite(given_abs)) and np.all(given_abs > 0)
    np.testing.assert_allclose(read.spacing, given_abs, rtol=1e-6)
    np.testing.assert_allclose(np.diag(read.direction), np.sign(spacing), atol=1e-6)


# --- DICOM series with a damaged, missing or duplicated slice ---------------------------------------
def _series_copy(tmp_path: Path, name: str) -> tuple[Path, list[Path]]:
    folder = tmp_path / name
    shutil.copytree(DATA / "abdomen_ct_dicom5", folder)
    files = sorted(folder.iterdir())
    for f in files:
        f.chmod(0o644)
    return folder, files


@pytest.mark.parametrize("damage", ["truncated", "header_only", "replaced_by_junk", "duplicated"])
def test_damaged_dicom_series_is_refused_not_silently_shortened(tmp_path, damage):
    folder, files = _series_copy(tmp_path, f"series {damage}")
    victim = files[2]
    data = victim.read_bytes()
    if damage == "truncated":
        victim.write_bytes(data[: len(data) // 2])
    elif damage == "header_only":
        victim.write_bytes(data[:300])
    elif damage == "replaced_by_junk":  # the slice is simply gone: its neighbours are 4 mm apart, not 2
        victim.write_bytes(b"not a dicom file " * 50)
    else:
        shutil.copy(files[1], folder / "copy_of_slice_2")
    with pytest.raises(InputError) as err:
        read_volume(folder)
    text = str(err.value)
    assert "\n" not in text and str(folder) in text
    assert ("cannot be read" in text and victim.name in text) or "not evenly spaced" in text


# --- masks whose values are not labels, and non-finite images through the case loader --------------
@pytest.mark.parametrize("values, words", [((0, -1), "negative label"), ((0, 0.5), "non-integer"), ((0, np.nan), "NaN/Inf")])
def test_mask_values_that_are_not_labels(tmp_path, values, words):
    image = small_volume()
    mask = np.zeros(image.array.shape, np.float32)
    mask[2:4, 2:4, 2:4] = values[1]
    path = write_volume(image.with_array(mask), tmp_path / "mask é.nrrd")
    with pytest.raises(InputError, match=words) as err:
        read_mask_on_image(path, image)
    one_line_naming(err.value, path)


# --- tumours anywhere, up to and across the border ----------------------------------------------------
@PROPERTY
@given(
    size=st.tuples(st.integers(1, 6), st.integers(3, 8), st.integers(2, 8)),  # at least one 2.5 mm patch voxel
    where=st.tuples(*[st.floats(0.0, 1.0)] * 3),  # 0 and 1: touching a face of the volume
)
def test_a_tumour_anywhere_even_touching_the_border_gives_a_full_patch(size, where):
    """(A tumour thinner than one patch voxel can fall between the patch's nearest-neighbour samples and
    leave the tumour patch empty; see the report of this suite.)"""
    lo = [int(round(w * (n - s))) for w, s, n in zip(where, size, (20, 24, 24))]
    rng = np.random.default_rng(1)
    image = Volume(rng.integers(50, 150, (20, 24, 24)).astype(np.int16), (1.5, 1.0, 2.5), (3.0, -4.0, 5.0))
    mask = np.zeros(image.array.shape, np.uint8)
    hi = [a + s for a, s in zip(lo, size)]
    mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = 1
    result = tlcr_crop(image, image.with_array(mask), roi_mm=40.0, patch_size=16)
    assert result.image_patch.array.shape == (16, 16, 16) and result.tumour_patch.array.sum() > 0
    centre_kji = (np.asarray(lo) + np.asarray(hi) - 1) / 2.0
    np.testing.assert_allclose(result.roi.center, image.index_to_physical(centre_kji[::-1]), atol=1e-4)
    # outside the image the patch holds the background value, never garbage
    patch_points = result.image_patch.index_to_physical(np.argwhere(np.ones((16, 16, 16)))[:, ::-1].astype(float))
    ijk = image.physical_to_index(patch_points)
    outside = np.any((ijk < -0.5 - 1e-6) | (ijk > np.asarray(image.size_ijk) - 0.5 + 1e-6), axis=1)
    np.testing.assert_array_equal(result.image_patch.array.reshape(-1)[outside], np.float32(background_value(image)))


def test_empty_mask_is_no_tumour_found_naming_the_file(tmp_path):
    image = small_volume()
    path = write_volume(image.with_array(np.zeros(image.array.shape, np.uint8)), tmp_path / "empty mask.nii.gz")
    with pytest.raises(NoTumourFoundError) as err:
        tlcr_crop(image, read_mask_on_image(path, image))
    one_line_naming(err.value, path)
    assert isinstance(err.value, NeoNetError)


# --- manifests (the library types; the rows themselves are pinned in test_manifest) ----------------
def test_manifest_problems_are_manifest_errors_naming_the_csv(tmp_path):
    cases = {
        "missing_columns.csv": "case,image\nc1,a.nii.gz\n",
        "bad_label.csv": "case_id,image,label\nc1,a.nii.gz,maybe\n",
        "duplicate.csv": "case_id,image\nc1,a.nii.gz\nc1,a.nii.gz\n",
        "absent.csv": "case_id,image\nc1,nowhere.nii.gz\n",
        "empty.csv": "",
    }
    write_volume(small_volume(), tmp_path / "a.nii.gz")
    for name, text in cases.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        with pytest.raises(ManifestError) as err:
            read_manifest(tmp_path / name)
        one_line_naming(err.value, tmp_path / name)


# --- bundles whose config cannot build their network --------------------------------------------------
@pytest.fixture(scope="module")
def cls_bundle(tmp_path_factory) -> Path:
    """A bundle holding an untrained, seeded PattenNet (as test_predict builds it)."""
    from neonet_core.neocls.models import build_classifier
    from neonet_core.neocls.stage import network_config

    folder = tmp_path_factory.mktemp("bundle") / "cls bundle"
    cfg = NeoNetConfig()
    torch.manual_seed(0)
    net = build_classifier(cfg.cls, cfg.ae)
    info = new_bundle_info(cfg.to_dict(), threshold=0.5, class_names=["PNI-", "PNI+"], name="bad-input-bundle")
    add_network(folder, info, "cls", net.state_dict(), network_config(cfg))
    write_bundle_info(folder, info)
    return folder


def _edited_bundle(source: Path, target: Path, edit) -> Path:
    """A copy of ``source`` whose bundle.json is edited by hand, its content hash fixed as an attacker could."""
    from neonet_core.bundle_schema import info_hash

    shutil.copytree(source, target)
    info = json.loads((target / "bundle.json").read_text())
    edit(info)
    info["info_sha256"] = info_hash(info)
    (target / "bundle.json").write_text(json.dumps(info))
    return target


@pytest.mark.parametrize("edit, words", [
    (lambda i: i["networks"]["cls"]["config"]["cls"].__setitem__("model", "resnet999"), "unknown classifier 'resnet999'"),
    (lambda i: i["networks"]["cls"].__setitem__("config", "oops"), "'networks.cls.config': must be a JSON object"),
    (lambda i: i["networks"]["cls"]["config"]["cls"].__setitem__("no_such_option", 1), "no_such_option"),
])
def test_a_config_that_cannot_build_its_network_is_a_bundle_error(cls_bundle, tmp_path, edit, words):
    from neonet_core.neocls.stage import build_from_network_config

    with pytest.raises(BundleError, match=words) as err:  # refused when bundle.json is loaded, or when the network is built
        load_bundle(_edited_bundle(cls_bundle, tmp_path / "edited", edit)).build("cls", build_from_network_config)
    one_line_naming(err.value, tmp_path / "edited" / "bundle.json")


# --- the real CLI -------------------------------------------------------------------------------------
def neonet_process(*argv) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "neonet_core.cli.main", "--progress", "none", *map(str, argv)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory, cls_bundle):
    """Start every CLI subprocess at once (each pays ~3 s of imports), then collect them."""
    from neonet_core.config import get_preset
    from neonet_core.neoseg import save_seg_network
    from neonet_core.neoseg.model import build_seg_net

    root = tmp_path_factory.mktemp("cli") / "dossier é ü"
    root.mkdir()
    rng = np.random.default_rng(0)
    image = Volume(rng.integers(100, 200, (20, 30, 30)).astype(np.int16), (1.0, 1.2, 2.0), (5.0, -3.0, 10.0))
    mask = np.zeros(image.array.shape, np.uint8)
    mask[8:12, 10:16, 10:16] = 1
    write_volume(image, root / "scan ø 1.nii.gz")
    write_volume(image.with_array(mask), root / "tumour ø 1.nii.gz")
    far = Volume(mask, image.spacing, (900.0, 0.0, 0.0))
    write_volume(far, root / "other scan mask.nii.gz")
    good = (root / "scan ø 1.nii.gz").read_bytes()
    (root / "cut scan.nii.gz").write_bytes(good[: len(good) // 2])
    nrrd = write_volume(image, root / "cut scan.nrrd", compress=False)
    nrrd.write_bytes(nrrd.read_bytes()[:-500])
    sitk.WriteImage(sitk.JoinSeries([image.to_sitk(), image.to_sitk()]), str(root / "series 4d.nii.gz"))
    (root / "cohort.csv").write_text("case_id,image,label\nc1,scan ø 1.nii.gz,2\nc1,scan ø 1.nii.gz,0\nc2,gone.nii.gz,1\n", encoding="utf-8")
    cfg = get_preset("tiny")
    torch.manual_seed(0)
    save_seg_network(root / "seg bundle", build_seg_net(cfg.seg), cfg)
    pickled = shutil.copytree(root / "seg bundle", root / "pickled bundle")
    with open(pickled / "seg.safetensors", "wb") as f:
        pickle.dump({"weights": [1, 2, 3]}, f)
    unknown = _edited_bundle(cls_bundle, root / "unknown classifier bundle",
                             lambda i: i["networks"]["cls"]["config"]["cls"].__setitem__("model", "resnet999"))
    out = root / "out"
    out.mkdir()
    runs = {
        "cohort": (neonet_process("cohort", "check", root / "cohort.csv"), root / "cohort.csv"),
        "crop_truncated": (neonet_process("crop", "--image", root / "cut scan.nii.gz", "--mask", root / "tumour ø 1.nii.gz",
                                          "--out", out / "crop1"), root / "cut scan.nii.gz"),
        "crop_no_overlap": (neonet_process("crop", "--image", root / "scan ø 1.nii.gz", "--mask", root / "other scan mask.nii.gz",
                                           "--out", out / "crop2"), root / "other scan mask.nii.gz"),
        "segment_truncated": (neonet_process("segment", "--bundle", root / "seg bundle", "--image", root / "cut scan.nrrd",
                                             "--out", out / "mask.nii.gz", "--device", "cpu"), root / "cut scan.nrrd"),
        "verify_pickle": (neonet_process("bundle", "verify", pickled), pickled / "seg.safetensors"),
        "predict_4d": (neonet_process("predict", "--bundle", cls_bundle, "--image", root / "series 4d.nii.gz",
                                      "--out", out / "pred1", "--device", "cpu"), root / "series 4d.nii.gz"),
        "predict_unknown_network": (neonet_process("predict", "--bundle", unknown, "--image", root / "scan ø 1.nii.gz", "--mask",
                                                   root / "tumour ø 1.nii.gz", "--out", out / "pred2", "--device", "cpu"), unknown),
    }
    results = {}
    for name, (proc, named) in runs.items():
        stdout, stderr = proc.communicate(timeout=300)
        results[name] = (proc.returncode, stdout, stderr, named)
    return results, out


@pytest.mark.parametrize("name, words", [
    ("cohort", "label '2' is not 0"),
    ("crop_truncated", "truncated"),
    ("crop_no_overlap", "does not overlap"),
    ("segment_truncated", "truncated"),
    ("verify_pickle", "SHA-256 mismatch"),
    ("predict_4d", "is 4D"),
    ("predict_unknown_network", "resnet999"),
])
def test_cli_exits_non_zero_with_a_clear_message(cli_runs, name, words):
    results, _ = cli_runs
    code, stdout, stderr, named = results[name]
    assert code == 1, (code, stdout, stderr)
    assert "Traceback" not in stderr and words in stdout + stderr, stderr
    if name != "cohort":  # cohort check prints a table of problems on stdout
        error_lines = [ln for ln in stderr.splitlines() if ln.startswith("neonet ")]
        assert error_lines and words in error_lines[0]
        if name != "predict_unknown_network":  # see test below
            assert str(named) in error_lines[0], error_lines[0]
    else:
        assert "case_id appears 2 times" in stdout and "image not found" in stdout


def test_cli_predict_names_the_bundle_whose_config_cannot_build(cli_runs):
    results, _ = cli_runs
    code, _, stderr, named = results["predict_unknown_network"]
    assert code == 1 and str(named) in stderr


def test_failed_cli_runs_leave_no_partial_outputs(cli_runs):
    _, out = cli_runs
    left = files_under(out)
    # a failed crop keeps only its complete report (which says why); no patch, ROI or mask file
    assert set(left) <= {"crop1/crop_report.json", "crop2/crop_report.json"}, left
    for report in left:
        cases = json.loads((out / report).read_text())["cases"]
        assert [c["status"] for c in cases.values()] == ["failed"]
    assert not any(name.startswith(".") or name.endswith(".tmp") for name in os.listdir(out))
