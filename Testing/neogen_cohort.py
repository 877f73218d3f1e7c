"""A tiny learnable cohort on disk for the NeoGen tests (real NIfTI files through SimpleITK).

Each case: a 40^3 volume at 2 mm (liver ellipsoid, a vessel, a dark spherical tumour; PNI+ cases
have a bright rim around the tumour), its tumour mask and its anatomy labels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neonet_core.io import write_volume
from neonet_core.manifest import Case, write_manifest
from neonet_core.volume import Volume


def make_case(rng: np.random.Generator, label: int, n: int = 40):
    k, j, i = np.mgrid[:n, :n, :n].astype(np.float32)
    c = (n - 1) / 2
    liver = ((k - c) / 16) ** 2 + ((j - c) / 17) ** 2 + ((i - c) / 15) ** 2 <= 1
    vessel = ((j - c - 6) ** 2 + (i - c + 7) ** 2 <= 4) & liver
    centre = c + rng.uniform(-3, 3, 3)
    radius = rng.uniform(3.0, 5.0)
    dist = np.sqrt((k - centre[0]) ** 2 + (j - centre[1]) ** 2 + (i - centre[2]) ** 2)
    tumour = dist <= radius
    image = 0.05 + 0.02 * rng.standard_normal((n, n, n))
    image[liver] += 0.55
    image[vessel] += 0.3
    image[tumour] = 0.25 + 0.02 * rng.standard_normal(int(tumour.sum()))
    if label == 1:
        image[(dist > radius) & (dist <= radius + 1.5)] = 0.95
    anatomy = np.zeros((n, n, n), np.uint8)
    anatomy[liver] = 1
    anatomy[vessel] = 3
    anatomy[tumour] = 4
    return image.astype(np.float32), tumour.astype(np.uint8), anatomy


def make_cohort(folder: str | Path, labels=(0, 0, 0, 0, 0, 1, 1, 1), seed: int = 0) -> Path:
    """Write the cases and ``manifest.csv`` into ``folder``; returns the manifest path."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    cases = []
    for n, label in enumerate(labels):
        image, tumour, anatomy = make_case(rng, label)
        origin = tuple(rng.uniform(-50, 50, 3))
        paths = [folder / f"case{n:02d}_{kind}.nii.gz" for kind in ("image", "tumour", "anatomy")]
        for array, path in zip((image, tumour, anatomy), paths):
            write_volume(Volume(array, (2.0, 2.0, 2.0), origin), path)
        cases.append(Case(f"case{n:02d}", paths[0], paths[1], paths[2], int(label), f"p{n:02d}"))
    return write_manifest(cases, folder / "manifest.csv")
