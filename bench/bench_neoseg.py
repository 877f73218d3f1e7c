"""NeoSeg inference speed and memory against a plain MONAI UNet run at full resolution (the reference).

For a 128x128x40 phantom case (1.5x1.5x3 mm) and a 512x512x120 int16 volume (0.75x0.75x2.5 mm):

- NeoSeg: ``Segmenter.segment`` (coarse isotropic grid, sliding window, post-processing, mask back on
  the input grid);
- reference: a MONAI UNet of the same widths, sliding-window inference on the full-resolution
  volume (robustly normalised to float32), softmax, argmax mask. The same roi size and overlap.

Each measurement runs in its own subprocess: wall time of one call after a warm-up call on a small
volume, and peak memory as the highest resident set size sampled (every 2 ms) during the call minus
the resident size just before it (the input volume and the loaded network are not counted).

    .venv/bin/python bench/bench_neoseg.py [--bundle B] [--threads 2] [--sizes phantom large]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZES = {"phantom": ((40, 128, 128), (1.5, 1.5, 3.0)), "large": ((120, 512, 512), (0.75, 0.75, 2.5))}


def _rss_mb() -> float:
    """Current resident set size of this process (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


class PeakRSS:
    """Samples the RSS every ``interval`` s in a thread; ``peak_mb`` = highest sample minus the RSS at start."""

    def __init__(self, interval: float = 0.002):
        import threading

        self.interval, self.peak, self._stop = interval, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_mb())
            self._stop.wait(self.interval)

    def __enter__(self):
        self.start = _rss_mb()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak, _rss_mb()) - self.start


def _volume(size: str):
    """An int16 test volume: a phantom case (when the phantom generator is present) or noise + a dark ellipsoid."""
    from neonet_core.volume import Volume

    shape, spacing = SIZES[size]
    if size == "phantom":
        try:
            from neonet_core.io import read_volume
            from neonet_core.manifest import read_manifest
            from neonet_core.phantom import generate_cohort

            folder = Path(tempfile.mkdtemp(prefix="neoseg-bench-"))
            case = read_manifest(generate_cohort(folder, cases=1, positives=0, seed=3))[0]
            return read_volume(case.image)
        except ImportError:
            pass
    rng = np.random.default_rng(0)
    array = rng.normal(800, 60, size=shape).astype(np.int16)
    k, j, i = np.ogrid[: shape[0], : shape[1], : shape[2]]
    inside = ((k - shape[0] / 2) / (shape[0] / 6)) ** 2 + ((j - shape[1] / 2) / (shape[1] / 8)) ** 2 + ((i - shape[2] / 2) / (shape[2] / 8)) ** 2 < 1
    array[inside] -= 400
    return Volume(array, spacing, (0.0, 0.0, 0.0))


def _segmenter(bundle: str | None):
    from neonet_core.config import get_preset
    from neonet_core.neoseg import Segmenter, load_segmenter
    from neonet_core.neoseg.model import build_seg_net

    if bundle:
        return load_segmenter(bundle, "cpu")
    import torch

    torch.manual_seed(0)
    cfg = get_preset("tiny").seg
    return Segmenter(build_seg_net(cfg), cfg)


def _reference(segmenter):
    """``run(volume) -> mask``: a MONAI UNet of the same widths, sliding window at full resolution."""
    import torch
    from monai.inferers import sliding_window_inference
    from monai.networks.nets import UNet

    from neonet_core.normalize import robust_normalise

    cfg = segmenter.cfg
    torch.manual_seed(0)
    net = UNet(3, 1, len(segmenter.classes), tuple(cfg.channels), (2,) * (len(cfg.channels) - 1), num_res_units=cfg.num_res_units).eval()

    @torch.no_grad()
    def run(volume):
        x = torch.from_numpy(robust_normalise(volume.array))[None, None]
        out = sliding_window_inference(x, tuple(cfg.roi_size), cfg.sw_batch_size, lambda w: torch.softmax(net(w), 1), cfg.sw_overlap, mode="gaussian")
        return out[0].argmax(0).to(torch.uint8).numpy()

    return run


def measure(kind: str, size: str, bundle: str | None, threads: int) -> dict:
    """Run one measurement in this process (called in a fresh subprocess)."""
    import torch

    from neonet_core.volume import Volume

    torch.set_num_threads(threads)
    segmenter = _segmenter(bundle)
    run = (lambda v: segmenter.segment(v).mask.array) if kind == "neoseg" else _reference(segmenter)
    warm = Volume(np.random.default_rng(1).normal(100, 10, (24, 48, 48)).astype(np.int16), (1.5, 1.5, 3.0))
    run(warm)
    volume = _volume(size)
    with PeakRSS() as rss:
        t0 = time.perf_counter()
        mask = run(volume)
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "peak_mb": rss.peak_mb, "input_mb": volume.array.nbytes / 2**20, "mask_voxels": int(np.count_nonzero(mask))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default=None, help="a NeoSeg bundle (default: an untrained tiny-preset network)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--measure", nargs=2, metavar=("KIND", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure[0], args.measure[1], args.bundle, args.threads)))
        return 0

    print(f"NeoSeg inference vs a full-resolution MONAI UNet of the same widths ({args.threads} CPU threads, "
          f"{'bundle ' + args.bundle if args.bundle else 'untrained tiny-preset network'})")
    print(f"{'volume':<22}{'neoseg s':>10}{'ref s':>10}{'time ratio':>12}{'neoseg MB':>11}{'ref MB':>10}{'mem ratio':>11}")
    table = {}
    for size in args.sizes:
        results = {}
        for kind in ("neoseg", "reference"):
            cmd = [sys.executable, __file__, "--measure", kind, size, "--threads", str(args.threads)]
            if args.bundle:
                cmd += ["--bundle", args.bundle]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            results[kind] = json.loads(out.strip().splitlines()[-1])
        n, r = results["neoseg"], results["reference"]
        table[size] = (n, r)
        shape = "x".join(str(s) for s in SIZES[size][0][::-1])
        print(f"{shape + ' int16':<22}{n['seconds']:>10.2f}{r['seconds']:>10.2f}{n['seconds'] / r['seconds']:>12.3f}"
              f"{n['peak_mb']:>11.0f}{r['peak_mb']:>10.0f}{n['peak_mb'] / max(r['peak_mb'], 1e-3):>11.3f}")
    print("ratio = NeoSeg / reference (lower is better); MB = peak RSS during the call above the RSS before it (input volume excluded)")
    from _table import row

    for size, (n, r) in table.items():
        shape = "x".join(str(s) for s in SIZES[size][0][::-1])
        row(f"NeoSeg {shape} vs full-res UNet: time", n["seconds"], r["seconds"], "s")
        row(f"NeoSeg {shape} vs full-res UNet: peak above start", n["peak_mb"], r["peak_mb"], "MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
