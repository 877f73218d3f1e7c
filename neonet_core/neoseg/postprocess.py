"""NeoSeg post-processing: keep the one component most likely to be the tumour, fill its holes, measure it.

All functions take plain arrays ``(D, H, W)``; connectivity is 26 (face, edge and corner neighbours).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

_STRUCTURE = np.ones((3, 3, 3), dtype=bool)
# A NeoSeg tumour beyond any of these is not a tumour (the largest cholangiocarcinomas are ~15 cm across).
MAX_TUMOUR_ML = 2000.0
MAX_EXTENT_MM = 250.0
MAX_BODY_FRACTION = 0.5
BODY_LEVEL = 0.1  # normalised intensity above which a coarse voxel counts as body


def implausible_reasons(component: np.ndarray, spacing, image: np.ndarray) -> list[str]:
    """Why the bool ``component`` (on the coarse grid of the normalised ``image``, ``spacing`` mm) cannot be a tumour."""
    reasons = []
    ml = volume_ml(component, spacing)
    if ml > MAX_TUMOUR_ML:
        reasons.append(f"{ml:,.0f} mL, more than {MAX_TUMOUR_ML:,.0f} mL")
    lo, hi = bbox(component)
    extent = (hi - lo + 1)[::-1] * np.asarray(spacing, dtype=np.float64)
    if extent.max() > MAX_EXTENT_MM:
        reasons.append(f"{extent.max():.0f} mm across, more than {MAX_EXTENT_MM:.0f} mm")
    body = np.count_nonzero((image > BODY_LEVEL) | component)
    fraction = np.count_nonzero(component) / max(1, body)
    if fraction > MAX_BODY_FRACTION:
        reasons.append(f"{100 * fraction:.0f}% of the body, more than {100 * MAX_BODY_FRACTION:.0f}%")
    return reasons


def keep_tumour_component(probability: np.ndarray, threshold: float = 0.5, min_voxels: int = 1) -> np.ndarray | None:
    """The component of ``probability > threshold`` with the highest summed probability, holes filled.

    Components smaller than ``min_voxels`` are ignored. Returns a bool mask, or None when nothing is left.
    Memory: besides the bool mask and the int32 labels, only bounding-box-sized temporaries.
    """
    labels, count = ndimage.label(probability > threshold, structure=_STRUCTURE)
    if count == 0:
        return None
    boxes = ndimage.find_objects(labels, max_label=count)
    scores = np.full(count, -np.inf)
    for n, box in enumerate(boxes, start=1):
        if box is None:
            continue
        inside = labels[box] == n
        if np.count_nonzero(inside) >= max(1, min_voxels):
            scores[n - 1] = np.sum(probability[box], where=inside, dtype=np.float64)
    if not np.isfinite(scores.max()):
        return None
    best = int(np.argmax(scores)) + 1
    return _filled_component(labels, best, boxes[best - 1])


def keep_largest_component(binary: np.ndarray) -> np.ndarray | None:
    """The largest 26-connected component of ``binary`` (ties: the first in scan order), holes filled; bool or None."""
    labels, count = ndimage.label(binary, structure=_STRUCTURE)
    if count == 0:
        return None
    boxes = ndimage.find_objects(labels, max_label=count)
    sizes = [0 if box is None else np.count_nonzero(labels[box] == n) for n, box in enumerate(boxes, start=1)]
    best = int(np.argmax(sizes)) + 1
    return _filled_component(labels, best, boxes[best - 1])


def _filled_component(labels: np.ndarray, label: int, box) -> np.ndarray:
    """Component ``label`` (bounding box ``box``) of ``labels`` with its holes filled, as a full-size bool mask.

    Holes are filled inside the bounding box only: a cavity enclosed by the component lies inside it.
    """
    out = np.zeros(labels.shape, dtype=bool)
    out[box] = ndimage.binary_fill_holes(labels[box] == label)
    return out


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
