"""Large volumes: peak memory and time of the path ``neonet predict`` takes before the classifier.

    read_volume (int16 file) -> NeoSeg localise (coarse grid) -> TLCR crop -> robust normalisation

for 128x128x40, 512x512x120 and 512x512x300 int16 NIfTI volumes (a body ellipse and a dark
tumour ball in noise, written slice by slice). Reference, measured in the same run on the same
file: a plain SimpleITK read followed by a float32 conversion of the whole volume (what a naive
pipeline does before anything else).

Each measurement runs in a fresh subprocess; memory is the process's peak resident set size
(``VmHWM`` from /proc/self/status, Python + torch + MONAI imports included), and "above start" is
that peak minus the resident size just before the measured call (libraries and network loaded).

NeoSeg network: ``--bundle B``, else a tiny NeoSeg bundle trained here in a temp folder on a few
small cases of the same kind (about a minute on 2 cores). If it finds no tumour, or a "tumour" too
large to be one (refused on the coarse grid as implausible, issue 12 item 12), the crop is cut around
the known tumour mask instead and the row says so.

    .venv/bin/python bench/bench_large_volume.py [--sizes small medium large] [--bundle B] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

# name: (shape (k, j, i), spacing (i, j, k) mm)
SIZES = {
    "small": ((40, 128, 128), (1.5, 1.5, 3.0)),
    "medium": ((120, 512, 512), (0.78, 0.78, 2.5)),
    "large": ((300, 512, 512), (0.78, 0.78, 1.0)),
}
TUMOUR_RADIUS_MM = 14.0
# The NeoSeg trained here when no --bundle is given: the tiny preset, smaller and quicker still (no hold-out).
TINY_SEG = {"seg": {"channels": [4, 8, 16], "roi_size": [16, 32, 32], "train": {"epochs": 12, "batch_size": 2, "lr": 1e-2}},
            "val_fraction": 0.0}


def status_mb(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS, VmHWM) in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"{field} not in /proc/self/status")


def write_phantom(path: Path, shape, spacing, seed: int = 0) -> tuple[tuple, float]:
    """Write an int16 NIfTI slice by slice (never a float copy of the whole volume).

    Returns the tumour centre (k, j, i voxels) and radius in mm. The image holds a dark tumour ball
    (hypo-intense, as cholangiocarcinoma in the hepatobiliary phase) inside a brighter body ellipse,
    with Gaussian noise.
    """
    import SimpleITK as sitk

    rng = np.random.default_rng(seed)
    nk, nj, ni = shape
    si, sj, sk = spacing
    centre = (nk * rng.uniform(0.4, 0.6), nj * rng.uniform(0.4, 0.6), ni * rng.uniform(0.4, 0.6))
    array = np.empty(shape, dtype=np.int16)
    j, i = np.ogrid[:nj, :ni]
    body = ((j - nj / 2) / (0.42 * nj)) ** 2 + ((i - ni / 2) / (0.45 * ni)) ** 2 < 1
    for k in range(nk):
        d2 = ((k - centre[0]) * sk) ** 2 + ((j - centre[1]) * sj) ** 2 + ((i - centre[2]) * si) ** 2
        plane = 40.0 + 400.0 * body - 250.0 * (d2 < TUMOUR_RADIUS_MM**2) + rng.normal(0, 30, (nj, ni)).astype(np.float32)
        array[k] = np.clip(plane, -32768, 32767).astype(np.int16)
    image = sitk.GetImageFromArray(array)
    del array
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin((-100.0, 50.0, 20.0))
    sitk.WriteImage(image, str(path), False)
    return centre, TUMOUR_RADIUS_MM


def tumour_mask_file(path: Path, shape, spacing, centre) -> None:
    """The known tumour as a uint8 NIfTI next to the image (used only if NeoSeg finds nothing)."""
    import SimpleITK as sitk

    nk, nj, ni = shape
    k, j, i = np.ogrid[:nk, :nj, :ni]
    si, sj, sk = spacing
    d2 = ((k - centre[0]) * sk) ** 2 + ((j - centre[1]) * sj) ** 2 + ((i - centre[2]) * si) ** 2
    image = sitk.GetImageFromArray((d2 < TUMOUR_RADIUS_MM**2).astype(np.uint8))
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin((-100.0, 50.0, 20.0))
    sitk.WriteImage(image, str(path), False)


def train_tiny_bundle(folder: Path) -> Path:
    """A tiny NeoSeg bundle trained on 6 small cases like the bench volumes; returns the bundle folder."""
    from neonet_core.config import NeoNetConfig, get_preset, merge_dicts
    from neonet_core.manifest import Case, write_manifest
    from neonet_core.workflows.training import train_stage
    from neonet_core.progress import set_default_mode

    set_default_mode("none")
    folder.mkdir(parents=True, exist_ok=True)
    cases = []
    for c in range(6):
        shape, spacing = (32, 80, 80), (2.0, 2.0, 3.0)
        image, mask = folder / f"case{c}.nii", folder / f"case{c}_tumour.nii"
        centre, _ = write_phantom(image, shape, spacing, seed=100 + c)
        tumour_mask_file(mask, shape, spacing, centre)
        cases.append(Case(f"case{c}", image, mask, anatomy_mask=None, label=None, patient_id=f"case{c}"))
    manifest = write_manifest(cases, folder / "cohort.csv")
    cfg = NeoNetConfig.from_dict(merge_dicts(get_preset("tiny").to_dict(), TINY_SEG))
    return train_stage("seg", manifest, cfg, folder / "bundle", "cpu")


def measure_pipeline(image_path: str, mask_path: str, bundle: str, threads: int) -> dict:
    """read -> localise -> crop -> normalise in this process; memory figures in MiB."""
    import torch

    from neonet_core.config import get_preset
    from neonet_core.errors import ImplausibleTumourError, NoTumourFoundError
    from neonet_core.io import read_volume
    from neonet_core.neoseg import load_segmenter, localise
    from neonet_core.normalize import normalise_from_config
    from neonet_core.tlcr import tlcr_from_config

    torch.set_num_threads(threads)
    segmenter = load_segmenter(bundle, "cpu")
    cfg = get_preset("tiny")
    start = status_mb("VmRSS")
    t0 = time.perf_counter()
    image = read_volume(image_path)
    t_read = time.perf_counter() - t0
    try:
        tumour, source = localise(image, None, segmenter)
    except NoTumourFoundError:
        tumour, source = read_volume(mask_path), "given (NeoSeg found none)"
    except ImplausibleTumourError as err:
        reason = str(err).split("implausible (", 1)[-1].split("):", 1)[0]
        tumour, source = read_volume(mask_path), f"given (NeoSeg's was refused as implausible: {reason})"
    t_loc = time.perf_counter() - t0 - t_read
    peak_localise = status_mb("VmHWM")
    crop = tlcr_from_config(image, tumour, None, cfg)
    patch = normalise_from_config(crop.image_patch, cfg)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "read_s": t_read, "localise_s": t_loc, "peak_mb": status_mb("VmHWM"), "start_mb": start,
            "peak_localise_mb": peak_localise,
            "dtype": str(image.array.dtype), "tumour_source": source, "patch": list(patch.array.shape),
            "patch_dtype": str(patch.array.dtype),
            "tumour_ml": float(np.count_nonzero(tumour.array)) * float(np.prod(image.spacing)) / 1000.0}


def measure_reference(image_path: str) -> dict:
    """Plain SimpleITK read + float32 conversion of the whole volume."""
    import SimpleITK as sitk

    import torch  # noqa: F401  (same imports as the pipeline, so the peaks compare)

    start = status_mb("VmRSS")
    t0 = time.perf_counter()
    array = sitk.GetArrayFromImage(sitk.ReadImage(str(image_path))).astype(np.float32)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "peak_mb": status_mb("VmHWM"), "start_mb": start, "bytes": int(array.nbytes)}


def run_child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"measurement {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--bundle", default=None, help="a NeoSeg bundle (default: train a tiny one here)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: on a shared 2-core machine more threads spin and slow down)")
    parser.add_argument("--limit-mb", type=float, default=2048.0, help="the memory bound the pipeline must stay under")
    parser.add_argument("--measure", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        kind, *rest = args.measure
        result = measure_pipeline(rest[0], rest[1], rest[2], args.threads) if kind == "pipeline" else measure_reference(rest[0])
        print(json.dumps(result))
        return 0

    from _table import row

    with tempfile.TemporaryDirectory(prefix="neonet-large-") as tmp:
        tmp = Path(tmp)
        bundle = args.bundle
        if bundle is None:
            t = time.perf_counter()
            bundle = str(train_tiny_bundle(tmp / "train"))
            print(f"trained a tiny NeoSeg bundle in {time.perf_counter() - t:.0f} s", flush=True)
        print(f"large volumes: read -> NeoSeg localise -> TLCR crop -> normalise, CPU {args.threads} threads; "
              "peak = process VmHWM incl. imports; reference = SimpleITK read + float32 copy of the same file")
        for name in args.sizes:
            shape, spacing = SIZES[name]
            image_path, mask_path = tmp / f"{name}.nii", tmp / f"{name}_tumour.nii"
            centre, _ = write_phantom(image_path, shape, spacing)
            tumour_mask_file(mask_path, shape, spacing, centre)
            ours = run_child(["--measure", "pipeline", str(image_path), str(mask_path), bundle, "--threads", str(args.threads)])
            ref = run_child(["--measure", "reference", str(image_path)])
            label = "x".join(map(str, shape[::-1])) + " int16"
            row(f"{label}: peak RSS (MB)", ours["peak_mb"], ref["peak_mb"], "MB")
            row(f"{label}: peak above start (MB)", ours["peak_mb"] - ours["start_mb"], ref["peak_mb"] - ref["start_mb"], "MB")
            row(f"{label}: seconds", ours["seconds"], ref["seconds"], "s")
            ok = "under" if ours["peak_mb"] < args.limit_mb else "OVER"
            true_ml = 4 / 3 * np.pi * TUMOUR_RADIUS_MM**3 / 1000.0
            print(f"    tumour from {ours['tumour_source']}: {ours['tumour_ml']:.1f} ml (true {true_ml:.1f} ml); read {ours['read_s']:.1f} s, "
                  f"localise {ours['localise_s']:.1f} s (peak after localise {ours['peak_localise_mb']:.0f} MB); "
                  f"volume kept as {ours['dtype']}; patch {ours['patch']} {ours['patch_dtype']}; "
                  f"peak {ours['peak_mb']:.0f} MB is {ok} the {args.limit_mb:.0f} MB bound", flush=True)
            image_path.unlink()
            mask_path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
