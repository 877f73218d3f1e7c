"""Odd inputs get one clear line, content-free input is flagged, NeoSeg's implausible results are refused
(issue 12 items 4, 8, 10, 11 and 12; issue 13 item 10: JSON stage events of single-case predict and segment).

Real files through SimpleITK, a real FIFO, a real DICOM folder with two series, the real CLI entry
(``neonet_core.cli.main.main``) in this process with the shipped demo bundle.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from torch import nn

from neonet_core.cli import main as cli_main
from neonet_core.errors import ImplausibleTumourError, InputError
from neonet_core.io import read_volume, write_volume
from neonet_core.manifest import parse_manifest
from neonet_core.volume import Volume
from conftest import write_dicom_slice

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "Data"
BUNDLE = ROOT / "Resources" / "Models" / "neonet-demo"
IMAGE = ROOT / "NeoNetSlicer" / "Resources" / "SampleData" / "NeoNetPhantom.nrrd"
MASK = ROOT / "NeoNetSlicer" / "Resources" / "SampleData" / "NeoNetPhantom_tumour.seg.nrrd"


def neonet(capsys, *argv, progress: str = "none") -> tuple[int, str, str]:
    """``neonet --progress <progress> <argv>`` in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = cli_main.main(["--progress", progress, *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("neonet ") and ": error: " in ln]
    assert len(lines) == 1 and "internal error" not in err and "Traceback" not in err, err
    return lines[0]


# --- item 4: a FIFO (or other non-regular file) is refused before it is opened ------------------------------
@pytest.fixture
def fifo(tmp_path):
    """A real named pipe. Should anything open it for reading, a writer thread unblocks it after 20 s so the
    test fails on its message instead of hanging."""
    path = tmp_path / "scan.nii.gz"
    os.mkfifo(path)
    stop = threading.Event()

    def unblock():
        if not stop.wait(20):
            with open(path, "wb"):
                pass

    thread = threading.Thread(target=unblock, daemon=True)
    thread.start()
    yield path
    stop.set()


def test_a_fifo_as_image_mask_or_in_a_dicom_folder_is_refused_without_reading_it(fifo, tmp_path, capsys):
    for reader in (read_volume, lambda p: __import__("neonet_core.io", fromlist=["x"]).read_segmentation(p)):
        with pytest.raises(InputError, match=r"is a named pipe \(FIFO\), not a regular file") as err:
            reader(fifo)
        assert str(fifo) in str(err.value)
    code, _, err = neonet(capsys, "predict", "--bundle", BUNDLE, "--image", IMAGE, "--mask", fifo, "--out", tmp_path / "o")
    assert code == 1 and f"{fifo}: is a named pipe (FIFO)" in error_line(err)
    folder = tmp_path / "dicom"
    shutil.copytree(DATA / "abdomen_ct_dicom5", folder)
    os.mkfifo(folder / "pipe")
    with pytest.raises(InputError, match="is a named pipe") as err:
        read_volume(folder)
    assert str(folder / "pipe") in str(err.value)
    (tmp_path / "m.csv").write_text(f"case_id,image,tumor_mask\nc1,{IMAGE},{fifo}\n")
    _, problems = parse_manifest(tmp_path / "m.csv")
    assert [p.problem for p in problems] == ["is a named pipe (FIFO), not a regular file; NeoNet reads only regular files"]
    assert not (tmp_path / "o").exists()


# --- item 8: content-free input is flagged, never a silent confident call -----------------------------------
def _phantom_with(tmp_path, name: str, array=None, spacing=None) -> tuple[Path, Path]:
    image = read_volume(IMAGE)
    mask = np.zeros(image.array.shape, np.uint8)
    mask[17:23, 58:70, 58:70] = 1
    grid = Volume(image.array, spacing or image.spacing, image.origin, image.direction)
    image_path = write_volume(grid.with_array(image.array if array is None else array), tmp_path / f"{name}.nii.gz")
    return image_path, write_volume(grid.with_array(mask), tmp_path / f"{name}_mask.nii.gz")


@pytest.mark.parametrize("name, words", [
    ("constant", "the image is constant"),
    ("tiny_spacing", "only 0% of the ROI lies inside the image"),
    ("huge_spacing", "no contrast in the ROI"),
])
def test_content_free_input_is_flagged_not_assessable(tmp_path, capsys, name, words):
    shape = read_volume(IMAGE).array.shape
    array = np.full(shape, 300, np.int16) if name == "constant" else None
    spacing = {"tiny_spacing": (0.001,) * 3, "huge_spacing": (10000.0,) * 3}.get(name)
    image, mask = _phantom_with(tmp_path, name, array, spacing)
    code, out, err = neonet(capsys, "predict", "--bundle", BUNDLE, "--image", image, "--mask", mask, "--out", tmp_path / "o",
                            "--device", "cpu", "--no-tta")
    assert code == 0, err
    result = json.loads((tmp_path / "o" / "result.json").read_text())
    assert result["assessable"] is False and any(words in r for r in result["not_assessable_reasons"]), result
    if spacing:
        assert any("implausible voxel spacing" in r for r in result["not_assessable_reasons"])
    assert "NOT ASSESSABLE" in out and words in out
    assert f"neonet: warning: {image}: not assessable" in err


def test_a_real_case_stays_assessable(tmp_path, capsys):
    code, out, err = neonet(capsys, "predict", "--bundle", BUNDLE, "--image", IMAGE, "--mask", MASK, "--out", tmp_path / "o",
                            "--device", "cpu", "--no-tta")
    assert code == 0 and "NOT ASSESSABLE" not in out + err
    result = json.loads((tmp_path / "o" / "result.json").read_text())
    assert result["assessable"] is True and result["not_assessable_reasons"] == []


# --- item 10: inputs that used to give "internal error" ------------------------------------------------------
def test_odd_inputs_get_one_line_naming_the_file(tmp_path, capsys):
    long_image = tmp_path / ("a" * 300 + ".nii.gz")
    complex_image = tmp_path / "complex.nii.gz"
    values = np.random.default_rng(0).normal(size=(2, 8, 10, 12))
    sitk.WriteImage(sitk.GetImageFromArray((values[0] + 1j * values[1]).astype(np.complex64)), str(complex_image))
    big_field = tmp_path / "big.csv"
    big_field.write_text("case_id,image\nc1," + "x" * 10_000_000 + "\n")
    runs = {
        long_image: (["predict", "--bundle", BUNDLE, "--image", long_image], "file name too long"),
        complex_image: (["predict", "--bundle", BUNDLE, "--image", complex_image], "complex-valued voxels"),
        big_field: (["predict", "--bundle", BUNDLE, "--manifest", big_field], "not a readable CSV manifest"),
    }
    for n, (named, (argv, words)) in enumerate(runs.items()):
        code, _, err = neonet(capsys, *argv, "--out", tmp_path / f"o{n}", "--device", "cpu")
        line = error_line(err)
        assert code == 1 and words in line and str(named)[:200] in line, err
        assert not (tmp_path / f"o{n}").exists()
    with pytest.raises(SystemExit) as exit_code:  # an unknown device is a usage error (exit 2), one clear line
        neonet(capsys, "segment", "--bundle", BUNDLE, "--image", IMAGE, "--out", tmp_path / "m.nii.gz", "--device", "banana")
    assert exit_code.value.code == 2 and "--device 'banana': not a device" in capsys.readouterr().err


# --- item 11: smaller ones ---------------------------------------------------------------------------------
def test_progress_json_prints_only_json_on_stdout_with_the_stages_of_one_case(tmp_path, capsys):
    """Issue 13 item 10 too: single-case predict and segment report their stages."""
    code, out, err = neonet(capsys, "predict", "--bundle", BUNDLE, "--image", IMAGE, "--out", tmp_path / "o", "--device", "cpu",
                            "--no-tta", progress="json")
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]  # every stdout line parses
    parts = [e["part"] for e in events if e["event"] == "progress" and e["stage"] == "predict"]
    assert parts == ["load", "localise", "crop", "classify", "attention"]
    assert [e["fraction"] for e in events if e["event"] == "progress"] == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert "p(PNI) = " in err  # the human summary went to stderr
    code, out, err = neonet(capsys, "segment", "--bundle", BUNDLE, "--image", IMAGE, "--out", tmp_path / "m.nii.gz",
                            "--device", "cpu", progress="json")
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert [e.get("part") for e in events if e["event"] == "progress"] == ["load", "localise", "write"]
    assert "tumour volume" in err


def test_a_folder_given_as_tumour_mask_is_called_a_folder(tmp_path):
    (tmp_path / "masks").mkdir()
    (tmp_path / "m.csv").write_text(f"case_id,image,tumor_mask\nc1,{IMAGE},masks\n")
    _, problems = parse_manifest(tmp_path / "m.csv")
    assert [(p.file, p.problem) for p in problems] == [(str(tmp_path / "masks"), "is a folder, not a tumor_mask file")]


def test_itk_multi_line_warnings_become_one_line(tmp_path, capfd):
    """A NIfTI whose sform has unexpected scales: ITK prints a four-line WARNING block; we say it in one line."""
    path = write_volume(Volume(np.random.default_rng(0).normal(size=(6, 7, 8)).astype(np.float32)), tmp_path / "s.nii")
    header = bytearray(path.read_bytes())
    header[254:256] = np.int16(2).tobytes()  # sform_code: aligned
    header[280:328] = np.array([[-1, 0.2, 0, 0], [0, -1, 0, 0], [0, 0, 1, 0]], np.float32).tobytes()  # sheared srow_x/y/z
    path.write_bytes(bytes(header))
    capfd.readouterr()
    read_volume(path)
    err = capfd.readouterr().err
    assert "WARNING: In" not in err and "NiftiImageIO (0x" not in err, err
    lines = err.strip().splitlines()
    assert lines and all(ln.startswith(f"neonet: warning: {path}: ") for ln in lines) and "sform" in err, err


def _write_series(folder: Path, uid: str, description: str, slices: int) -> None:
    for n in range(slices):
        image = sitk.GetImageFromArray(np.full((1, 16, 16), 100 + n, np.int16))
        tags = {"0008|0060": "MR", "0020|000d": "1.2.826.0.1.3680043.2.1125.1", "0020|000e": uid, "0008|103e": description,
                "0020|0032": f"0\\0\\{2.0 * n}", "0020|0037": "1\\0\\0\\0\\1\\0", "0020|0013": str(n + 1),
                "0008|0018": f"{uid}.{n + 1}"}
        write_dicom_slice(image, tags, folder / f"{description}_{n}.dcm")


def test_a_dicom_folder_with_several_series_names_the_one_it_reads(tmp_path, capsys):
    folder = tmp_path / "dicom"
    folder.mkdir()
    _write_series(folder, "1.2.826.0.1.3680043.2.1125.2", "localiser", 3)
    _write_series(folder, "1.2.826.0.1.3680043.2.1125.3", "hbp", 5)
    volume = read_volume(folder)
    assert volume.array.shape == (5, 16, 16) and volume.metadata["dicom_series_uid"] == "1.2.826.0.1.3680043.2.1125.3"
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"neonet: warning: {folder}: holds 2 DICOM series"), lines
    assert "1.2.826.0.1.3680043.2.1125.3 (5 files, 'hbp')" in lines[0] and "1.2.826.0.1.3680043.2.1125.2 (3 files)" in lines[0]


# --- item 12: an implausible NeoSeg result -----------------------------------------------------------------
def test_neoseg_calling_the_whole_body_tumour_is_refused_on_the_coarse_grid(tmp_path, capsys):
    from neonet_core.config import get_preset
    from neonet_core.neoseg import Segmenter, localise

    net = nn.Conv3d(1, 2, kernel_size=1)  # "tumour" wherever the normalised intensity is above 0.05: the whole body
    with torch.no_grad():
        net.weight.copy_(torch.tensor([0.0, 20.0]).view(2, 1, 1, 1, 1))
        net.bias.copy_(torch.tensor([0.0, -1.0]))
    segmenter = Segmenter(net, get_preset("tiny").seg)
    image = read_volume(IMAGE)
    with pytest.raises(ImplausibleTumourError, match=r"NeoSeg's tumour is implausible \(.*% of the body, more than 50%\)") as err:
        localise(image, None, segmenter)
    assert str(IMAGE) in str(err.value) and "\n" not in str(err.value)
