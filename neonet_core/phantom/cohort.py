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
from typing import Callable

import numpy as np

from neonet_core.errors import InputError
from neonet_core.fileio import publish_folder, write_text_atomic
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


def check_output_dir(out_dir: Path, settings: dict) -> bool:
    """Accept a missing or empty folder (returns False), or a previous phantom output with the same
    ``settings`` (returns True: it is complete, since phantoms are published whole).

    Anything else raises :class:`InputError`: a phantom is never mixed into other files.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(out_dir, "is a file, not a folder; choose a new folder for the phantom")
    if not out_dir.exists() or not any(out_dir.iterdir()):
        return False
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
    if not (out_dir / MANIFEST_NAME).is_file():
        raise InputError(out_dir, f"holds an incomplete phantom (no {MANIFEST_NAME}; left by an older version); "
                                  "delete the folder or choose a new one")
    return True


def publish_cohort(out_dir: str | Path, settings: dict, write: Callable[[Path], None]) -> Path:
    """Publish a phantom folder all-or-nothing and return the path of its ``manifest.csv``.

    ``write(folder)`` fills a private temporary folder beside ``out_dir`` (cases, README, ...); this
    adds ``phantom.json`` (``settings``) and the temporary folder becomes ``out_dir`` with one rename.
    ``out_dir`` holding the same phantom already: returned as is. On any error the temporary folder is
    removed and ``out_dir`` is untouched; two runs into one folder cannot both publish.
    """
    out_dir = Path(out_dir)
    if check_output_dir(out_dir, settings):
        return out_dir / MANIFEST_NAME
    with publish_folder(out_dir) as tmp:  # the one output-publishing mechanism (neonet_core.fileio)
        write(tmp)
        if not (tmp / MANIFEST_NAME).is_file():
            raise RuntimeError(f"phantom writer left no {MANIFEST_NAME} in {tmp}")
        write_text_atomic(tmp / PARAMS_NAME, json.dumps(settings, indent=2) + "\n")
    return out_dir / MANIFEST_NAME


def write_case(out_dir: Path, index: int, cases: int, seed: int, label: int, params: PhantomParams) -> Case:
    """Generate case ``index`` and write its three volumes atomically; returns its manifest row."""
    cid = case_id(index, cases)
    files = {key: out_dir / rel for key, rel in case_files(cid).items()}
    case = generate_case(index, seed, label, params)
    write_volume(case.image, files["image"])
    write_volume(case.tumour, files["tumor_mask"])
    write_volume(case.anatomy, files["anatomy_mask"])
    return Case(cid, files["image"], files["tumor_mask"], files["anatomy_mask"], int(label), cid)


def run_jobs(job: Callable, args: list[tuple], workers: int, stage: str = "phantom", initializer=None, initargs=()) -> list:
    """``[job(*a) for a in args]`` with a progress bar, in ``workers`` processes when > 1 (results in
    the order of ``args``); ``initializer(*initargs)`` prepares each worker process (and this one)."""
    results: list = [None] * len(args)
    with Progress(len(args), stage) as progress:
        if workers <= 1:
            if initializer is not None:
                initializer(*initargs)
            for n, a in enumerate(args):
                results[n] = job(*a)
                progress.update(1)
        else:
            with ProcessPoolExecutor(max_workers=workers, initializer=initializer, initargs=initargs) as pool:
                futures = {pool.submit(job, *a): n for n, a in enumerate(args)}
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    progress.update(1)
    return results


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
    (processes) gives identical files. The folder is published whole (:func:`publish_cohort`); a
    folder holding the same phantom is reused, any other non-empty folder refused.
    """
    params = PhantomParams(tuple(size), tuple(spacing), difficulty)
    labels = cohort_labels(cases, positives, seed)
    settings = _settings(cases, positives, seed, params)

    def write(folder: Path) -> None:
        rows = run_jobs(write_case, [(folder, i, cases, seed, int(labels[i]), params) for i in range(cases)], workers)
        write_text_atomic(folder / README_NAME, readme_text(settings, params))
        write_manifest(rows, folder / MANIFEST_NAME)

    return publish_cohort(out_dir, settings, write)
