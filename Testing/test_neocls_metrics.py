"""NeoCls metrics against scikit-learn and against DeLong computed from its definition."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from neonet_core.neocls.metrics import at_threshold, bootstrap_auc_ci, delong_test, delong_variance, roc_auc, youden_threshold

Y = np.array([0, 0, 1, 1, 0, 1, 0, 1, 1, 0, 0, 1, 0, 0, 1])
PA = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.7, 0.5, 0.9, 0.6, 0.3, 0.45, 0.55, 0.05, 0.5, 0.5])
PB = np.array([0.2, 0.3, 0.3, 0.6, 0.4, 0.5, 0.6, 0.7, 0.2, 0.1, 0.5, 0.3, 0.2, 0.4, 0.9])


def test_auc_matches_sklearn_with_ties():
    assert roc_auc(Y, PA) == pytest.approx(roc_auc_score(Y, PA), abs=1e-12)
    assert roc_auc(Y, PB) == pytest.approx(roc_auc_score(Y, PB), abs=1e-12)
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 2, 200), rng.integers(0, 10, 200) / 10  # many ties
    assert roc_auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert np.isnan(roc_auc([1, 1], [0.2, 0.3]))


def _delong_by_definition(y, pa, pb):
    """DeLong (1988) from psi(x, z) over every positive/negative pair, O(m n)."""
    def comps(p):
        pos, neg = p[y == 1], p[y == 0]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        return psi.mean(), psi.mean(1), psi.mean(0)
    a, v10a, v01a = comps(pa)
    b, v10b, v01b = comps(pb)
    m, n = len(v10a), len(v01a)
    s10, s01 = np.cov([v10a, v10b]), np.cov([v01a, v01b])
    var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / n
    return a - b, np.sqrt(var), s10[0, 0] / m + s01[0, 0] / n


def test_delong_matches_definition_and_known_value():
    diff, se, var_a = _delong_by_definition(Y, PA, PB)
    r = delong_test(Y, PA, PB)
    assert r.auc_a == pytest.approx(roc_auc_score(Y, PA))
    assert r.difference == pytest.approx(diff, abs=1e-12)
    assert r.se == pytest.approx(se, abs=1e-12)
    assert delong_variance(Y, PA) == pytest.approx(var_a, abs=1e-12)
    # known values for these fixed inputs (7 positives x 8 negatives = 56 pairs)
    assert r.auc_a == pytest.approx(51 / 56)
    assert r.auc_b == pytest.approx(39 / 56)
    assert r.z == pytest.approx(diff / se)
    assert r.z == pytest.approx(1.58350, abs=1e-4)
    assert r.p_value == pytest.approx(0.113308, abs=1e-5)
    assert 0.0 < r.p_value < 1.0
    # identical scores: no difference, p = 1
    same = delong_test(Y, PA, PA)
    assert same.difference == 0 and same.p_value == 1.0


def test_bootstrap_ci_brackets_auc():
    lo, hi = bootstrap_auc_ci(Y, PA, n_boot=500, seed=1)
    auc = roc_auc(Y, PA)
    assert lo < auc < hi and 0 <= lo and hi <= 1
    assert bootstrap_auc_ci(Y, PA, n_boot=500, seed=1) == (lo, hi)


def test_youden_matches_roc_curve():
    s = youden_threshold(Y, PA)
    fpr, tpr, thr = roc_curve(Y, PA)
    j = tpr - fpr
    assert s.sensitivity - (1 - s.specificity) == pytest.approx(j.max())
    manual = at_threshold(Y, PA, s.threshold)
    assert manual.accuracy == pytest.approx(np.mean((PA >= s.threshold) == Y))
    assert (manual.sensitivity, manual.specificity) == (s.sensitivity, s.specificity)


def test_each_folds_threshold_comes_from_the_other_folds_out_of_fold_predictions():
    from neonet_core.neocls.report import model_metrics

    def fold(k, threshold, cases):
        return {"fold": k, "auc": roc_auc([y for y, _ in cases], [p for _, p in cases]), "threshold": threshold,
                "cases": [{"case_id": f"{k}-{i}", "label": y, "probability": p} for i, (y, p) in enumerate(cases)]}

    # fold 0 separates at 0.5, fold 1 at 0.2 (another calibration); each fold's inner threshold is useless (0.99)
    folds = [fold(0, 0.99, [(0, 0.1), (0, 0.4), (1, 0.6), (1, 0.9)]), fold(1, 0.99, [(0, 0.05), (0, 0.1), (1, 0.3), (1, 0.35)])]
    m = model_metrics(folds, n_boot=10)
    other = m["at_other_folds_thresholds"]
    assert other["thresholds"] == {0: 0.3, 1: 0.6}  # fold 0's comes from fold 1's predictions and vice versa
    # fold 0 at 0.3: 0.4 / 0.6 / 0.9 positive (one false positive); fold 1 at 0.6: nothing positive
    assert other["sensitivity"] == pytest.approx(2 / 4) and other["specificity"] == pytest.approx(3 / 4)
    assert m["at_fold_thresholds"]["sensitivity"] == 0.0 and m["at_fold_thresholds"]["specificity"] == 1.0
