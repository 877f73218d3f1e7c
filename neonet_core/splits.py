"""The one patient splitter: cross-validation folds and the validation hold-out of a training run.

Every split is by patient (all cases of a patient stay together) and stratified by the patient's
label (1 if any of their cases is PNI+; unlabelled patients form their own stratum), drawn from a
seeded permutation. Every stage of one run (NeoSeg, the NeoGen autoencoder / LDM / ControlNet and
the classifier) validates on the same held-out patients: a run's hold-out is saved as
``splits.json`` in its bundle (or cv fold) folder and reused by every later stage on that cohort.

Only real cases are split. Synthetic cases never enter validation; they may join a training set
only when their ``source_case`` is in it (:func:`check_no_leakage`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from neonet_core.errors import NeoNetError
from neonet_core.fileio import write_text_atomic

SPLITS_FILE = "splits.json"  # {"holdouts": {cohort_key: {"val_patients", "fraction", "seed"}}}


def patient_labels(cases) -> dict[str, int]:
    """The label of each patient: 1 if any of their cases is PNI+, -1 if none is labelled."""
    out: dict[str, int] = {}
    for c in cases:
        label = -1 if c.label is None else int(c.label)
        out[c.patient_id] = max(out.get(c.patient_id, -1), label)
    return out


def assign_folds(cases, n_folds: int = 5, seed: int = 0) -> dict[str, int]:
    """case_id -> fold (0..n_folds-1) for the real, labelled cases.

    Patients of each class are shuffled with ``seed`` and dealt round-robin to the folds, the deal
    continuing where the previous class ended, so fold sizes and class shares differ by at most one.
    """
    real = [c for c in cases if not c.synthetic]
    if any(c.label is None for c in real):
        missing = [c.case_id for c in real if c.label is None][:5]
        raise NeoNetError(f"cross-validation needs a label for every case; unlabelled: {', '.join(missing)}")
    labels = patient_labels(real)
    counts = [sum(1 for v in labels.values() if v == k) for k in (0, 1)]
    if n_folds < 2:
        raise NeoNetError(f"need at least 2 folds, got {n_folds}")
    if min(counts) < n_folds:
        raise NeoNetError(
            f"{n_folds} stratified folds need at least {n_folds} patients of each class; "
            f"the manifest has {counts[0]} PNI- and {counts[1]} PNI+ patients"
        )
    rng = np.random.default_rng([seed, 1009])
    patient_fold: dict[str, int] = {}
    slot = 0
    for label in (1, 0):  # minority class first, then continue the deal
        patients = sorted(p for p, v in labels.items() if v == label)
        for i in rng.permutation(len(patients)):
            patient_fold[patients[i]] = slot % n_folds
            slot += 1
    return {c.case_id: patient_fold[c.patient_id] for c in real}


def fold_split(cases, folds: dict[str, int], k: int) -> tuple[list, list]:
    """(training cases, validation cases) of fold ``k``: real cases only."""
    train = [c for c in cases if not c.synthetic and folds[c.case_id] != k]
    val = [c for c in cases if not c.synthetic and folds[c.case_id] == k]
    return train, val


def held_out_patients(cases, fraction: float, seed: int) -> list[str]:
    """The patients held out for validation: ``round(fraction * n)`` of each label stratum (at least
    one when ``fraction`` > 0 and the stratum has >= 2 patients, never all of them)."""
    if fraction <= 0:
        return []
    labels = patient_labels([c for c in cases if not c.synthetic])
    rng = np.random.default_rng([seed, 2003])
    held: list[str] = []
    for label in (-1, 0, 1):
        patients = sorted(p for p, v in labels.items() if v == label)
        n = int(round(fraction * len(patients)))
        n = min(max(n, 1), len(patients) - 1) if len(patients) >= 2 else 0
        held += sorted(patients[i] for i in rng.permutation(len(patients))[:n])
    return held


@dataclass(frozen=True)
class HoldOut:
    """A run's validation hold-out: which patients validate, and how they were drawn."""

    val_patients: tuple[str, ...]
    fraction: float
    seed: int

    def apply(self, cases) -> tuple[list, list]:
        """(training, validation) real cases."""
        val = set(self.val_patients)
        real = [c for c in cases if not c.synthetic]
        return [c for c in real if c.patient_id not in val], [c for c in real if c.patient_id in val]


def cohort_key(cases) -> str:
    """A fingerprint of the patients of ``cases`` (which cohort a saved hold-out belongs to)."""
    patients = sorted({c.patient_id for c in cases if not c.synthetic})
    return hashlib.sha256(json.dumps(patients).encode()).hexdigest()[:16]


def hold_out(cases, fraction: float, seed: int, folder=None) -> HoldOut:
    """The hold-out of a run over ``cases``. With ``folder`` it is read from (or added to) the
    folder's ``splits.json``, keyed by the cohort's patients: every stage trained into that folder
    on the same cohort validates on the same patients, whatever fraction or seed it is given later."""
    made = HoldOut(tuple(held_out_patients(cases, fraction, seed)), float(fraction), int(seed))
    if folder is None:
        return made
    path = Path(folder) / SPLITS_FILE
    key = cohort_key(cases)
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))["holdouts"] if path.exists() else {}
        if key in saved:
            entry = saved[key]
            return HoldOut(tuple(str(p) for p in entry["val_patients"]), float(entry["fraction"]), int(entry["seed"]))
    except (ValueError, KeyError, TypeError) as err:
        raise NeoNetError(f"{path}: not a valid splits file ({err})") from None
    saved[key] = {**asdict(made), "val_patients": list(made.val_patients)}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps({"holdouts": saved}, indent=2, sort_keys=True) + "\n")
    return made


def check_no_leakage(train_cases, val_cases, synthetic_cases=()) -> None:
    """Raise NeoNetError if validation and training share a case or a patient, if a synthetic case
    is in validation, or if a synthetic case was generated from a case outside the training set."""
    train_ids = {c.case_id for c in train_cases}
    val_ids = {c.case_id for c in val_cases}
    if train_ids & val_ids:
        raise NeoNetError(f"leakage: cases in both training and validation: {sorted(train_ids & val_ids)[:5]}")
    shared = {c.patient_id for c in train_cases} & {c.patient_id for c in val_cases}
    if shared:
        raise NeoNetError(f"leakage: patients in both training and validation: {sorted(shared)[:5]}")
    if any(c.synthetic for c in val_cases):
        raise NeoNetError("leakage: a synthetic case is in the validation set")
    real_train = {c.case_id for c in train_cases if not c.synthetic}
    for c in synthetic_cases:
        if c.source_case not in real_train:
            raise NeoNetError(f"leakage: synthetic case {c.case_id} comes from {c.source_case}, which is not in the training set")


__all__ = ["assign_folds", "fold_split", "held_out_patients", "hold_out", "HoldOut", "cohort_key", "check_no_leakage", "patient_labels", "SPLITS_FILE"]
