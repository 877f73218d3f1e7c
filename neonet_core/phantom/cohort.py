"""A phantom cohort on disk: NIfTI volumes, ``manifest.csv``, ``README.md`` and ``phantom.json``.

Layout of ``out_dir``::

    manifest.csv                      case_id,image,tumor_mask,anatomy_mask,label,patient_id
    README.md                         what the phantom is and the PNI rule
    phantom.json                      the parameters (a rerun with the same ones may reuse the folder)
    cases/case_000_image.nii.gz       int16 hepatobiliary-phase-like T1
    cases/case_000_tumour.nii.gz      uint8 0/1, main tumour mass only
    cases/case_000_anatomy.nii.gz     uint8 ANATOMY_LABELS (1 liver, 2 bile duct, 3 vessel, 4 tumour)
"""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from neonet_core.errors import InputError
from neonet_core.fileio import write_text_atomic
from neonet_core.io import write_volume
from neonet_core.manifest import Case, write_manifest
from neonet_core.phantom.case import generate_case
from neonet_core.phantom.params import GENERATOR_VERSION, PhantomParams
from neonet_core.phantom.readme import readme_text
from neonet_core.progress import Progress

MANIFEST_NAME = "manifest.csv"
PARAMS_NAME = "phantom.json"
README_NAME = "README.md"
LABEL_STREAM = 1  # SeedSequence spawn key of the label shuffle (cases use entropy [seed, index])


def cohort_labels(cases: int, positives: int, seed: int) -> np.ndarray:
    """``(cases,)`` int labels with exactly ``positives`` ones, shuffled deterministically by ``seed``."""
    if cases < 1 or not 0 <= positives <= cases:
        raise ValueError(f"need at least 1 case and 0 <= positives <= cases, got {cases} cases, {positives} positives")
    rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(LABEL_STREAM,)))
    labels = np.zeros(cases, dtype=int)
    labels[rng.permutation(cases)[:positives]] = 1
    return labels


def case_id(index: int, cases: int) -> str:
    """``case_000`` style ids, zero-padded to at least 3 digits (more for big cohorts)."""
    return f"case_{index:0{max(3, len(str(cases - 1)))}d}"


def case_files(cid: str) -> dict[str, str]:
    """Paths (relative to the cohort folder) of one case's image and masks."""
    return {
        "image": f"cases/{cid}_image.nii.gz",
        "tumor_mask": f"cases/{cid}_tumour.nii.gz",
        "anatomy_mask": f"cases/{cid}_anatomy.nii.gz",
    }


def _settings(cases: int, positives: int, seed: int, params: PhantomParams) -> dict:
    return {"generator": "neonet phantom", "version": GENERATOR_VERSION, "cases": int(cases),
            "positives": int(positives), "seed": int(seed), **params.to_dict()}


def check_output_dir(out_dir: Path, settings: dict) -> None:
    """Accept a missing or empty folder, or a previous phantom output with the same ``settings``.

    Anything else raises :class:`InputError`: a phantom is never mixed into other files.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(out_dir, "is a file, not a folder; choose a new folder for the phantom")
    if not out_dir.exists() or not any(out_dir.iterdir()):
        return
    params_file = out_dir / PARAMS_NAME
    if not params_file.is_file():
        raise InputError(out_dir, "folder is not empty and is not a phantom output; choose an empty or new folder")
    try:
        previous = json.loads(params_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InputError(params_file, f"cannot read previous phantom parameters ({err}); choose a new folder") from err
    if previous != settings:
        changed = sorted(k for k in set(previous) | set(settings) if previous.get(k) != settings.get(k))
        raise InputError(out_dir, f"holds a phantom made with other parameters ({', '.join(changed)} differ); choose a new folder")


def write_case(out_dir: Path, index: int, cases: int, seed: int, label: int, params: PhantomParams) -> Case:
    """Generate case ``index`` and write its three volumes atomically; returns its manifest row."""
    cid = case_id(index, cases)
    files = {key: out_dir / rel for key, rel in case_files(cid).items()}
    case = generate_case(index, seed, label, params)
    write_volume(case.image, files["image"])
    write_volume(case.tumour, files["tumor_mask"])
    write_volume(case.anatomy, files["anatomy_mask"])
    return Case(cid, files["image"], files["tumor_mask"], files["anatomy_mask"], int(label), cid)


def generate_cohort(
    out_dir: str | Path,
    cases: int = 128,
    positives: int = 44,
    seed: int = 0,
    difficulty: float = 0.5,
    size: tuple[int, int, int] = (128, 128, 40),
    spacing: tuple[float, float, float] = (1.5, 1.5, 3.0),
    workers: int = 1,
) -> Path:
    """Write a phantom cohort into ``out_dir`` and return the path of its ``manifest.csv``.

    Case ``i`` depends only on ``(seed, i, label, size, spacing, difficulty)``, so ``workers`` > 1
    (processes) gives identical files. Refuses a non-empty folder that is not the same phantom.
    """
    out_dir = Path(out_dir)
    params = PhantomParams(tuple(size), tuple(spacing), difficulty)
    labels = cohort_labels(cases, positives, seed)
    settings = _settings(cases, positives, seed, params)
    check_output_dir(out_dir, settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / PARAMS_NAME, json.dumps(settings, indent=2) + "\n")

    rows: list[Case] = []
    with Progress(cases, "phantom") as progress:
        if workers <= 1:
            for i in range(cases):
                rows.append(write_case(out_dir, i, cases, seed, int(labels[i]), params))
                progress.update(1)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(write_case, out_dir, i, cases, seed, int(labels[i]), params) for i in range(cases)]
                for future in as_completed(futures):
                    rows.append(future.result())
                    progress.update(1)
    rows.sort(key=lambda c: c.case_id)
    write_text_atomic(out_dir / README_NAME, readme_text(settings, params))
    return write_manifest(rows, out_dir / MANIFEST_NAME, overwrite=True)
