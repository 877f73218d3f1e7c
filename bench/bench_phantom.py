"""Phantom generation speed: cases per second, seconds for 128 cases, against baselines from the same run.

    .venv/bin/python bench/bench_phantom.py --cases 16 --workers 2

Measures, on the default 128x128x40 grid:
  write-only   writing already generated volumes (image + 2 masks, .nii.gz), the I/O floor
  generate     generate_case in memory, one process
  cohort x1    generate_cohort with 1 worker (generate + write + manifest)
  cohort xW    generate_cohort with W worker processes (must give the same files)
and prints each as cases/s, the extrapolation to 128 cases, and ratios against write-only and x1.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from neonet_core.io import write_volume
from neonet_core.phantom import PhantomParams, cohort_labels, generate_case, generate_cohort
from neonet_core.progress import set_default_mode


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=16, help="cases per measurement (default 16)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes for the parallel run (default 2)")
    parser.add_argument("--difficulty", type=float, default=0.5)
    parser.add_argument("--size", type=int, nargs=3, default=[128, 128, 40])
    parser.add_argument("--spacing", type=float, nargs=3, default=[1.5, 1.5, 3.0])
    args = parser.parse_args()
    set_default_mode("none")
    n = args.cases
    params = PhantomParams(tuple(args.size), tuple(args.spacing), args.difficulty)
    labels = cohort_labels(n, n // 3, 0)
    cohort_kwargs = dict(cases=n, positives=n // 3, seed=0, difficulty=args.difficulty, size=params.size, spacing=params.spacing)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cases = []
        t_generate = timed(lambda: cases.extend(generate_case(i, 0, int(labels[i]), params) for i in range(n)))

        def write_all():
            for i, c in enumerate(cases):
                for name, vol in (("image", c.image), ("tumour", c.tumour), ("anatomy", c.anatomy)):
                    write_volume(vol, tmp / "write_only" / f"{i}_{name}.nii.gz")

        t_write = timed(write_all)
        t_one = timed(lambda: generate_cohort(tmp / "x1", workers=1, **cohort_kwargs))
        t_many = timed(lambda: generate_cohort(tmp / "xW", workers=args.workers, **cohort_kwargs))
        same = (tmp / "x1" / "manifest.csv").read_text() == (tmp / "xW" / "manifest.csv").read_text() and all(
            (tmp / "x1" / "cases" / f.name).read_bytes() == f.read_bytes() for f in (tmp / "xW" / "cases").iterdir()
        )

    grid = "x".join(map(str, params.size))
    print(f"phantom bench: {n} cases, grid {grid}, difficulty {args.difficulty}")
    for name, t in (("write-only (baseline)", t_write), ("generate, in memory", t_generate),
                    ("cohort, 1 worker", t_one), (f"cohort, {args.workers} workers", t_many)):
        print(f"  {name:24s} {n / t:7.2f} cases/s   {128 * t / n:6.1f} s per 128 cases")
    print(f"  cohort x1 / write-only: {t_one / t_write:.2f}x the I/O floor")
    print(f"  speed-up with {args.workers} workers: {t_one / t_many:.2f}x (identical files: {same})")
    from _table import row

    row("phantom cohort, 1 worker vs write-only", n / t_one, n / t_write, "cases/s")
    row(f"phantom cohort, {args.workers} workers vs 1 worker", n / t_many, n / t_one, "cases/s", note=f"identical files: {same}")


if __name__ == "__main__":
    main()
