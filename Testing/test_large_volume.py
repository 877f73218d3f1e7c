"""Large volumes within bounded memory: a 512x512x300 int16 MRI goes read -> NeoSeg localise -> TLCR crop
-> normalise (the path ``neonet predict`` takes before the classifier) with a peak resident memory under
2 GB on CPU, the volume is never converted to float at full size, and the crop lands on the tumour; a
NeoSeg result too large to be a tumour is refused, also under 2 GB.

The pipeline runs in a fresh subprocess that reports its own peak resident set size (VmHWM, Python,
torch and MONAI included). Time is never asserted (see bench/bench_large_volume.py for timings).
The segmenter is a real network: a 1x1x1 convolution that thresholds the normalised coarse image,
so the tumour is found deterministically without training.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SHAPE = (300, 512, 512)  # (k, j, i)
SPACING = (0.78, 0.78, 1.0)  # (i, j, k) mm
ORIGIN = (-100.0, 50.0, 20.0)
CENTRE = (170.0, 230.0, 290.0)  # tumour centre (k, j, i) voxels
RADIUS_MM = 14.0
LIMIT_MB = 2048.0


def write_large_int16(path: Path) -> None:
    """A body ellipse (~440) holding a bright tumour ball (~940) in noise, int16, built slice by slice."""
    import SimpleITK as sitk

    rng = np.random.default_rng(0)
    nk, nj, ni = SHAPE
    j, i = np.ogrid[:nj, :ni]
    body = ((j - nj / 2) / (0.42 * nj)) ** 2 + ((i - ni / 2) / (0.45 * ni)) ** 2 < 1
    array = np.empty(SHAPE, dtype=np.int16)
    for k in range(nk):
        d2 = ((k - CENTRE[0]) * SPACING[2]) ** 2 + ((j - CENTRE[1]) * SPACING[1]) ** 2 + ((i - CENTRE[2]) * SPACING[0]) ** 2
        plane = 40.0 + 400.0 * body + 500.0 * (d2 < RADIUS_MM**2) + rng.normal(0, 30, (nj, ni))
        array[k] = plane.astype(np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN)
    sitk.WriteImage(image, str(path), False)


def child(image_path: str, level: float = 0.75) -> dict:
    """Run in a fresh process: the predict path up to the normalised patch; memory in MiB.

    ``level``: normalised intensity above which the network says "tumour" (0.2 takes the whole body).
    """
    import torch
    from torch import nn

    from neonet_core.config import get_preset
    from neonet_core.errors import ImplausibleTumourError
    from neonet_core.io import read_volume
    from neonet_core.neoseg import Segmenter, localise
    from neonet_core.normalize import normalise_from_config
    from neonet_core.tlcr import tlcr_from_config

    torch.set_num_threads(1)
    cfg = get_preset("tiny")
    net = nn.Conv3d(1, 2, kernel_size=1)  # tumour logit - background logit = 20 * (intensity - level)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([0.0, 20.0]).view(2, 1, 1, 1, 1))
        net.bias.copy_(torch.tensor([0.0, -20.0 * level]))
    segmenter = Segmenter(net, cfg.seg, percentiles=(0.5, 99.99))  # the 11 ml tumour -> 1, the body -> ~0.45
    image = read_volume(image_path)
    try:
        tumour, source = localise(image, None, segmenter)
    except ImplausibleTumourError as err:
        return {"peak_mb": _peak_mb(), "refused": str(err)}
    crop = tlcr_from_config(image, tumour, None, cfg)
    patch = normalise_from_config(crop.image_patch, cfg)
    peak = _peak_mb()
    return {
        "peak_mb": peak,
        "dtype": str(image.array.dtype),
        "source": source,
        "tumour_voxels": int(np.count_nonzero(tumour.array)),
        "roi_centre": list(crop.roi.center),
        "patch_shape": list(patch.array.shape),
        "patch_dtype": str(patch.array.dtype),
        "patch_range": [float(patch.array.min()), float(patch.array.max())],
    }


def _peak_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024.0 for line in f if line.startswith("VmHWM:"))


@pytest.fixture(scope="module")
def large_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("large") / "large.nii"
    write_large_int16(path)
    return path


def run_child(path: Path, level: float) -> dict:
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"from test_large_volume import child; print(json.dumps(child({str(path)!r}, {level!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_512x512x300_int16_stays_under_2_gb(large_file):
    result = run_child(large_file, 0.75)
    assert result["peak_mb"] < LIMIT_MB, result
    assert result["dtype"] == "int16"  # read as stored, never cast at full size
    assert result["source"] == "neoseg"
    expected_ml = 4 / 3 * np.pi * RADIUS_MM**3 / 1000.0
    found_ml = result["tumour_voxels"] * np.prod(SPACING) / 1000.0
    assert abs(found_ml - expected_ml) < 0.25 * expected_ml
    true_centre = np.asarray(ORIGIN) + np.asarray(CENTRE[::-1]) * np.asarray(SPACING)
    assert np.linalg.norm(np.asarray(result["roi_centre"]) - true_centre) < 3.0  # mm
    assert result["patch_shape"] == [32, 32, 32] and result["patch_dtype"] == "float32"
    assert 0.0 <= result["patch_range"][0] < result["patch_range"][1] <= 1.0


def test_a_component_filling_the_body_is_refused_as_implausible_under_2_gb(large_file):
    """Worst case: NeoSeg calls the whole body tumour (~28 litres): refused on the coarse grid with a clear
    message (issue 12 item 12), before any full-size refinement, so the peak stays far under the bound."""
    result = run_child(large_file, 0.2)
    assert result["peak_mb"] < LIMIT_MB, result
    assert "NeoSeg's tumour is implausible" in result["refused"] and "mL, more than 2,000 mL" in result["refused"], result
    assert str(large_file) in result["refused"]
