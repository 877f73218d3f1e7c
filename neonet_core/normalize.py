"""Robust MRI intensity normalisation.

MRI intensities have no physical unit, so each image (or TLCR patch) is mapped by its own robust
percentiles: the ``lower_percentile`` value -> 0 and the ``upper_percentile`` value -> 1.

Which voxels give the percentiles:
- with ``mask``: exactly the voxels where ``mask`` is nonzero (e.g. the body or the ROI);
- without: the *foreground*, the voxels strictly above the array's 1st percentile (the same
  background definition the TLCR crop pads with, so air and padding are left out). If fewer than
  1% of the voxels are foreground (a constant or nearly constant image), every voxel is used.

Clipping: the result is clipped to [0, 1] by default. The percentiles already put all but about 1%
of the voxels inside that range, the NeoGen autoencoder reconstructs (and the diffusion model
generates) patches in a bounded range, and real and synthetic patches must share it. Pass
``clip=None`` to keep the unclipped linear map.

Constant input (upper value == lower value): there is no contrast to scale, and the result is all
zeros (never a division by zero or NaN).

Memory: the output is the only full-size array created (float32); the subtraction and scaling run
in float32 in place, never through a float64 copy of the volume.
"""

from __future__ import annotations

import numpy as np

from neonet_core.volume import Volume

FOREGROUND_PERCENTILE = 1.0
MIN_FOREGROUND_FRACTION = 0.01
DEFAULT_CLIP = (0.0, 1.0)


def _selection(array: np.ndarray, mask) -> np.ndarray:
    """The 1D voxel values the percentiles are taken from (see module docstring)."""
    if mask is not None:
        mask = np.asarray(getattr(mask, "array", mask))
        if mask.shape != array.shape:
            raise ValueError(f"normalisation mask shape {mask.shape} does not match the array {array.shape}")
        values = array[mask != 0]
        if values.size == 0:
            raise ValueError("normalisation mask is empty: no voxel to take percentiles from")
        return values
    threshold = np.percentile(array, FOREGROUND_PERCENTILE)
    values = array[array > threshold]
    if values.size < MIN_FOREGROUND_FRACTION * array.size:
        return array.ravel()
    return values


def robust_percentiles(array: np.ndarray, lower_percentile: float = 0.5, upper_percentile: float = 99.5, mask=None) -> tuple[float, float]:
    """The (lower, upper) intensity values used by :func:`robust_normalise`."""
    if not 0.0 <= lower_percentile < upper_percentile <= 100.0:
        raise ValueError(f"need 0 <= lower_percentile < upper_percentile <= 100, got {lower_percentile}, {upper_percentile}")
    array = np.asarray(array)
    lo, hi = np.percentile(_selection(array, mask), [lower_percentile, upper_percentile])
    return float(lo), float(hi)


def robust_normalise(
    array: np.ndarray,
    lower_percentile: float = 0.5,
    upper_percentile: float = 99.5,
    mask=None,
    clip: tuple[float, float] | None = DEFAULT_CLIP,
) -> np.ndarray:
    """Map the robust percentiles of ``array`` to 0 and 1; float32, same shape.

    array: any real dtype, any shape. mask: same shape (array or Volume), nonzero = voxels the
    percentiles come from; None = foreground rule. clip: (min, max) or None.
    """
    array = np.asarray(array)
    lo, hi = robust_percentiles(array, lower_percentile, upper_percentile, mask)
    return _scale(array, lo, hi, clip)


def _scale(array: np.ndarray, lo: float, hi: float, clip) -> np.ndarray:
    """float32 ``(array - lo) / (hi - lo)``, clipped; zeros when ``hi <= lo``."""
    out = np.empty(array.shape, dtype=np.float32)
    if not hi > lo:
        out.fill(0.0)
        return out
    np.subtract(array, np.float32(lo), out=out, dtype=np.float32, casting="same_kind")
    np.multiply(out, np.float32(1.0 / (hi - lo)), out=out)
    if clip is not None:
        np.clip(out, clip[0], clip[1], out=out)
    return out


def normalise_patch(
    patch: Volume,
    lower_percentile: float = 0.5,
    upper_percentile: float = 99.5,
    mask=None,
    clip: tuple[float, float] | None = DEFAULT_CLIP,
) -> Volume:
    """Normalise a TLCR image patch; returns a float32 Volume on the same grid.

    The metadata gains ``normalisation``: the percentiles, the intensity values mapped to 0 and 1,
    and the clip range, so the mapping can be undone or reported.
    """
    lo, hi = robust_percentiles(patch.array, lower_percentile, upper_percentile, mask)
    array = _scale(patch.array, lo, hi, clip)
    info = {
        "method": "robust_percentile",
        "lower_percentile": float(lower_percentile),
        "upper_percentile": float(upper_percentile),
        "lower_value": lo,
        "upper_value": hi,
        "clip": None if clip is None else [float(clip[0]), float(clip[1])],
    }
    return patch.with_array(array, normalisation=info)


def normalise_from_config(patch: Volume, cfg, mask=None) -> Volume:
    """:func:`normalise_patch` with the percentiles of a PreprocessConfig (or a NeoNetConfig)."""
    cfg = getattr(cfg, "preprocess", cfg)
    return normalise_patch(patch, cfg.lower_percentile, cfg.upper_percentile, mask)
