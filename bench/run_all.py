"""Run every benchmark in bench/ with a small default and print one table.

Each benchmark runs as its own subprocess with small arguments (the whole table takes a few minutes
on 2 CPU cores) and reports its rows through ``bench/_table.py`` (``NEONET_BENCH_JSON``): the figure,
our value, the reference measured in the same run, and the ratio. Benchmarks that print their own
table without rows (bench_predict.py) are included verbatim below the table.

    .venv/bin/python bench/run_all.py [--only NAME ...] [--markdown bench/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

# name: arguments (small defaults). Threads 1 where the script takes it: on a shared 2-core machine
# more torch threads spin against each other and the timings stop meaning anything.
BENCHMARKS = {
    "bench_phantom": ["--cases", "4", "--workers", "2"],
    "bench_large_volume": ["--sizes", "small", "medium", "large"],
    "bench_neoseg": ["--sizes", "phantom", "--threads", "1"],
    "bench_neogen": ["--cases", "8", "--epochs", "1", "--gen-patches", "2", "--ddpm-patches", "1", "--threads", "1"],
    "bench_slicer_logic": ["--repeats", "2"],
    "bench_predict": ["--repeats", "1", "--threads", "1"],
    "bench_augment": ["--repeats", "10", "--threads", "1"],
}


def machine() -> dict:
    """nproc, CPU model, RAM, torch version, date."""
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")),
               platform.processor() or platform.machine())
    mem_kb = next(int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal"))
    import torch

    return {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "nproc": os.cpu_count(), "cpu": cpu,
            "ram_gb": round(mem_kb / 2**20, 1), "torch": torch.__version__, "python": platform.python_version(),
            "load_average": " ".join(f"{v:.1f}" for v in os.getloadavg())}


def run_one(name: str, args: list[str], json_file: Path, timeout: int) -> tuple[int, str, float]:
    env = {**os.environ, "NEONET_BENCH_JSON": str(json_file), "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    try:
        out = subprocess.run([sys.executable, str(BENCH / f"{name}.py"), *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)
        code, text = out.returncode, out.stdout + (f"\n[stderr tail]\n{out.stderr[-1500:]}" if out.returncode else "")
    except subprocess.TimeoutExpired as err:
        code, text = 124, f"timed out after {timeout} s\n{(err.stdout or b'')[-1500:]!r}"
    return code, text, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="run only these benchmarks")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per benchmark (default 900)")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the machine, the table and the raw outputs here")
    args = parser.parse_args()
    from _table import format_table

    info = machine()
    print(f"machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram_gb']} GB RAM, torch {info['torch']}, "
          f"Python {info['python']}; {info['date']}; load average at start {info['load_average']}", flush=True)
    records, raw, status = [], {}, {}
    with tempfile.TemporaryDirectory(prefix="neonet-bench-") as tmp:
        for name in args.only or BENCHMARKS:
            json_file = Path(tmp) / f"{name}.jsonl"
            print(f"running {name} {' '.join(BENCHMARKS[name])} ...", flush=True)
            code, text, seconds = run_one(name, BENCHMARKS[name], json_file, args.timeout)
            rows = [json.loads(ln) for ln in json_file.read_text().splitlines()] if json_file.exists() else []
            records += rows
            raw[name] = text
            status[name] = f"{'ok' if code == 0 else f'FAILED (exit {code})'}, {seconds:.0f} s, {len(rows)} row(s)"
            print(f"  {status[name]}", flush=True)
    table = format_table(records)
    print("\n" + table)
    print("\nratio = ours / reference (both measured in the same run; see each figure for which is better)")
    for name, text in raw.items():
        if not any(r["bench"] == name for r in records) and status[name].startswith("ok"):
            print(f"\n{name} (its own table, verbatim):\n{text.rstrip()}")
    if args.markdown:
        lines = [
            "# NeoNet benchmarks", "",
            f"Produced by `python bench/run_all.py --markdown {args.markdown}` on {info['date']}.", "",
            f"Machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram_gb']} GB RAM, torch {info['torch']} (CPU), "
            f"Python {info['python']}; load average at start {info['load_average']} (the machine was shared).", "",
            "Each figure's reference is measured in the same run; ratio = ours / reference.", "",
            table, "",
            "## Runs", "",
            *[f"- `{name} {' '.join(BENCHMARKS[name])}`: {s}" for name, s in status.items()], "",
            "## Raw outputs", "",
        ]
        for name, text in raw.items():
            lines += [f"### {name}", "", "```", text.rstrip(), "```", ""]
        args.markdown.write_text("\n".join(lines), encoding="utf-8")
        print(f"\nwrote {args.markdown}")
    return 0 if all(s.startswith("ok") for s in status.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
