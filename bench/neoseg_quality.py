"""NeoSeg quality on the phantom, end to end: train on one cohort, evaluate on a held-out one (another seed).

Prints the tumour Dice (on the input grid, after post-processing) and the distance between the TLCR
centre placed from the predicted mask and the one placed from the true mask, per case and summarised.
Targets (issue 3): mean Dice >= 0.8 and TLCR centre within 5 mm in >= 95 % of held-out cases.

    .venv/bin/python bench/neoseg_quality.py [--work DIR] [--train-cases 32] [--test-cases 20] [--config tiny]
        [--epochs N] [--spacing MM] [--threads 2]

Training CPU time with the defaults: about 5-10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=None, help="working folder (default: a new temporary one)")
    parser.add_argument("--train-cases", type=int, default=32)
    parser.add_argument("--test-cases", type=int, default=20)
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--spacing", type=float, default=None, help="override SegConfig.spacing_mm")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--difficulty", type=float, default=0.5)
    args = parser.parse_args()

    import torch

    from neonet_core.config import load_config
    from neonet_core.manifest import load_case, read_manifest
    from neonet_core.neoseg import load_segmenter
    from neonet_core.workflows.training import train_stage
    from neonet_core.metrics import dice
    from neonet_core.phantom import generate_cohort
    from neonet_core.progress import set_default_mode
    from neonet_core.tlcr import tumour_roi

    torch.set_num_threads(args.threads)
    set_default_mode("none")
    work = args.work or Path(tempfile.mkdtemp(prefix="neoseg-quality-"))
    config = load_config(args.config)
    if args.epochs is not None:
        config.seg.train.epochs = args.epochs
    if args.spacing is not None:
        config.seg.spacing_mm = args.spacing

    train_manifest = work / "train" / "manifest.csv"
    if not train_manifest.exists():
        generate_cohort(work / "train", cases=args.train_cases, positives=args.train_cases // 3, seed=0, difficulty=args.difficulty)
    test_manifest = work / "test" / "manifest.csv"
    if not test_manifest.exists():
        generate_cohort(work / "test", cases=args.test_cases, positives=args.test_cases // 3, seed=1, difficulty=args.difficulty)

    bundle_dir = work / f"bundle-{int(time.time())}"
    cpu0, wall0 = time.process_time(), time.perf_counter()
    train_stage("seg", train_manifest, config, bundle_dir, "cpu")
    train_cpu, train_wall = time.process_time() - cpu0, time.perf_counter() - wall0
    info = json.loads((bundle_dir / "bundle.json").read_text())["training"]["seg"]

    segmenter = load_segmenter(bundle_dir, "cpu")
    roi_mm, component = config.preprocess.roi_mm, config.preprocess.component
    rows = []
    for case in read_manifest(test_manifest):
        image, truth, _ = load_case(case)
        t0 = time.perf_counter()
        result = segmenter.segment(image)
        seconds = time.perf_counter() - t0
        d = dice(result.mask.array, truth.array)
        if result.found:
            shift = float(np.linalg.norm(np.subtract(tumour_roi(image, result.mask, roi_mm, component).center,
                                                     tumour_roi(image, truth, roi_mm, component).center)))
        else:
            shift = float("inf")
        true_ml = float(truth.array.sum() * np.prod(truth.spacing) / 1000)
        rows.append((case.case_id, d, shift, result.volume_ml, true_ml, seconds))
        print(f"{case.case_id}: Dice {d:.3f}  TLCR centre shift {shift:.2f} mm  volume {result.volume_ml:.2f} mL (true {true_ml:.2f})  {seconds:.2f} s")

    dices = np.array([r[1] for r in rows])
    shifts = np.array([r[2] for r in rows])
    print()
    print(f"config {args.config}: spacing {config.seg.spacing_mm} mm, channels {config.seg.channels}, roi {config.seg.roi_size}, "
          f"epochs {config.seg.train.epochs}, {info['train_cases']} train / {info['val_cases']} val cases, {info['steps']} steps")
    print(f"training: {train_cpu:.0f} s CPU time, {train_wall:.0f} s wall ({args.threads} threads); best val Dice {info['best_score']:.3f} at step {info['best_step']}")
    print(f"held-out cohort (seed 1, {len(rows)} cases): tumour Dice mean {dices.mean():.3f}, median {np.median(dices):.3f}, min {dices.min():.3f}")
    print(f"TLCR centre within 5 mm of the true-mask centre: {np.mean(shifts <= 5.0) * 100:.1f} % of cases "
          f"(median shift {np.median(shifts):.2f} mm, max {shifts.max():.2f} mm)")
    print(f"inference: {np.mean([r[5] for r in rows]):.2f} s per 128x128x40 volume")
    ok = dices.mean() >= 0.8 and np.mean(shifts <= 5.0) >= 0.95
    print("targets (Dice >= 0.8, centre within 5 mm in >= 95 %):", "MET" if ok else "NOT MET")
    return 0


if __name__ == "__main__":
    sys.exit(main())
