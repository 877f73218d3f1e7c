"""Training augmentation: the batched torch ``neonet_core.augment.augment_batch`` against the same
augmentation built from MONAI's random transforms, applied per item (the reference).

Batches of 8 x 1 x N^3 float32 patches (N = 32 and 64), two configurations:

- lossless: flips on each axis (p = 1/2), quarter turns in the (H, W) plane, integer shifts of up to
  2 voxels with the border repeated, gain and offset +/- 0.1. MONAI: ``RandFlip`` x 3,
  ``RandRotate90``, ``BorderPad(mode="edge")`` + ``RandSpatialCrop`` (MONAI has no integer shift),
  ``RandScaleIntensity``, ``RandShiftIntensity``.
- full: lossless + a +/- 10 degree trilinear rotation (``RandAffine``), a degree-3 bias field
  (``RandBiasField``), gamma (``RandAdjustContrast``) and Gaussian noise (``RandGaussianNoise``).

MONAI runs with ``set_track_meta(False)`` (plain tensors: its fastest path). Figures: median wall
time per batch over ``--repeats`` batches after two warm-up batches, in one process, same thread count.

    .venv/bin/python bench/bench_augment.py [--repeats 20] [--threads 1] [--sizes 32 64] [--device cpu]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

BATCH = 8
SHIFT, GAIN, LOG_GAMMA, BIAS, NOISE, ROTATE_DEG = 2, 0.1, 0.3, 0.1, 0.05, 10.0


def ours(full: bool):
    from neonet_core.augment import AugmentConfig

    extra = dict(rotate_deg=ROTATE_DEG, gamma=LOG_GAMMA, bias_field=BIAS, noise_std=NOISE) if full else {}
    return AugmentConfig.lossless(rot90="inplane", shift=SHIFT, shift_mode="edge", intensity=GAIN, **extra)


def monai_pipeline(size: int, full: bool, seed: int = 0):
    """The same augmentation as MONAI array transforms for one item (C, D, H, W)."""
    from monai import transforms as T

    steps = [T.RandFlip(prob=0.5, spatial_axis=a) for a in range(3)]
    steps += [T.RandRotate90(prob=0.75, max_k=3, spatial_axes=(1, 2)),  # k uniform in 0..3
              T.BorderPad(spatial_border=SHIFT, mode="edge"),
              T.RandSpatialCrop(roi_size=(size,) * 3, random_size=False)]
    if full:
        rad = math.radians(ROTATE_DEG)
        steps += [T.RandAffine(prob=1.0, rotate_range=(rad, rad, rad), mode="bilinear", padding_mode="border"),
                  T.RandBiasField(prob=1.0, degree=3, coeff_range=(-BIAS, BIAS)),
                  T.RandAdjustContrast(prob=1.0, gamma=(math.exp(-LOG_GAMMA), math.exp(LOG_GAMMA)))]
    steps += [T.RandScaleIntensity(factors=GAIN, prob=1.0), T.RandShiftIntensity(offsets=GAIN, prob=1.0)]
    if full:
        steps.append(T.RandGaussianNoise(prob=1.0, std=NOISE, sample_std=True))
    return T.Compose(steps).set_random_state(seed)


def median_seconds(fn, repeats: int, sync) -> float:
    for _ in range(2):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    import torch
    from monai.data import set_track_meta

    from _table import header, row
    from neonet_core.augment import augment_batch

    torch.set_num_threads(args.threads)
    set_track_meta(False)
    device = torch.device(args.device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    header(f"augmentation of {BATCH} x 1 x N^3 float32 patches, {args.threads} thread(s), {device}: "
           f"batched torch (ours) vs MONAI transforms per item (reference), median of {args.repeats} batches")
    for size in args.sizes:
        x = torch.rand(BATCH, 1, size, size, size, generator=torch.Generator().manual_seed(0)).to(device)
        for full in (False, True):
            cfg, pipe = ours(full), monai_pipeline(size, full)
            t_ours = median_seconds(lambda: augment_batch(x, cfg), args.repeats, sync)
            t_monai = median_seconds(lambda: torch.stack([torch.as_tensor(pipe(item)) for item in x]), args.repeats, sync)
            name = "full" if full else "lossless"
            row(f"{name} {BATCH}x1x{size}^3: time per batch", t_ours * 1e3, t_monai * 1e3, "ms",
                note="reference: MONAI per item")


if __name__ == "__main__":
    main()
