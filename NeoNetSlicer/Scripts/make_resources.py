"""Developer tool (not shipped): regenerate NeoNetSlicer's icons and its sample-data phantom case.

    python NeoNetSlicer/Scripts/make_resources.py --icons --sample-data

Icons: ``NeoNetSlicer/Resources/Icons/NeoNetSlicer.png`` (module) and ``Resources/Icons/NeoNetSlicer.png``
(extension), 128x128, drawn with numpy and written with Pillow. Sample data: the phantom case of
:mod:`NeoNetSlicerLib.sampledata` in ``NeoNetSlicer/Resources/SampleData``; paste the printed SHA-256
values into ``SAMPLE_FILES`` there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

MODULE_DIR = Path(__file__).resolve().parents[1]
ROOT = MODULE_DIR.parent
sys.path[:0] = [str(ROOT), str(MODULE_DIR)]


def icon(size: int = 128) -> np.ndarray:
    """An RGBA icon (size, size, 4) uint8: an MRI slice with a tumour, a nerve and the TLCR box."""
    y, x = np.mgrid[0:size, 0:size] / (size - 1.0)
    rgba = np.zeros((size, size, 4), dtype=np.float64)
    corner = 0.16  # rounded dark square
    dx = np.clip(np.maximum(corner - x, x - (1 - corner)), 0, None)
    dy = np.clip(np.maximum(corner - y, y - (1 - corner)), 0, None)
    inside = np.hypot(dx, dy) <= corner
    rgba[inside] = (0.09, 0.12, 0.18, 1.0)
    organ = ((x - 0.5) / 0.38) ** 2 + ((y - 0.52) / 0.3) ** 2 <= 1.0  # liver-like grey ellipse
    shade = 0.55 + 0.25 * (1 - y)
    rgba[organ, :3] = np.stack([shade, shade, shade], -1)[organ]
    nerve = np.abs(y - (0.3 + 0.45 * x + 0.06 * np.sin(9 * x))) < 0.022  # a curved nerve across
    rgba[nerve & inside, :3] = (0.98, 0.85, 0.2)
    tumour = ((x - 0.47) / 0.13) ** 2 + ((y - 0.55) / 0.11) ** 2 <= 1.0
    rgba[tumour, :3] = (0.93, 0.36, 0.18)
    box = (np.abs(x - 0.47) <= 0.24) & (np.abs(y - 0.55) <= 0.24)
    edge = box & ~((np.abs(x - 0.47) <= 0.215) & (np.abs(y - 0.55) <= 0.215))
    rgba[edge, :3] = (0.2, 0.85, 0.95)
    return (np.clip(rgba, 0, 1) * 255).round().astype(np.uint8)


def write_icons() -> list[Path]:
    from PIL import Image

    image = Image.fromarray(icon(), "RGBA")
    paths = [MODULE_DIR / "Resources" / "Icons" / "NeoNetSlicer.png", ROOT / "Resources" / "Icons" / "NeoNetSlicer.png"]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, optimize=True)
    return paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--icons", action="store_true", help="write the module and extension icons")
    parser.add_argument("--sample-data", action="store_true", help="write the phantom sample case and print its SHA-256")
    args = parser.parse_args(argv)
    if not (args.icons or args.sample_data):
        parser.error("choose --icons and/or --sample-data")
    if args.icons:
        for path in write_icons():
            print(f"wrote {path}")
    if args.sample_data:
        from NeoNetSlicerLib.sampledata import make_sample_files, sample_data_dir

        for name, digest in make_sample_files(sample_data_dir()).items():
            print(f"{name}: {digest}  ({(sample_data_dir() / name).stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
