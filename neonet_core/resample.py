"""Resampling between physical grids (SimpleITK underneath, geometry from :class:`Volume`).

Only the block of the source that covers the target grid is handed to SimpleITK, so cutting a
small patch out of a large volume never copies the whole volume.
"""

from __future__ import annotations

import numpy as np

from neonet_core.volume import Volume

_INTERPOLATORS = {"linear": "sitkLinear", "nearest": "sitkNearestNeighbor"}
_MARGIN = 2  # source voxels kept around the target's extent (enough for linear interpolation)


def sub_volume(volume: Volume, array: np.ndarray, offset_kji) -> Volume:
    """A Volume holding ``array`` placed at voxel ``offset_kji`` (k, j, i) of ``volume``'s grid."""
    origin = volume.index_to_physical(np.asarray(offset_kji, dtype=np.float64)[::-1])
    return Volume(array, volume.spacing, origin, volume.direction, dict(volume.metadata))


def source_block(volume: Volume, reference: Volume) -> Volume | None:
    """The part of ``volume`` (a view, no copy) covering ``reference``'s extent plus a margin; None if disjoint."""
    corners = volume.physical_to_index(reference.corners_physical())
    lo_ijk = np.floor(corners.min(axis=0)).astype(int) - _MARGIN
    hi_ijk = np.ceil(corners.max(axis=0)).astype(int) + _MARGIN
    lo_ijk, hi_ijk = np.maximum(lo_ijk, 0), np.minimum(hi_ijk, np.asarray(volume.size_ijk) - 1)
    if np.any(hi_ijk < lo_ijk):
        return None
    lo, hi = lo_ijk[::-1], hi_ijk[::-1]
    return sub_volume(volume, volume.array[lo[0] : hi[0] + 1, lo[1] : hi[1] + 1, lo[2] : hi[2] + 1], lo)


def resample_volume(
    source: Volume,
    reference: Volume,
    interpolation: str = "linear",
    default_value: float = 0.0,
    dtype=None,
) -> Volume:
    """Resample ``source`` onto ``reference``'s grid (shape, spacing, origin, direction).

    ``interpolation`` is "linear" (images) or "nearest" (masks). Points outside ``source`` get
    ``default_value``. The result has ``dtype`` (default: ``source``'s); with float32 the
    interpolation itself runs in float32, otherwise in the source's pixel type, so integer
    masks never go through float64.
    """
    import SimpleITK as sitk

    if interpolation not in _INTERPOLATORS:
        raise ValueError(f"interpolation must be one of {sorted(_INTERPOLATORS)}")
    dtype = np.dtype(source.array.dtype if dtype is None else dtype)
    block = source_block(source, reference)
    if block is None:
        array = np.full(reference.array.shape, default_value, dtype=dtype)
    else:
        image = block.to_sitk()
        pixel = sitk.sitkFloat32 if dtype == np.float32 else image.GetPixelID()
        out = sitk.Resample(
            image,
            [int(n) for n in reference.size_ijk],
            sitk.Transform(),
            getattr(sitk, _INTERPOLATORS[interpolation]),
            reference.origin,
            reference.spacing,
            tuple(reference.direction.flatten()),
            float(default_value),
            pixel,
        )
        array = sitk.GetArrayFromImage(out).astype(dtype, copy=False)
    return Volume(array, reference.spacing, reference.origin, reference.direction, dict(source.metadata))
