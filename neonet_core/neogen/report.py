"""The NeoGen quality report (Markdown + PNG), written by ``neonet generate --report``.

For up to ``max_cases`` real cases per class, ``per_mask`` synthetic patches are generated with the
case's own masks and label, then:

- Gallery: axial / coronal / sagittal mid-slices (through the tumour centre) of the real patch beside
  a synthetic one made from the same masks, tumour contour overlaid.
- Mask adherence: Dice between the conditioning tumour mask and the tumour *found* in the patch.
  Method: inside the conditioning tumour mask dilated by ``DILATE`` voxels, Otsu's threshold splits
  the intensities; the tumour is the side (below or above) on which the real patch's tumour lies
  (its mean vs its surroundings' mean), largest 26-connected component. The same method on the real
  patch gives the method's own ceiling.
- Diversity: mean pairwise MS-SSIM (MONAI, 3D, kernel 3, 4 scales) among the samples of one mask;
  lower = more diverse. Reference: MS-SSIM between different real patches of the same class.
- Realism: Frechet distance between real and synthetic patches on features of OUR OWN autoencoder
  encoder (:func:`encode_features`, spatially averaged); no downloaded network. Reference: the same
  distance between two halves of the real patches.
- Class fidelity: logistic regression on those encoder features trained on all real patches scores
  the synthetic patches; AUC against the class each was generated for. Reference: the
  cross-validated AUC of the same classifier on real patches.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from neonet_core.fileio import atomic_path, write_text_atomic
from neonet_core.metrics import dice

DILATE = 3
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363)


def found_tumour(image: np.ndarray, tumour: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """The tumour found in ``image`` near the conditioning mask ``tumour`` (see the module docstring)."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    tumour = tumour != 0
    region = ndimage.binary_dilation(tumour, iterations=DILATE)
    ref = image if reference is None else reference
    dark = ref[tumour].mean() < ref[region & ~tumour].mean() if (region & ~tumour).any() else True
    values = image[region]
    if values.max() - values.min() < 1e-6:
        return np.zeros_like(tumour)
    t = threshold_otsu(values)
    found = region & ((image < t) if dark else (image > t))
    labels, n = ndimage.label(found, structure=np.ones((3, 3, 3)))
    if n == 0:
        return found
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (int(np.argmax(sizes)) + 1)


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM of two (D, H, W) patches in [0, 1]."""
    from monai.metrics import MultiScaleSSIMMetric

    metric = MultiScaleSSIMMetric(spatial_dims=3, data_range=1.0, kernel_size=3, weights=MS_SSIM_WEIGHTS)
    return float(metric(torch.from_numpy(a)[None, None].float(), torch.from_numpy(b)[None, None].float()).mean())


@torch.no_grad()
def encoder_features(ae, patches: np.ndarray, device="cpu") -> np.ndarray:
    """Spatially averaged deepest encoder features (N, C) of patches (N, D, H, W)."""
    from neonet_core.neogen.autoencoder import encode_features

    x = torch.from_numpy(np.asarray(patches, dtype=np.float32))[:, None].to(device)
    return np.concatenate([encode_features(ae, x[i : i + 8]).float().mean((2, 3, 4)).cpu().numpy() for i in range(0, len(x), 8)])


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to feature sets a (N, C) and b (M, C)."""
    from scipy import linalg

    mu_a, mu_b = a.mean(0), b.mean(0)
    eps = 1e-6 * np.eye(a.shape[1])
    cov_a = np.atleast_2d(np.cov(a, rowvar=False)) + eps
    cov_b = np.atleast_2d(np.cov(b, rowvar=False)) + eps
    covmean = linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2.0 * covmean))


def _gallery(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 6, figsize=(12, 2.1 * len(rows)), squeeze=False)
    for r, (title, real, synthetic, tumour) in enumerate(rows):
        k, j, i = (int(round(v)) for v in np.argwhere(tumour).mean(0)) if tumour.any() else (s // 2 for s in tumour.shape)
        for c, (name, vol) in enumerate((("real", real), ("synthetic", synthetic))):
            for v, (view, sl, msk) in enumerate((("axial", vol[k], tumour[k]), ("coronal", vol[:, j], tumour[:, j]), ("sagittal", vol[:, :, i], tumour[:, :, i]))):
                ax = axes[r, 3 * c + v]
                ax.imshow(sl, cmap="gray", vmin=0, vmax=1, origin="lower")
                if msk.any():
                    ax.contour(msk, levels=[0.5], colors="r", linewidths=0.6, origin="lower")
                ax.set_xticks([]), ax.set_yticks([])
                if r == 0:
                    ax.set_title(f"{name} {view}", fontsize=8)
        axes[r, 0].set_ylabel(title, fontsize=7)
    _save_png(fig, path)


def _hist(values: dict[str, list[float]], path: Path, xlabel: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    for name, v in values.items():
        if v:
            ax.hist(v, bins=10, range=(0, 1), alpha=0.6, label=name)
    ax.set_xlabel(xlabel), ax.set_ylabel("patches"), ax.legend(fontsize=8)
    _save_png(fig, path)


def _fmt(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.3f}"


def write_report(models, cases, synthetic=(), out_dir="report", seed: int = 0, steps: int | None = None,
                 max_cases: int = 4, per_mask: int = 3) -> Path:
    """Evaluate ``models`` (NeoGenModels) on the real labelled ``cases``; write ``report.md`` + PNGs.

    ``synthetic``: the cases just written (listed in the report). Returns the Markdown path.
    """
    from neonet_core.neogen.fidelity import class_fidelity, detectability, summary_lines
    from neonet_core.neogen.generate import generate_patches
    from neonet_core.patches import extract_patches

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = [r for r in extract_patches([c for c in cases if c.label is not None], models.preprocess).items() if r.label in (0, 1)]
    rng = np.random.default_rng([seed, 2])
    chosen = []
    for label in (0, 1):
        of_class = [r for r in records if r.label == label]
        chosen += [of_class[i] for i in sorted(rng.permutation(len(of_class))[:max_cases])]
    samples = {}
    for label in (0, 1):
        group = [r for r in chosen if r.label == label]
        if group:
            masks = [(r.tumour, r.anatomy) for r in group for _ in range(per_mask)]
            out = generate_patches(models, masks, label, seed, steps)
            for n, r in enumerate(group):
                samples[r.case_id] = out[n * per_mask : (n + 1) * per_mask]

    adherence, ceiling, diversity = [], [], []
    for r in chosen:
        ceiling.append(dice(found_tumour(r.image, r.tumour), r.tumour))
        adherence += [dice(found_tumour(s, r.tumour, reference=r.image), r.tumour) for s in samples[r.case_id]]
        s = samples[r.case_id]
        diversity += [ms_ssim(s[a], s[b]) for a in range(len(s)) for b in range(a + 1, len(s))]
    real_pairs = []
    for label in (0, 1):
        group = [r for r in chosen if r.label == label]
        real_pairs += [ms_ssim(group[a].image, group[b].image) for a in range(len(group)) for b in range(a + 1, len(group))]

    real_images = np.stack([r.image for r in records])
    real_y = np.array([r.label for r in records])
    syn_images = np.concatenate([samples[r.case_id] for r in chosen])
    syn_y = np.concatenate([[r.label] * len(samples[r.case_id]) for r in chosen])
    real_f = encoder_features(models.ae, real_images, models.device)
    syn_f = encoder_features(models.ae, syn_images, models.device)
    fd = frechet_distance(real_f, syn_f)
    half = np.random.default_rng([seed, 3]).permutation(len(real_f))
    fd_ref = frechet_distance(real_f[half[: len(half) // 2]], real_f[half[len(half) // 2 :]]) if len(real_f) >= 4 else None
    real_masks = np.stack([r.tumour for r in records])
    syn_masks = np.concatenate([[r.tumour] * len(samples[r.case_id]) for r in chosen])
    fid = class_fidelity(real_images, real_y, syn_images, syn_y, seed, real_masks=real_masks, synthetic_masks=syn_masks)
    same = [np.flatnonzero(real_y == y) for y in syn_y]  # real patches of the synthetic patches' classes
    det = detectability(real_images[np.unique(np.concatenate(same))], syn_images, seed,
                        real_masks=real_masks[np.unique(np.concatenate(same))], synthetic_masks=syn_masks)

    rows = [(f"{r.case_id} (label {r.label})", r.image, samples[r.case_id][0], r.tumour) for r in chosen[:6]]
    _gallery(rows, out_dir / "gallery.png")
    _hist({"synthetic": adherence, "real (method ceiling)": ceiling}, out_dir / "adherence.png", "Dice(conditioning tumour, found tumour)")
    _hist({"synthetic, same mask": diversity, "real, different cases": real_pairs}, out_dir / "diversity.png", "pairwise MS-SSIM")

    mean = lambda v: float(np.mean(v)) if len(v) else None  # noqa: E731
    lines = [
        "# NeoGen quality report",
        "",
        f"Real labelled cases: {len(records)} ({int((real_y == 0).sum())} PNI-, {int((real_y == 1).sum())} PNI+). "
        f"Evaluated: {len(chosen)} real cases x {per_mask} synthetic samples each (generated with the case's own masks and label; "
        f"seed {seed}, {steps or models.ldm_cfg.sampling_steps} {models.ldm_cfg.scheduler} steps). "
        f"Synthetic cases written with this report: {len(synthetic)}.",
        "",
        "| measure | synthetic | reference | how |",
        "| --- | --- | --- | --- |",
        f"| mask adherence, mean Dice | {_fmt(mean(adherence))} | {_fmt(mean(ceiling))} (same method on the real patch) | "
        f"Otsu threshold inside the tumour mask dilated by {DILATE} voxels; tumour side from the real patch; largest component |",
        f"| diversity, mean pairwise MS-SSIM (lower = more diverse) | {_fmt(mean(diversity))} | {_fmt(mean(real_pairs))} (different real cases, same class) | "
        "MONAI MultiScaleSSIM, 3D, kernel 3, 4 scales |",
        f"| realism, Frechet distance | {_fmt(fd)} | {_fmt(fd_ref)} (two halves of the real patches) | "
        "on spatially averaged features of our own NeoGen autoencoder encoder (no downloaded network) |",
        "",
        "Is NeoGen useful for the right reason? (:mod:`neonet_core.neogen.fidelity`: hand texture and tumour-shell "
        "features, logistic regression; detectability compares real and synthetic patches of the same classes)",
        "",
        *summary_lines(det, fid),
        "",
        "![gallery: real (left) and synthetic (right) mid-slices through the tumour, same masks](gallery.png)",
        "",
        "![mask adherence](adherence.png) ![diversity](diversity.png)",
        "",
    ]
    path = out_dir / "report.md"
    write_text_atomic(path, "\n".join(lines))
    return path


def _save_png(fig, path: Path) -> None:
    """Lay out, write atomically (90 dpi) and close a matplotlib figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
