"""Resampling between physical grids (SimpleITK underneath, geometry from :class:`Volume`)."""

from __future__ import annotations

import numpy as np

from neonet_core.volume import Volume

_INTERPOLATORS = {"linear": "sitkLinear", "nearest": "sitkNearestNeighbor"}


def grid(size_ijk, spacing, origin, direction, dtype=np.uint8) -> Volume:
    """An empty Volume used as a reference grid (array of zeros, shape ``size_ijk[::-1]``)."""
    return Volume(np.zeros(tuple(int(n) for n in size_ijk[::-1]), dtype=dtype), spacing, origin, direction)


def resample_volume(
    source: Volume,
    reference: Volume,
    interpolation: str = "linear",
    default_value: float = 0.0,
    dtype=None,
) -> Volume:
    """Resample ``source`` onto ``reference``'s grid (shape, spacing, origin, direction).

    ``interpolation`` is "linear" (images) or "nearest" (masks). Points outside ``source`` get
    ``default_value``. The result keeps ``source``'s dtype unless ``dtype`` is given, and never
    goes through float64 for integer masks.
    """
    import SimpleITK as sitk

    if interpolation not in _INTERPOLATORS:
        raise ValueError(f"interpolation must be one of {sorted(_INTERPOLATORS)}")
    src = source.to_sitk()
    ref = sitk.Image([int(n) for n in reference.size_ijk], sitk.sitkUInt8)
    ref.SetSpacing(reference.spacing)
    ref.SetOrigin(reference.origin)
    ref.SetDirection(tuple(reference.direction.flatten()))
    out = sitk.Resample(
        src, ref, sitk.Transform(), getattr(sitk, _INTERPOLATORS[interpolation]), float(default_value), src.GetPixelID()
    )
    array = sitk.GetArrayFromImage(out)
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    return Volume(array, reference.spacing, reference.origin, reference.direction, dict(source.metadata))
