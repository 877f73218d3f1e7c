"""NeoSeg post-processing: keep the one component most likely to be the tumour, fill its holes, measure it.

All functions take plain arrays ``(D, H, W)``; connectivity is 26 (face, edge and corner neighbours).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

_STRUCTURE = np.ones((3, 3, 3), dtype=bool)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` (bool/uint8) with every enclosed cavity filled (3D), bool."""
    return ndimage.binary_fill_holes(mask != 0)


def keep_tumour_component(probability: np.ndarray, threshold: float = 0.5, min_voxels: int = 1) -> np.ndarray | None:
    """The component of ``probability > threshold`` with the highest summed probability, holes filled.

    Components smaller than ``min_voxels`` are ignored. Returns a bool mask, or None when nothing is left.
    """
    labels, count = ndimage.label(probability > threshold, structure=_STRUCTURE)
    if count == 0:
        return None
    index = np.arange(1, count + 1)
    sizes = ndimage.sum_labels(np.ones_like(labels, dtype=np.float32), labels, index)
    scores = ndimage.sum_labels(probability, labels, index)
    scores = np.where(sizes >= max(1, min_voxels), scores, -np.inf)
    if not np.isfinite(scores.max()):
        return None
    return fill_holes(labels == int(index[int(np.argmax(scores))]))


def volume_ml(mask: np.ndarray, spacing) -> float:
    """Volume of the nonzero voxels in millilitres (``spacing`` in mm)."""
    return float(np.count_nonzero(mask)) * float(np.prod(spacing)) / 1000.0


def min_voxels(min_ml: float, spacing) -> int:
    """How many voxels of ``spacing`` (mm) make ``min_ml`` millilitres (at least 1)."""
    return max(1, int(np.ceil(min_ml * 1000.0 / float(np.prod(spacing)) - 1e-9)))


def bbox(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Inclusive voxel bounds ``(lo, hi)`` in array order (k, j, i) of the nonzero voxels, or None."""
    where = np.argwhere(mask)
    if where.size == 0:
        return None
    return where.min(axis=0), where.max(axis=0)
