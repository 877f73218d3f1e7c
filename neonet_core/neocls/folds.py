"""Cross-validation folds: stratified by label, grouped by patient, fixed seed; leakage checks.

Only real labelled cases are assigned to folds. Synthetic cases never enter validation; they may
join a training set only when their ``source_case`` is in that training set (see
:func:`check_no_leakage`).
"""

from __future__ import annotations

import numpy as np

from neonet_core.errors import NeoNetError


def patient_labels(cases) -> dict[str, int]:
    """The label of each patient: 1 if any of their cases is PNI+."""
    out: dict[str, int] = {}
    for c in cases:
        out[c.patient_id] = max(out.get(c.patient_id, 0), int(c.label))
    return out


def assign_folds(cases, n_folds: int = 5, seed: int = 0) -> dict[str, int]:
    """case_id -> fold (0..n_folds-1) for the real, labelled cases.

    Stratified by the patient's label, grouped by ``patient_id`` (all cases of a patient share a
    fold): patients of each class are shuffled with ``seed`` and dealt round-robin to the folds,
    continuing the deal where the previous class ended, so fold sizes and class shares differ by at
    most one patient.
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


def split(cases, folds: dict[str, int], k: int) -> tuple[list, list]:
    """(training cases, validation cases) of fold ``k``: real cases only (synthetic ones are added
    per fold after generation, from that fold's training cases)."""
    train = [c for c in cases if not c.synthetic and folds[c.case_id] != k]
    val = [c for c in cases if not c.synthetic and folds[c.case_id] == k]
    return train, val


def inner_split(cases, val_fraction: float, seed: int) -> tuple[list, list]:
    """Patients of a training set split into (inner training, inner validation), stratified by the
    patient label; ``round(val_fraction * patients)`` of each class held out (at least one per class
    when val_fraction > 0 and the class has >= 2 patients)."""
    if val_fraction <= 0:
        return list(cases), []
    labels = patient_labels(cases)
    rng = np.random.default_rng([seed, 2003])
    held = set()
    for label in (0, 1):
        patients = sorted(p for p, v in labels.items() if v == label)
        n = int(round(val_fraction * len(patients)))
        if len(patients) >= 2:
            n = min(max(n, 1), len(patients) - 1)
        else:
            n = 0
        held |= {patients[i] for i in rng.permutation(len(patients))[:n]}
    return [c for c in cases if c.patient_id not in held], [c for c in cases if c.patient_id in held]


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


__all__ = ["assign_folds", "split", "inner_split", "check_no_leakage", "patient_labels"]
