"""Benchmark `neonet predict` on CPU: latency per stage and peak memory, PattenNet vs DenseNet121.

Each measurement runs in a fresh subprocess (so peak RSS is that run's own): a synthetic MRI-like
volume of the given size with a spherical tumour mask (the user-mask path: no NeoSeg), a bundle
holding a tiny-preset PattenNet or a DenseNet121 on the same TLCR crop. Stage times are the median
of --repeats predictions after one warm-up; "load" is the bundle load. NeoSeg localisation is timed
separately on the same volume (untrained tiny-preset network: only the cost matters).

    .venv/bin/python bench/bench_predict.py [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = [(128, 128, 40), (512, 512, 120)]  # (i, j, k) voxels
MODELS = ["pattennet", "densenet121"]


def _volume(size, seed=0):
    import numpy as np

    from neonet_core.volume import Volume

    rng = np.random.default_rng(seed)
    nx, ny, nz = size
    spacing = (300.0 / nx, 300.0 / ny, 150.0 / nz)
    z, y, x = np.ogrid[:nz, :ny, :nx]
    centre = np.array([nz / 2, ny / 2, nx / 2])
    r2 = ((z - centre[0]) * spacing[2]) ** 2 + ((y - centre[1]) * spacing[1]) ** 2 + ((x - centre[2]) * spacing[0]) ** 2
    image = (400 + 50 * rng.standard_normal((nz, ny, nx))).astype(np.int16)
    image[r2 < 15.0 ** 2] -= 150
    return Volume(image, spacing), Volume((r2 < 15.0 ** 2).astype(np.uint8), spacing)


def _bundle(folder: Path, model: str) -> Path:
    import torch

    from neonet_core.bundle import add_network, new_bundle_info, write_bundle_info
    from neonet_core.config import NeoNetConfig
    from neonet_core.neocls.models import build_classifier
    from neonet_core.neocls.stage import network_config

    cfg = NeoNetConfig()
    cfg.cls.model = model
    torch.manual_seed(0)
    net = build_classifier(cfg.cls, cfg.ae)
    info = new_bundle_info(cfg.to_dict(), threshold=0.5, class_names=["PNI-", "PNI+"], name=f"bench-{model}")
    add_network(folder, info, "cls", net.state_dict(), network_config(cfg))
    write_bundle_info(folder, info)
    return folder


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def one(size, model: str, repeats: int, threads: int) -> dict:
    """Run inside a subprocess: returns stage medians (s) and peak RSS (MB)."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    from neonet_core.predict import Predictor

    image, mask = _volume(size)
    rss_inputs = _rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        predictor = Predictor(_bundle(Path(tmp), model), "cpu")
        load = time.perf_counter() - t
        predictor.predict(image, mask)  # warm-up
        runs = [predictor.predict(image, mask).timings for _ in range(repeats)]
    stages = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
    return {"size": list(size), "model": model, "load": load, **stages, "peak_rss_mb": _rss_mb(), "rss_after_input_mb": rss_inputs}


def neoseg(size, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from neonet_core.config import NeoNetConfig
    from neonet_core.neoseg.infer import Segmenter
    from neonet_core.neoseg.model import build_seg_net

    cfg = NeoNetConfig().seg
    image, _ = _volume(size)
    seg = Segmenter(build_seg_net(cfg).eval(), cfg, (0.5, 99.5), "cpu", "bench")
    seg.segment(image)
    t = time.perf_counter()
    seg.segment(image)
    return {"size": list(size), "model": "neoseg (localise only)", "localise": time.perf_counter() - t, "peak_rss_mb": _rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--one", nargs=2, metavar=("SIZE", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        size = tuple(int(v) for v in args.one[0].split("x"))
        result = neoseg(size, args.threads) if args.one[1] == "neoseg" else one(size, args.one[1], args.repeats, args.threads)
        print(json.dumps(result))
        return
    rows = []
    for size in SIZES:
        for model in MODELS + ["neoseg"]:
            cmd = [sys.executable, __file__, "--one", "x".join(map(str, size)), model, "--repeats", str(args.repeats), "--threads", str(args.threads)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            rows.append(json.loads(out))
    stages = ["load", "localise", "crop", "classify", "attention", "map_back", "total"]
    print(f"neonet predict on CPU ({args.threads} threads), user tumour mask, TTA 8 flips, median of {args.repeats}; seconds, peak RSS MB")
    print(f"{'volume':>12} {'model':>24} " + " ".join(f"{s:>9}" for s in stages) + f" {'peakMB':>8}")
    for r in rows:
        vals = " ".join(f"{r[s]:9.3f}" if s in r else f"{'-':>9}" for s in stages)
        print(f"{'x'.join(map(str, r['size'])):>12} {r['model']:>24} {vals} {r['peak_rss_mb']:8.0f}")
    for size in SIZES:
        p, d = (next(r for r in rows if r["size"] == list(size) and r["model"] == m) for m in MODELS)
        print(f"{'x'.join(map(str, size))}: PattenNet / DenseNet121 classify time {p['classify'] / d['classify']:.2f}x, "
              f"total {p['total'] / d['total']:.2f}x, peak RSS {p['peak_rss_mb'] / d['peak_rss_mb']:.2f}x")


if __name__ == "__main__":
    main()
