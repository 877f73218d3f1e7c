"""Cross-validation folds (stratified, grouped, leakage-free) and a small end-to-end cv run."""

import json
from pathlib import Path

import numpy as np
import pytest

from neonet_core.errors import NeoNetError
from neonet_core.manifest import Case
from neonet_core.neocls import folds as F
from neonet_core.neocls.cv import parse_models


def _cohort(n_patients=30, positives=11, seed=0):
    """Cases of patients with 1-3 cases each; a patient's cases share its label."""
    rng = np.random.default_rng(seed)
    cases = []
    for p in range(n_patients):
        label = int(p < positives)
        for s in range(int(rng.integers(1, 4))):
            cases.append(Case(f"p{p}_s{s}", Path(f"p{p}_{s}.nii.gz"), None, None, label, f"p{p}"))
    return cases


def test_folds_are_stratified_grouped_and_deterministic():
    cases = _cohort()
    folds = F.assign_folds(cases, 5, seed=3)
    assert folds == F.assign_folds(cases, 5, seed=3)
    assert folds != F.assign_folds(cases, 5, seed=4)
    assert set(folds.values()) == set(range(5)) and set(folds) == {c.case_id for c in cases}
    # grouped: every case of a patient in the same fold
    by_patient = {}
    for c in cases:
        by_patient.setdefault(c.patient_id, set()).add(folds[c.case_id])
    assert all(len(v) == 1 for v in by_patient.values())
    # stratified: each fold holds 2 or 3 of the 11 positive patients and 3 or 4 of the 19 negative ones
    for k in range(5):
        pos = {c.patient_id for c in cases if folds[c.case_id] == k and c.label == 1}
        neg = {c.patient_id for c in cases if folds[c.case_id] == k and c.label == 0}
        assert len(pos) in (2, 3) and len(neg) in (3, 4)


def test_splits_never_leak():
    cases = _cohort(seed=1)
    folds = F.assign_folds(cases, 5, seed=0)
    seen_val = []
    for k in range(5):
        train, val = F.split(cases, folds, k)
        F.check_no_leakage(train, val)
        assert not {c.patient_id for c in train} & {c.patient_id for c in val}
        inner_train, inner_val = F.inner_split(train, 0.2, seed=k)
        F.check_no_leakage(inner_train, inner_val)
        assert {c.label for c in inner_val} == {0, 1}
        assert not {c.case_id for c in inner_train + inner_val} & {c.case_id for c in val}
        seen_val += [c.case_id for c in val]
        # synthetic cases made from inner-training sources pass; from a validation case they do not
        src = next(c for c in inner_train if c.label == 1)
        good = Case("syn0", Path("s.nii.gz"), None, None, 1, src.patient_id, True, src.case_id)
        F.check_no_leakage(inner_train + [good], val, [good])
        bad = Case("syn1", Path("s.nii.gz"), None, None, 1, val[0].patient_id, True, val[0].case_id)
        with pytest.raises(NeoNetError, match="leakage"):
            F.check_no_leakage(inner_train + [bad], val, [bad])
        with pytest.raises(NeoNetError, match="leakage"):
            F.check_no_leakage(inner_train, val + [good])
        with pytest.raises(NeoNetError, match="leakage"):
            F.check_no_leakage(train, val + train[:1])
    assert sorted(seen_val) == sorted(c.case_id for c in cases)  # every case validated exactly once


def test_fold_errors_are_clear():
    with pytest.raises(NeoNetError, match="at least 5 patients of each class"):
        F.assign_folds(_cohort(10, 3), 5)
    unlabelled = [Case("a", Path("a"), None, None, None, "a")]
    with pytest.raises(NeoNetError, match="needs a label"):
        F.assign_folds(unlabelled, 2)


def test_model_specs():
    specs = parse_models(["pattennet", "pattennet:no-neogen", "densenet121:no-neogen", "resnet18"], neogen=True)
    assert [s.name for s in specs] == ["pattennet+neogen", "pattennet", "densenet121", "resnet18+neogen"]
    assert [s.name for s in parse_models(["pattennet"], neogen=False)] == ["pattennet"]
    with pytest.raises(NeoNetError, match="unknown model"):
        parse_models(["vgg"])
