"""Are synthetic patches (a) indistinguishable from real ones and (b) faithful to their class?

Two figures for ``neonet generate --report`` and the cv report, both pure functions of numpy arrays:

- :func:`detectability`: the cross-validated AUC of a simple real-vs-synthetic classifier.
  0.5 = indistinguishable; target <= 0.70. A high value means "looks synthetic" is a shortcut a
  classifier can learn (and, when all synthetic patches are PNI+, a PNI+ shortcut).
- :func:`class_fidelity`: a classifier trained on REAL patches only scores the synthetic ones; the AUC
  with which it ranks synthetic PNI+ above synthetic PNI-. Target >= 0.70. Its cross-validated AUC on
  the real patches is returned beside it: when the feature model cannot see the class on real patches
  (reference near 0.5) the fidelity figure says nothing.

The classifier: standardised hand features per patch (:func:`patch_features`) -> L2 logistic
regression (class-balanced), k-fold stratified cross-validation (k = min(5, smallest class)),
out-of-fold probabilities pooled into one AUC (:func:`neonet_core.neocls.metrics.roc_auc`).

Hand features of one patch ``(D, H, W)``:

- intensity: mean, SD, 5/25/50/75/95 % quantiles;
- gradient magnitude (central differences): mean, SD, 90 % quantile;
- high-frequency energy (:func:`high_frequency_energy`, mean squared 3D Laplacian), as log10 and
  relative to the gradient energy (a scale-free sharpness), and the median absolute Laplacian (a
  robust noise level). An autoencoder round trip blurs: these separate decoded patches from real ones;
- local variance over 3x3x3 windows: log10 of its mean, its 90 % quantile, its coefficient of variation;
- with tumour masks (non-zero = tumour): tumour and peritumoral-shell (``SHELL`` voxels outside the
  tumour) mean and SD, their contrast, the fraction of shell voxels whose intensity lies within half
  the tumour-shell median gap of the tumour's median (tumour-like tissue leaving the tumour, e.g.
  along nerves), the gradient magnitude on the tumour boundary (edge sharpness) and the tumour's volume fraction.
  An empty mask gives NaN for these, replaced by the training-set mean of the feature.

Both figures take the feature model as one :class:`Probe` (features, regularisation, how many
features to report, bootstrap size). A caller may give it its own ``featurize(images, masks) -> (N, F)``
(for example the NeoGen encoder's spatially averaged features) instead of the hand features.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from neonet_core.neocls.metrics import bootstrap_auc_ci, roc_auc

DETECTABILITY_TARGET = 0.70  # at most
FIDELITY_TARGET = 0.70  # at least
SHELL = 3  # voxels: width of the peritumoral shell
_EPS = 1e-12

INTENSITY_NAMES = ["mean", "sd", "q05", "q25", "q50", "q75", "q95"]
TEXTURE_NAMES = [
    "gradient_mean", "gradient_sd", "gradient_q90",
    "log_hf_energy", "hf_to_gradient_energy", "laplacian_mad",
    "log_local_var_mean", "local_var_q90", "local_var_cv",
]
MASK_NAMES = [
    "tumour_mean", "tumour_sd", "shell_mean", "shell_sd", "tumour_shell_contrast",
    "shell_tumour_like_fraction", "boundary_gradient", "tumour_fraction",
]

Featurize = Callable[[np.ndarray, "np.ndarray | None"], np.ndarray]


# ----------------------------------------------------------------------------- features

def laplacian(x: np.ndarray) -> np.ndarray:
    """Discrete 3D Laplacian (6-neighbour stencil, edges replicated) of a ``(D, H, W)`` array."""
    from scipy import ndimage

    return ndimage.laplace(np.asarray(x, dtype=np.float64), mode="nearest")


def gradient_magnitude(x: np.ndarray) -> np.ndarray:
    """Central-difference gradient magnitude (per voxel) of a ``(D, H, W)`` array."""
    g = np.gradient(np.asarray(x, dtype=np.float64))
    return np.sqrt(sum(c * c for c in g))


def high_frequency_energy(x: np.ndarray) -> float:
    """Mean squared 3D Laplacian of a ``(D, H, W)`` patch: large for sharp edges and fine noise,
    small for a blurred (e.g. autoencoder-decoded) patch."""
    return float(np.mean(laplacian(x) ** 2))


def local_variance(x: np.ndarray, size: int = 3) -> np.ndarray:
    """Variance of ``x`` in ``size``^3 windows centred on each voxel (edges replicated)."""
    from scipy import ndimage

    x = np.asarray(x, dtype=np.float64)
    m = ndimage.uniform_filter(x, size, mode="nearest")
    return np.maximum(ndimage.uniform_filter(x * x, size, mode="nearest") - m * m, 0.0)


def _texture_features(x: np.ndarray) -> list[float]:
    intensity = [x.mean(), x.std(), *np.quantile(x, [0.05, 0.25, 0.5, 0.75, 0.95])]
    grad = gradient_magnitude(x)
    lap = laplacian(x)
    hf = float(np.mean(lap**2))
    lv = local_variance(x)
    texture = [
        grad.mean(), grad.std(), np.quantile(grad, 0.9),
        np.log10(hf + _EPS), hf / (float(np.mean(grad**2)) + _EPS), np.median(np.abs(lap)),
        np.log10(lv.mean() + _EPS), np.quantile(lv, 0.9), lv.std() / (lv.mean() + _EPS),
    ]
    return [float(v) for v in intensity + texture]


def _mask_features(x: np.ndarray, mask: np.ndarray) -> list[float]:
    from scipy import ndimage

    tumour = np.asarray(mask) != 0
    if tumour.shape != x.shape:
        raise ValueError(f"mask shape {tumour.shape} differs from patch shape {x.shape}")
    shell = ndimage.binary_dilation(tumour, iterations=SHELL) & ~tumour
    if not tumour.any() or not shell.any():
        return [float("nan")] * len(MASK_NAMES)
    t, s = x[tumour], x[shell]
    t_med, s_med = np.median(t), np.median(s)
    tumour_like = float(np.mean(np.abs(s - t_med) < 0.5 * abs(t_med - s_med)))  # the tumour-side half-gap band
    boundary = tumour & ~ndimage.binary_erosion(tumour)
    return [
        float(t.mean()), float(t.std()), float(s.mean()), float(s.std()), float(t.mean() - s.mean()),
        tumour_like, float(gradient_magnitude(x)[boundary].mean()), float(tumour.mean()),
    ]


def feature_names(with_masks: bool) -> list[str]:
    """Names of the columns :func:`patch_features` returns."""
    return INTENSITY_NAMES + TEXTURE_NAMES + (MASK_NAMES if with_masks else [])


def patch_features(images: np.ndarray, masks: np.ndarray | None = None) -> np.ndarray:
    """Hand features ``(N, F)`` of patches ``(N, D, H, W)`` (optionally with tumour masks of the same shape).

    Columns as :func:`feature_names` (``with_masks = masks is not None``); see the module docstring.
    """
    images = _patches(images, "images")
    if masks is not None:
        masks = np.asarray(masks)
        if masks.shape != images.shape:
            raise ValueError(f"masks {masks.shape} and images {images.shape} differ in shape")
    rows = []
    for n, x in enumerate(images):
        x = np.asarray(x, dtype=np.float64)
        row = _texture_features(x)
        if masks is not None:
            row += _mask_features(x, masks[n])
        rows.append(row)
    width = len(feature_names(masks is not None))
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), width)


def _patches(a, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 4:
        raise ValueError(f"{what}: expected patches (N, D, H, W), got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number) and a.dtype != bool:
        raise ValueError(f"{what}: expected numbers, got dtype {a.dtype}")
    if a.size and not np.all(np.isfinite(a)):
        raise ValueError(f"{what}: contains NaN or infinite values")
    return a


def _labels(y, n: int, what: str) -> np.ndarray:
    y = np.asarray(y).ravel()
    if len(y) != n:
        raise ValueError(f"{what}: {len(y)} labels for {n} patches")
    if not set(np.unique(y).tolist()) <= {0, 1}:
        raise ValueError(f"{what}: labels must be 0 or 1, got {sorted(set(np.unique(y).tolist()))}")
    return y.astype(int)


# ----------------------------------------------------------------------------- classifier

@dataclass(frozen=True)
class Probe:
    """The feature model both figures fit: ``featurize`` (None = the hand features of
    :func:`patch_features`), an L2 logistic regression of inverse strength ``C``, the ``top`` most
    separating single features reported, ``n_boot`` bootstrap resamples for the AUC's CI."""

    featurize: Featurize | None = None
    C: float = 0.1
    top: int = 5
    n_boot: int = 1000

    def features(self, images, masks, what: str) -> tuple[np.ndarray, list[str]]:
        """Features ``(N, F)`` of patches ``images`` (checked) and their column names."""
        images = _patches(images, what)
        if self.featurize is None:
            return patch_features(images, masks), feature_names(masks is not None)
        f = np.asarray(self.featurize(images, masks), dtype=np.float64)
        if f.ndim != 2 or len(f) != len(images):
            raise ValueError(f"featurize returned shape {f.shape} for {len(images)} {what}")
        return f, [f"feature_{i}" for i in range(f.shape[1])]

    def method(self, n_features: int) -> str:
        """The start of a report's one-line description of the classifier."""
        return (f"logistic regression (C={self.C}, class-balanced) on {n_features} standardised "
                f"{'hand' if self.featurize is None else 'given'} features")


def _check_masks(real_masks, synthetic_masks) -> None:
    if (real_masks is None) != (synthetic_masks is None):
        raise ValueError("give masks for both real and synthetic patches, or for neither")


def _model(C: float):
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(
        SimpleImputer(strategy="mean", keep_empty_features=True),
        StandardScaler(),
        LogisticRegression(C=C, class_weight="balanced", max_iter=5000),
    )


def _cross_validated(x: np.ndarray, y: np.ndarray, seed: int, C: float) -> tuple[np.ndarray, list[float], int]:
    """Out-of-fold P(class 1) and per-fold AUCs; k = min(5, smallest class)."""
    from sklearn.model_selection import StratifiedKFold

    k = int(min(5, np.bincount(y, minlength=2).min()))
    oof = np.empty(len(y), dtype=np.float64)
    fold_aucs = []
    for train, test in StratifiedKFold(k, shuffle=True, random_state=seed).split(x, y):
        model = _model(C).fit(x[train], y[train])
        oof[test] = model.predict_proba(x[test])[:, 1]
        fold_aucs.append(roc_auc(y[test], oof[test]))
    return oof, fold_aucs, k


def _ranked_features(x: np.ndarray, y: np.ndarray, names: Sequence[str], top: int) -> list[dict]:
    """Per-feature AUC (class 1 above class 0), the ``top`` furthest from 0.5 first."""
    out = []
    for j, name in enumerate(names):
        ok = np.isfinite(x[:, j])
        auc = roc_auc(y[ok], x[ok, j]) if ok.any() else float("nan")
        if np.isfinite(auc):
            out.append({"name": name, "auc": auc})
    out.sort(key=lambda d: -abs(d["auc"] - 0.5))
    return out[:top]


def _sd(v: Sequence[float]) -> float:
    v = np.asarray([a for a in v if np.isfinite(a)], dtype=np.float64)
    return float(v.std(ddof=1)) if len(v) >= 2 else float("nan")


# ----------------------------------------------------------------------------- the two figures

def detectability(real: np.ndarray, synthetic: np.ndarray, seed: int = 0, real_masks: np.ndarray | None = None,
                  synthetic_masks: np.ndarray | None = None, probe: Probe = Probe()) -> dict:
    """Cross-validated AUC of a real-vs-synthetic classifier (synthetic = positive class).

    ``real`` ``(N, D, H, W)``, ``synthetic`` ``(M, D, H, W)``; masks optional (both or neither); the
    classifier is ``probe``'s. Returns a dict:

    - ``auc``: pooled out-of-fold AUC (0.5 = indistinguishable; NaN with ``reason`` when a set has < 2 patches);
    - ``auc_sd``: SD of the per-fold AUCs; ``fold_aucs``; ``auc_ci``: stratified bootstrap 95 % CI of ``auc``;
    - ``n_real``, ``n_synthetic``, ``n_folds``, ``n_features``;
    - ``top_features``: ``[{"name", "auc"}]``, the single features that separate most (AUC > 0.5: higher
      in synthetic patches);
    - ``target`` (0.70), ``meets_target`` (``auc <= target``; None when NaN), ``reason`` (None or why NaN),
      ``method`` (one line for a report).
    """
    _check_masks(real_masks, synthetic_masks)
    real, synthetic = _patches(real, "real patches"), _patches(synthetic, "synthetic patches")
    out = {
        "auc": float("nan"), "auc_sd": float("nan"), "auc_ci": (float("nan"), float("nan")), "fold_aucs": [],
        "n_real": len(real), "n_synthetic": len(synthetic), "n_folds": 0, "n_features": 0, "top_features": [],
        "target": DETECTABILITY_TARGET, "meets_target": None, "reason": None, "method": "",
    }
    if len(real) < 2 or len(synthetic) < 2:
        out["reason"] = f"need at least 2 real and 2 synthetic patches, got {len(real)} real and {len(synthetic)} synthetic"
        return out
    fr, names = probe.features(real, real_masks, "real patches")
    fs, _ = probe.features(synthetic, synthetic_masks, "synthetic patches")
    x = np.concatenate([fr, fs])
    y = np.r_[np.zeros(len(fr), int), np.ones(len(fs), int)]
    oof, fold_aucs, k = _cross_validated(x, y, seed, probe.C)
    auc = roc_auc(y, oof)
    out.update(
        auc=auc, auc_sd=_sd(fold_aucs), auc_ci=bootstrap_auc_ci(y, oof, n_boot=probe.n_boot, seed=seed), fold_aucs=fold_aucs,
        n_folds=k, n_features=x.shape[1], top_features=_ranked_features(x, y, names, probe.top),
        meets_target=bool(auc <= DETECTABILITY_TARGET),
        method=f"{probe.method(x.shape[1])}, {k}-fold stratified CV, pooled out-of-fold AUC",
    )
    return out


def class_fidelity(real_images: np.ndarray, real_labels, synthetic_images: np.ndarray, synthetic_labels, seed: int = 0,
                   real_masks: np.ndarray | None = None, synthetic_masks: np.ndarray | None = None,
                   probe: Probe = Probe()) -> dict:
    """AUC with which a classifier trained on real patches only ranks synthetic PNI+ above synthetic PNI-.

    Labels are 0 (PNI-) / 1 (PNI+), one per patch; masks optional (both or neither); the classifier
    is ``probe``'s. Returns a dict:

    - ``auc``: the synthetic-patch AUC (NaN with ``reason`` when the real set lacks 2 of each class or the
      synthetic set lacks one class); ``auc_ci``: its stratified bootstrap 95 % CI;
    - ``real_cv_auc``: the same model's pooled out-of-fold AUC on the real patches (the reference: can the
      feature model see the class at all?), ``real_cv_auc_sd`` (SD over folds), ``n_folds``;
    - ``n_real_pos``, ``n_real_neg``, ``n_synthetic_pos``, ``n_synthetic_neg``, ``n_features``;
    - ``synthetic_mean_p``: ``{0: mean P(PNI+) of synthetic PNI-, 1: of synthetic PNI+}``;
    - ``top_features``: the single features separating the classes most on REAL patches;
    - ``target`` (0.70), ``meets_target`` (``auc >= target``; None when NaN), ``reason``, ``method``,
      ``note`` (set when the reference is too low for the figure to mean much).
    """
    _check_masks(real_masks, synthetic_masks)
    real_images = _patches(real_images, "real patches")
    synthetic_images = _patches(synthetic_images, "synthetic patches")
    yr = _labels(real_labels, len(real_images), "real labels")
    ys = _labels(synthetic_labels, len(synthetic_images), "synthetic labels")
    nr, ns = np.bincount(yr, minlength=2), np.bincount(ys, minlength=2)
    nan = float("nan")
    out = {
        "auc": nan, "auc_ci": (nan, nan), "real_cv_auc": nan, "real_cv_auc_sd": nan, "n_folds": 0,
        "n_real_pos": int(nr[1]), "n_real_neg": int(nr[0]), "n_synthetic_pos": int(ns[1]), "n_synthetic_neg": int(ns[0]),
        "n_features": 0, "synthetic_mean_p": {0: nan, 1: nan}, "top_features": [],
        "target": FIDELITY_TARGET, "meets_target": None, "reason": None, "method": "", "note": None,
    }
    if nr.min() < 2:
        out["reason"] = f"need at least 2 real patches of each class, got {int(nr[0])} PNI- and {int(nr[1])} PNI+"
        return out
    fr, names = probe.features(real_images, real_masks, "real patches")
    oof, fold_aucs, k = _cross_validated(fr, yr, seed, probe.C)
    real_cv = roc_auc(yr, oof)
    out.update(real_cv_auc=real_cv, real_cv_auc_sd=_sd(fold_aucs), n_folds=k, n_features=fr.shape[1],
               top_features=_ranked_features(fr, yr, names, probe.top))
    out["method"] = (f"{probe.method(fr.shape[1])}, trained on all real patches, scoring the "
                     f"synthetic ones; reference: its {k}-fold stratified CV AUC on the real patches")
    if real_cv < 0.6:
        out["note"] = f"the feature model barely sees the class on real patches (CV AUC {real_cv:.2f}); the fidelity AUC says little"
    if len(synthetic_images) == 0:
        out["reason"] = "no synthetic patches"
        return out
    fs, _ = probe.features(synthetic_images, synthetic_masks, "synthetic patches")
    p = _model(probe.C).fit(fr, yr).predict_proba(fs)[:, 1]
    out["synthetic_mean_p"] = {c: (float(p[ys == c].mean()) if ns[c] else nan) for c in (0, 1)}
    if ns.min() < 1:
        out["reason"] = f"synthetic patches of one class only ({int(ns[0])} PNI-, {int(ns[1])} PNI+): no ranking to score"
        return out
    auc = roc_auc(ys, p)
    out.update(auc=auc, auc_ci=bootstrap_auc_ci(ys, p, n_boot=probe.n_boot, seed=seed), meets_target=bool(auc >= FIDELITY_TARGET))
    return out


def summary_lines(det: dict | None = None, fid: dict | None = None) -> list[str]:
    """Markdown table rows (``| measure | value | target | note |``) for a report; pass either or both dicts."""

    def f(v):
        return "n/a" if v is None or not np.isfinite(v) else f"{v:.3f}"

    def met(v):
        return "n/a" if v is None else ("met" if v else "NOT met")

    lines = ["| measure | value | target | details |", "| --- | --- | --- | --- |"]
    if det is not None:
        lo, hi = det["auc_ci"]
        top = ", ".join(f"{t['name']} {t['auc']:.2f}" for t in det["top_features"][:3])
        details = det["reason"] or f"{det['n_real']} real vs {det['n_synthetic']} synthetic; CI [{f(lo)}, {f(hi)}], fold SD {f(det['auc_sd'])}; most separating: {top}"
        lines.append(f"| detectability, AUC real vs synthetic | {f(det['auc'])} | <= {det['target']:.2f} ({met(det['meets_target'])}) | {details} |")
    if fid is not None:
        lo, hi = fid["auc_ci"]
        details = fid["reason"] or (f"{fid['n_synthetic_pos']} PNI+ / {fid['n_synthetic_neg']} PNI- synthetic; CI [{f(lo)}, {f(hi)}]")
        details += f"; reference CV AUC on real {f(fid['real_cv_auc'])}" + (f"; {fid['note']}" if fid["note"] else "")
        lines.append(f"| class fidelity, AUC synthetic PNI+ vs PNI- | {f(fid['auc'])} | >= {fid['target']:.2f} ({met(fid['meets_target'])}) | {details} |")
    return lines
