"""Is a case assessable? Content-free input must never get a confident call without a word.

Checked on the TLCR crop that the classifier sees; each failed check gives one reason:

- voxel spacing: every spacing from 0.05 to 20 mm (MRI: ~0.2-2 mm in plane, slices up to ~10 mm);
- ROI inside the image: at least half of the ROI cube lies inside the image (the rest is padding);
- contrast: the intensity spread in the ROI (1st to 99th percentile of the voxels inside the image)
  is at least 1% of the image's own spread (a constant image has none).
"""

from __future__ import annotations

import numpy as np

from neonet_core.tlcr import ROI, TLCRResult
from neonet_core.volume import Volume

SPACING_MM = (0.05, 20.0)
MIN_INSIDE = 0.5
MIN_CONTRAST = 0.01
_SAMPLE = 1_000_000  # at most about this many image voxels go into the image's spread


def not_assessable_reasons(image: Volume, crop: TLCRResult) -> list[str]:
    """Why the prediction on ``crop`` (cut from ``image``) cannot be trusted; empty when it can."""
    reasons = []
    spacing = np.asarray(image.spacing)
    if np.any(spacing < SPACING_MM[0]) or np.any(spacing > SPACING_MM[1]):
        reasons.append(f"implausible voxel spacing {tuple(round(float(s), 6) for s in spacing)} mm "
                       f"(expected {SPACING_MM[0]:g} to {SPACING_MM[1]:g} mm)")
    inside = inside_mask(crop.roi, crop.image_patch.array.shape, image)
    fraction = float(inside.mean())
    if fraction < MIN_INSIDE:
        reasons.append(f"only {100 * fraction:.0f}% of the ROI lies inside the image (the rest is padding)")
    image_spread = _spread(_sample(image.array))
    roi_spread = _spread(crop.image_patch.array[inside]) if inside.any() else 0.0
    if image_spread <= 0.0:
        reasons.append("the image is constant: no contrast at all")
    elif roi_spread < MIN_CONTRAST * image_spread:
        reasons.append(f"no contrast in the ROI (intensity spread {roi_spread:.3g}, "
                       f"{100 * roi_spread / image_spread:.2g}% of the image's {image_spread:.3g})")
    return reasons


def inside_mask(roi: ROI, shape, image: Volume) -> np.ndarray:
    """Bool ``shape`` (D, H, W): which voxel centres of the ROI's patch grid lie inside ``image``."""
    grid = roi.patch_geometry(tuple(shape)[::-1])
    k, j, i = np.indices(shape).reshape(3, -1)
    ijk = image.physical_to_index(grid.index_to_physical(np.stack([i, j, k], 1).astype(np.float64)))
    upper = np.asarray(image.size_ijk, dtype=np.float64) - 0.5
    return np.all((ijk >= -0.5) & (ijk <= upper), axis=1).reshape(shape)


def _sample(array: np.ndarray) -> np.ndarray:
    step = max(1, int(np.ceil((array.size / _SAMPLE) ** (1.0 / 3.0))))
    return array[::step, ::step, ::step]


def _spread(values: np.ndarray) -> float:
    if values.size == 0:
        return 0.0
    lo, hi = np.percentile(values, [1.0, 99.0])
    return float(hi - lo)
