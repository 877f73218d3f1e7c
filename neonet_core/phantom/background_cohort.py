"""A phantom cohort on real background scans, laid out like the synthetic phantom's.

Layout of ``out_dir`` (published whole, see :func:`~neonet_core.phantom.cohort.publish_cohort`)::

    manifest.csv                      case_id,image,tumor_mask,anatomy_mask,label,patient_id
    README.md                         what the cohort is and the PNI rule
    phantom.json                      the parameters, with each background's path and SHA-256
    background_cases.csv              per case: background, crop (voxel start, size), origin, tumour site
    cases/case_000_image.nii.gz       the cropped background with the inserted structures (its own dtype)
    cases/case_000_tumour.nii.gz      uint8 0/1, main tumour mass only
    cases/case_000_anatomy.nii.gz     uint8 1 host organ, 4 tumour (only for backgrounds with a site mask)

Backgrounds are spread over the cases label by label (each background carries about the same share
of PNI+ and PNI- cases), so the background never tells the label.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

import numpy as np

from neonet_core.fileio import write_text_atomic
from neonet_core.io import write_volume
from neonet_core.manifest import Case, write_manifest
from neonet_core.phantom.background import Background, BackgroundSpec, load_background
from neonet_core.phantom.background_case import generate_background_case
from neonet_core.phantom.cohort import MANIFEST_NAME, README_NAME, case_files, case_id, cohort_labels, publish_cohort, run_jobs
from neonet_core.phantom.params import PhantomParams
from neonet_core.phantom.readme import background_readme_text

BACKGROUND_VERSION = 1  # bump when the same (seed, index, label, background, params) would give different voxels
BACKGROUND_STREAM = 2  # SeedSequence spawn key of the background assignment
CASES_NAME = "background_cases.csv"
CASE_COLUMNS = ("case_id", "label", "background", "crop_i", "crop_j", "crop_k", "size_i", "size_j", "size_k",
                "origin_x", "origin_y", "origin_z", "site_x", "site_y", "site_z", "tumour_ml", "sleeves_ml")

_loaded: list[Background] = []  # the backgrounds of the cohort being written (per process)


def assign_backgrounds(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """``(cases,)`` background index of each case: within each label, the backgrounds in turn (from a
    seeded starting order), so every background carries about the same share of each label."""
    rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(BACKGROUND_STREAM,)))
    out = np.zeros(len(labels), dtype=int)
    for label in (0, 1):
        where = np.flatnonzero(np.asarray(labels) == label)
        out[where] = rng.permutation(count)[np.arange(len(where)) % count]
    return out


def _use_backgrounds(backgrounds: list[Background]) -> None:
    global _loaded
    _loaded = backgrounds


def _write_case(folder: Path, index: int, cases: int, seed: int, label: int, which: int,
                params: PhantomParams, crop: float) -> tuple[Case, list]:
    background = _loaded[which]
    cid = case_id(index, cases)
    files = {key: folder / rel for key, rel in case_files(cid).items()}
    case = generate_background_case(index, seed, label, background, params, crop)
    write_volume(case.image, files["image"])
    write_volume(case.tumour, files["tumor_mask"])
    anatomy = None
    if case.anatomy is not None:
        anatomy = write_volume(case.anatomy, files["anatomy_mask"])
    voxel_ml = float(np.prod(case.image.spacing)) / 1000.0
    sleeves = case.extension | case.decoys
    info = [cid, label, str(background.spec.path), *case.crop_start, *case.image.size_ijk,
            *(f"{v:.4f}" for v in case.image.origin), *(f"{v:.2f}" for v in case.site),
            f"{case.tumour.array.sum() * voxel_ml:.3f}", f"{sleeves.sum() * voxel_ml:.3f}"]
    return Case(cid, files["image"], files["tumor_mask"], anatomy, int(label), cid), info


def generate_background_cohort(
    out_dir: str | Path,
    backgrounds: Sequence[BackgroundSpec | str | Path],
    cases: int = 128,
    positives: int = 44,
    seed: int = 0,
    difficulty: float = 0.5,
    crop: float = 0.06,
    workers: int = 1,
) -> Path:
    """Write a cohort of phantom lesions on real ``backgrounds`` into ``out_dir``; returns its manifest.

    Every background is read and checked first (a bad one raises :class:`InputError` naming it, and
    nothing is written). Case ``i`` depends only on ``(seed, i, label, its background, difficulty,
    crop)``: reruns and any number of ``workers`` give identical files. A folder holding the same
    cohort (same parameters and background contents) is reused; any other non-empty folder refused.
    """
    specs = [b if isinstance(b, BackgroundSpec) else BackgroundSpec(Path(b)) for b in backgrounds]
    if not specs:
        raise ValueError("give at least one background scan")
    if not 0.0 <= crop <= 0.25:
        raise ValueError(f"crop must be between 0 and 0.25, got {crop}")
    params = PhantomParams(difficulty=difficulty)
    labels = cohort_labels(cases, positives, seed)
    loaded = [load_background(spec) for spec in specs]
    settings = {"generator": "neonet phantom --background", "version": BACKGROUND_VERSION, "cases": int(cases),
                "positives": int(positives), "seed": int(seed), "difficulty": params.difficulty, "crop": float(crop),
                "backgrounds": [spec.describe() for spec in specs]}
    which = assign_backgrounds(labels, len(specs), seed)

    def write(folder: Path) -> None:
        jobs = [(folder, i, cases, seed, int(labels[i]), int(which[i]), params, crop) for i in range(cases)]
        results = run_jobs(_write_case, jobs, workers, initializer=_use_backgrounds, initargs=(loaded,))
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CASE_COLUMNS)
        writer.writerows(info for _, info in results)
        write_text_atomic(folder / CASES_NAME, buffer.getvalue())
        write_text_atomic(folder / README_NAME, background_readme_text(settings, params, np.bincount(which, minlength=len(specs))))
        write_manifest([row for row, _ in results], folder / MANIFEST_NAME)

    try:
        return publish_cohort(out_dir, settings, write)
    finally:
        _use_backgrounds([])
