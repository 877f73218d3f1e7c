"""NeoNetSlicer's Logic predict, per stage, on the phantom sample case in an MRML scene, against
`neonet predict` on the same files, in the same run.

    python bench/bench_slicer_logic.py [--bundle DIR] [--repeats 3] [--device cpu]

Without --bundle it uses Resources/Models/neonet-demo, or else trains a tiny bundle with the
library's training functions into a temporary folder first (about a minute on a laptop CPU).
Prints the median seconds of each stage over the repeats (the first Logic call, which loads the
bundle, is reported apart) and the ratios Logic / CLI; then the panel's Predict job (click to result
in the scene) in a new process per job against the panel's warm worker.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "NeoNetSlicer"), str(ROOT / "Testing")]


def logic_runs(bundle: Path, image_file: Path, seg_file: Path, repeats: int, device: str) -> list[dict]:
    from NeoNetSlicerLib.logic import NeoNetLogic
    from NeoNetSlicerLib.scene import load_segmentation, load_volume, standalone_scene

    context = standalone_scene()
    t = time.perf_counter()
    volume = load_volume(context, image_file)
    segmentation = load_segmentation(context, seg_file)
    load_files = time.perf_counter() - t
    logic = NeoNetLogic(context.scene, context.app_logic)
    runs = []
    for _ in range(repeats + 1):  # the first call loads the bundle
        out = logic.predict(volume, segmentation, bundle=bundle, device=device)
        runs.append({"load_files": load_files, **out.timings})
    return runs


def cli_runs(bundle: Path, image_file: Path, seg_file: Path, repeats: int, device: str, work: Path) -> list[dict]:
    from NeoNetSlicerLib.runner import library_env

    runs = []
    for n in range(repeats):
        out = work / f"cli{n}"
        t = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "neonet_core.cli.main", "--progress", "none", "predict", "--bundle", str(bundle),
             "--image", str(image_file), "--mask", str(seg_file), "--out", str(out), "--device", device],
            capture_output=True, text=True, env=library_env(),
        )
        wall = time.perf_counter() - t
        if done.returncode != 0:
            raise SystemExit(f"neonet predict failed: {done.stderr.strip()}")
        timings = json.loads((out / "result.json").read_text())["timings_s"]
        runs.append({"process_wall": wall, **{f"predict_{k}" if k not in ("load", "total") else k: v for k, v in timings.items()}})
    return runs


def panel_job_runs(bundle: Path, image_file: Path, seg_file: Path, repeats: int, device: str) -> dict[str, list[float]]:
    """Seconds from the panel's Predict click (``start_predict``) to its result in the scene: each job
    in a new ``neonet`` process ("cold"), and in the warm worker the panel starts when it opens
    ("warm"; the worker is ready before the first click, as after the panel has been open a few seconds)."""
    from NeoNetSlicerLib.logic import NeoNetLogic
    from NeoNetSlicerLib.scene import load_segmentation, load_volume, standalone_scene
    from NeoNetSlicerLib.worker import WarmWorker

    context = standalone_scene()
    volume, segmentation = load_volume(context, image_file), load_segmentation(context, seg_file)
    logic = NeoNetLogic(context.scene, context.app_logic)
    times: dict[str, list[float]] = {"cold": [], "warm": []}
    worker = WarmWorker().start()
    try:
        while not worker.ready:
            worker.pump()
            time.sleep(0.05)
        for mode in ("cold", "warm"):
            logic.warm_worker = worker if mode == "warm" else None
            for _ in range(repeats):
                t = time.perf_counter()
                logic.start_predict(volume, segmentation, bundle=bundle, device=device).wait()
                times[mode].append(time.perf_counter() - t)
    finally:
        worker.stop()
    return times


def median(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if key in r]
    return statistics.median(values) if values else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    from NeoNetSlicerLib.base import default_bundle_path
    from NeoNetSlicerLib.sampledata import SAMPLE_FILES, sample_data_dir

    image_file, seg_file = (sample_data_dir() / name for name in SAMPLE_FILES)
    with tempfile.TemporaryDirectory(prefix="neonet-bench-") as tmp:
        work = Path(tmp)
        bundle = args.bundle or default_bundle_path()
        if bundle is None:
            print("no --bundle and no demo bundle: training a tiny one with the library ...", flush=True)
            t = time.perf_counter()
            from test_slicer_logic import tiny_bundle  # the test suite's recipe

            (work / "train").mkdir()
            bundle = tiny_bundle(work / "train")
            print(f"  trained in {time.perf_counter() - t:.1f} s", flush=True)
        import platform

        import torch

        print(f"case: {image_file.name} + {seg_file.name}; bundle: {bundle}; device: {args.device}; "
              f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
        logic = logic_runs(bundle, image_file, seg_file, args.repeats, args.device)
        cli = cli_runs(bundle, image_file, seg_file, args.repeats, args.device, work)
        jobs = panel_job_runs(bundle, image_file, seg_file, args.repeats, args.device)
    first, warm = logic[0], logic[1:]
    stages = ["mrml_in", "load", "predict_localise", "predict_crop", "predict_classify", "predict_attention", "predict_map_back", "mrml_out"]
    print(f"\n{'stage':<20}{'Logic first':>12}{'Logic warm':>12}{'CLI':>10}{'Logic/CLI':>11}   (median s over {args.repeats} runs)")
    for stage in stages:
        lw, lc = median(warm, stage), median(cli, stage)
        ratio = f"{lw / lc:.2f}" if lw is not None and lc else "-"
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        print(f"{stage:<20}{fmt(first.get(stage)):>12}{fmt(lw):>12}{fmt(lc):>10}{ratio:>11}")
    logic_lib, cli_lib = median(warm, "predict"), median(cli, "total")  # the library's stages, load excluded
    print(f"{'library stages':<20}{first['predict']:>12.3f}{logic_lib:>12.3f}{cli_lib:>10.3f}{logic_lib / cli_lib:>11.2f}")
    logic_total, cli_wall = median(warm, "total"), median(cli, "process_wall")
    print(f"{'Logic call total':<20}{first['total']:>12.3f}{logic_total:>12.3f}")
    print(f"{'CLI process wall':<20}{'':>12}{'':>12}{cli_wall:>10.3f}   (start Python + import torch + load bundle + predict + write)")
    print(f"\nLogic warm call / CLI process: {logic_total / cli_wall:.2f} (the Logic keeps the bundle loaded; "
          f"files into nodes once: {first['load_files']:.3f} s)")
    cold, warm_job = statistics.median(jobs["cold"]), statistics.median(jobs["warm"])
    print(f"Panel Predict click -> result in the scene: {cold:.2f} s with a new process per job, {warm_job:.2f} s in the "
          f"warm worker (ratio {warm_job / cold:.2f}; median of {args.repeats})")
    from _table import row

    row("Panel Predict job: warm worker vs new process", warm_job, cold, "s")

    row("Slicer Logic warm call vs neonet predict process", logic_total, cli_wall, "s")
    row("Slicer Logic library stages vs CLI's", logic_lib, cli_lib, "s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
