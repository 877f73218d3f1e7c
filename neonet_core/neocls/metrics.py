"""Classification metrics for binary PNI prediction: AUC, bootstrap CI, Youden threshold, DeLong.

``y``: (N,) 0/1 labels; ``p``: (N,) scores (higher = more likely PNI+). AUC is the Mann-Whitney
statistic with ties counted 1/2 (identical to scikit-learn's ``roc_auc_score``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


def _check(y, p) -> tuple[np.ndarray, np.ndarray]:
    y, p = np.asarray(y).astype(int).ravel(), np.asarray(p, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and scores {p.shape} differ in length")
    if not set(np.unique(y)) <= {0, 1}:
        raise ValueError("labels must be 0 or 1")
    return y, p


def roc_auc(y, p) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    y, p = _check(y, p)
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = stats.rankdata(p)  # midranks for ties
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def bootstrap_auc_ci(y, p, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Stratified bootstrap percentile CI of the AUC: positives and negatives resampled separately."""
    y, p = _check(y, p)
    pos, neg = p[y == 1], p[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    labels = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    aucs = np.empty(n_boot)
    for b in range(n_boot):
        aucs[b] = roc_auc(labels, np.r_[rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
    alpha = (1.0 - level) / 2.0
    return float(np.quantile(aucs, alpha)), float(np.quantile(aucs, 1.0 - alpha))


@dataclass
class BinaryStats:
    threshold: float
    accuracy: float
    sensitivity: float
    specificity: float


def at_threshold(y, p, threshold: float) -> BinaryStats:
    """Accuracy, sensitivity, specificity of ``p >= threshold``."""
    y, p = _check(y, p)
    pred = p >= threshold
    tp, tn = int(np.sum(pred & (y == 1))), int(np.sum(~pred & (y == 0)))
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    return BinaryStats(
        float(threshold),
        (tp + tn) / max(1, len(y)),
        tp / n_pos if n_pos else float("nan"),
        tn / n_neg if n_neg else float("nan"),
    )


def youden_threshold(y, p) -> BinaryStats:
    """The threshold maximising sensitivity + specificity - 1 (ties: the highest such threshold),
    and the statistics there. Thresholds are the observed scores (predict positive if p >= t)."""
    y, p = _check(y, p)
    if y.min() == y.max():
        return at_threshold(y, p, 0.5)
    best = None
    for t in np.unique(p)[::-1]:
        s = at_threshold(y, p, t)
        j = s.sensitivity + s.specificity
        if best is None or j > best[0] + 1e-12:
            best = (j, s)
    return best[1]


def _structural_components(y, p) -> tuple[float, np.ndarray, np.ndarray]:
    """DeLong placement values: (auc, V10 (n_pos,), V01 (n_neg,))."""
    pos, neg = p[y == 1], p[y == 0]
    # psi(x, z) = 1 if x > z, 1/2 if equal; computed with ranks: O(N log N) (Sun & Xu 2014).
    all_ranks = stats.rankdata(np.r_[pos, neg])
    pos_ranks, neg_ranks = stats.rankdata(pos), stats.rankdata(neg)
    m, n = len(pos), len(neg)
    v10 = (all_ranks[:m] - pos_ranks) / n  # share of negatives below each positive
    v01 = 1.0 - (all_ranks[m:] - neg_ranks) / m  # share of positives above each negative
    return float(v10.mean()), v10, v01


@dataclass
class DeLongResult:
    auc_a: float
    auc_b: float
    difference: float  # auc_a - auc_b
    se: float
    z: float
    p_value: float  # two-sided


def delong_test(y, p_a, p_b) -> DeLongResult:
    """DeLong et al. (1988) test of two correlated AUCs on the same cases (two-sided)."""
    y, p_a = _check(y, p_a)
    _, p_b = _check(y, p_b)
    if y.min() == y.max():
        raise ValueError("DeLong test needs both classes")
    auc_a, v10a, v01a = _structural_components(y, p_a)
    auc_b, v10b, v01b = _structural_components(y, p_b)
    s10 = np.cov(np.vstack([v10a, v10b]))
    s01 = np.cov(np.vstack([v01a, v01b]))
    m, n = len(v10a), len(v01a)
    cov = s10 / m + s01 / n
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    diff = auc_a - auc_b
    if var <= 0:
        return DeLongResult(auc_a, auc_b, diff, 0.0, 0.0 if diff == 0 else float("inf"), 1.0 if diff == 0 else 0.0)
    se = float(np.sqrt(var))
    z = diff / se
    return DeLongResult(auc_a, auc_b, diff, se, float(z), float(2 * stats.norm.sf(abs(z))))


def delong_variance(y, p) -> float:
    """DeLong variance of one AUC."""
    y, p = _check(y, p)
    _, v10, v01 = _structural_components(y, p)
    return float(np.var(v10, ddof=1) / len(v10) + np.var(v01, ddof=1) / len(v01))


__all__ = ["roc_auc", "bootstrap_auc_ci", "at_threshold", "youden_threshold", "BinaryStats", "delong_test", "DeLongResult", "delong_variance"]
