"""A gallery PNG of real beside synthetic patches, tumour mask outlined, class labelled.

One row per pair; columns: real axial, real coronal, synthetic axial, synthetic coronal. Slices pass
through the tumour's centre of mass (the patch centre when the mask is empty). Rows alternate the
classes (PNI-, PNI+, PNI-, ...) while both have patches left, so a reader sees both. Real and synthetic
patches share one grey scale (the 1st-99th percentile of every patch shown), so a brightness or
contrast difference between them is visible rather than normalised away.

The figure has a fixed pixel size (:func:`gallery_pixel_size`) and is written atomically
(:func:`neonet_core.fileio.atomic_path`): on any failure no partial file is left and an existing
file at ``path`` is untouched. matplotlib's object API with the Agg canvas is used, so the global
pyplot backend is never switched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from neonet_core.fileio import atomic_path

CELL_INCHES = 1.6  # one slice panel
HEADER_INCHES = 0.4  # column titles
DPI = 100
COLUMNS = (("real", "axial"), ("real", "coronal"), ("synthetic", "axial"), ("synthetic", "coronal"))


def gallery_pixel_size(rows: int) -> tuple[int, int]:
    """``(width, height)`` in pixels of a gallery with ``rows`` rows."""
    return int(round(len(COLUMNS) * CELL_INCHES * DPI)), int(round((rows * CELL_INCHES + HEADER_INCHES) * DPI))


def _check(images, masks, labels, what: str):
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"{what} patches: expected (N, D, H, W), got shape {images.shape}")
    if masks is not None:
        masks = np.asarray(masks)
        if masks.shape != images.shape:
            raise ValueError(f"{what} masks {masks.shape} and patches {images.shape} differ in shape")
    labels = np.asarray(labels).ravel().astype(int)
    if len(labels) != len(images):
        raise ValueError(f"{what}: {len(labels)} labels for {len(images)} patches")
    return images, masks, labels


def _interleaved(labels: np.ndarray, n: int) -> list[int]:
    """Up to ``n`` indices, classes alternating (0, 1, 0, ...) while both last, each class in order."""
    queues = {c: [int(i) for i in np.flatnonzero(labels == c)] for c in np.unique(labels)}
    order, c = [], 0
    classes = sorted(queues)
    while len(order) < n and any(queues.values()):
        q = queues[classes[c % len(classes)]]
        if q:
            order.append(q.pop(0))
        c += 1
    return order


def _centre(mask: np.ndarray | None, shape) -> tuple[int, int, int]:
    if mask is not None and np.any(mask):
        return tuple(int(round(v)) for v in np.argwhere(mask != 0).mean(0))
    return tuple(s // 2 for s in shape)


def write_gallery(
    path: str | Path,
    real: np.ndarray,
    real_masks: np.ndarray | None,
    synthetic: np.ndarray,
    synthetic_masks: np.ndarray | None,
    real_labels: Sequence[int],
    synthetic_labels: Sequence[int],
    n: int = 8,
    class_names: Sequence[str] = ("PNI-", "PNI+"),
    title: str | None = None,
) -> Path:
    """Write a PNG gallery of up to ``n`` rows of real vs synthetic patches to ``path``; returns ``path``.

    ``real`` ``(N, D, H, W)``, ``synthetic`` ``(M, D, H, W)``; masks of the same shapes (non-zero =
    tumour; None = no outline); labels 0/1 index ``class_names``. Row ``r`` shows the ``r``-th real and
    the ``r``-th synthetic patch of the row's class (classes alternate; a missing side is left blank).
    Pixel size: :func:`gallery_pixel_size` of the number of rows.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    real, real_masks, real_labels = _check(real, real_masks, real_labels, "real")
    synthetic, synthetic_masks, synthetic_labels = _check(synthetic, synthetic_masks, synthetic_labels, "synthetic")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if len(real) == 0 and len(synthetic) == 0:
        raise ValueError("no patches to show")

    # rows: a class sequence from whichever side has more, then the i-th patch of that class on each side
    pool = real_labels if len(real) >= len(synthetic) else synthetic_labels
    row_classes = [int(pool[i]) for i in _interleaved(pool, n)]
    picked = {"real": {c: [int(i) for i in np.flatnonzero(real_labels == c)] for c in (0, 1)},
              "synthetic": {c: [int(i) for i in np.flatnonzero(synthetic_labels == c)] for c in (0, 1)}}
    rows = []
    for c in row_classes:
        r = picked["real"].get(c, [])
        s = picked["synthetic"].get(c, [])
        rows.append((c, r.pop(0) if r else None, s.pop(0) if s else None))

    shown = [real[i] for _, i, _ in rows if i is not None] + [synthetic[j] for _, _, j in rows if j is not None]
    values = np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in shown])
    vmin, vmax = np.quantile(values, [0.01, 0.99])
    if vmax <= vmin:
        vmax = vmin + 1.0

    width, height = gallery_pixel_size(len(rows))
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    top = 1.0 - HEADER_INCHES / (height / DPI)
    fig.subplots_adjust(left=0.06, right=0.995, bottom=0.005, top=top, wspace=0.04, hspace=0.12)
    axes = fig.subplots(len(rows), len(COLUMNS), squeeze=False)
    for r, (c, i_real, i_syn) in enumerate(rows):
        name = class_names[c] if 0 <= c < len(class_names) else str(c)
        for col, (side, view) in enumerate(COLUMNS):
            ax = axes[r, col]
            ax.set_xticks([]), ax.set_yticks([])
            idx = i_real if side == "real" else i_syn
            if idx is not None:
                vol = (real if side == "real" else synthetic)[idx]
                masks = real_masks if side == "real" else synthetic_masks
                mask = None if masks is None else masks[idx] != 0
                k, j, _ = _centre(mask, vol.shape)
                sl = vol[k] if view == "axial" else vol[:, j]
                ax.imshow(sl, cmap="gray", vmin=vmin, vmax=vmax, origin="lower", interpolation="nearest")
                if mask is not None:
                    msl = mask[k] if view == "axial" else mask[:, j]
                    if msl.any() and not msl.all():
                        ax.contour(msl.astype(float), levels=[0.5], colors="r", linewidths=0.7, origin="lower")
                ax.text(0.02, 0.97, f"{side[0].upper()}{idx}", transform=ax.transAxes, fontsize=6, color="y", va="top")
            else:
                ax.set_facecolor("0.85")
            if r == 0:
                ax.set_title(f"{side} {view}", fontsize=8)
        axes[r, 0].set_ylabel(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=8, y=0.999, va="top")

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")
    return path
