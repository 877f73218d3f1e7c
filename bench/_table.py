"""The one benchmark table format shared by every bench/ script.

``row(figure, value, reference, unit)`` prints one aligned line: the figure, our value, the
reference measured in the same run, and the ratio value / reference. When the environment variable
``NEONET_BENCH_JSON`` names a file, the row is also appended to it as one JSON line
(``{"bench", "figure", "value", "reference", "ratio", "unit", "note"}``); ``bench/run_all.py`` reads
those lines to build the combined table.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

FIGURE_WIDTH = 46


def _fmt(value) -> str:
    if value is None:
        return "-"
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    if value == 0 or 0.01 <= abs(value) < 1e5:
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return f"{value:.3e}"


def ratio(value, reference) -> float | None:
    """value / reference, or None when there is no usable reference."""
    if value is None or reference is None or not float(reference):
        return None
    return float(value) / float(reference)


def header(title: str = "") -> None:
    """Print the column header (and a title line)."""
    if title:
        print(title)
    print(f"  {'figure':<{FIGURE_WIDTH}} {'ours':>10} {'reference':>10} {'ratio':>8}  unit")


def row(figure: str, value, reference=None, unit: str = "", note: str = "", bench: str | None = None) -> dict:
    """Print one table line and, with NEONET_BENCH_JSON set, append it as JSON. Returns the row dict.

    figure: what is measured (say what the reference is in the text or ``note``).
    value / reference: numbers in ``unit``; reference may be None (no baseline for this figure).
    """
    bench = bench or Path(sys.argv[0]).stem
    r = ratio(value, reference)
    record = {"bench": bench, "figure": figure, "value": None if value is None else float(value),
              "reference": None if reference is None else float(reference), "ratio": r, "unit": unit, "note": note}
    line = f"  {figure:<{FIGURE_WIDTH}} {_fmt(value):>10} {_fmt(reference):>10} {_fmt(r):>8}  {unit}"
    print(line + (f"  ({note})" if note else ""), flush=True)
    target = os.environ.get("NEONET_BENCH_JSON")
    if target:
        with open(target, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
    return record


def format_table(records: list[dict]) -> str:
    """The combined table (Markdown) of rows from several benchmarks."""
    lines = ["| bench | figure | ours | reference | ratio | unit |", "| --- | --- | ---: | ---: | ---: | --- |"]
    for rec in records:
        figure = rec["figure"] + (f" ({rec['note']})" if rec.get("note") else "")
        lines.append(f"| {rec['bench']} | {figure} | {_fmt(rec['value'])} | {_fmt(rec['reference'])} | {_fmt(rec['ratio'])} | {rec['unit']} |")
    return "\n".join(lines)
