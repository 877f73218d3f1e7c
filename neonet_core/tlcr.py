"""TLCR: the Tumour-Localised ROI Crop.

A cube of fixed physical size (``roi_mm``) is centred on the tumour and resampled to an isotropic
patch of ``patch_size`` voxels per edge. The cube's axes are the image's own axes (its direction
columns), so an oblique image is cropped along its own grid and never re-oriented.

- Centre: the midpoint of the chosen tumour component's bounding box, computed in the image's
  voxel index space (midpoint of the min and max voxel indices), then mapped to LPS mm.
- Component: ``"largest"`` (26-connected, by voxel count; ties go to the first in scan order) or
  ``"all"`` (the bounding box of every tumour voxel).
- Image patch: linear interpolation, float32, raw intensities (normalise afterwards, see
  :mod:`neonet_core.normalize`). Masks: nearest neighbour, uint8.
- Padding: where the cube leaves the image, image voxels get the image's *background value*,
  defined as its 1st percentile (:func:`background_value`); mask voxels get 0. The 1st percentile
  rather than the minimum so that a few outlier voxels (negative noise after bias correction,
  interpolation undershoot) do not set the padding.
- An empty tumour mask raises :class:`NoTumourFoundError`: never a silent centre crop.

Memory: nothing is converted at full size. Each crop slices the sub-block of the source array that
covers the cube (plus a 2-voxel margin) and resamples only that block with SimpleITK, so a
512x512x300 int16 volume costs little more than the volume itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neonet_core.errors import NoTumourFoundError
from neonet_core.resample import resample_volume, sub_volume
from neonet_core.volume import Volume

BACKGROUND_PERCENTILE = 1.0
_BACKGROUND_SAMPLE = 1_000_000  # at most about this many voxels go into the background percentile
COMPONENT_MODES = ("largest", "all")


def _triple(value, name: str, kind=float) -> tuple:
    """A scalar or 3-sequence -> a 3-tuple of ``kind`` (i, j, k order)."""
    values = np.broadcast_to(np.asarray(value, dtype=np.float64), (3,)) if np.ndim(value) <= 1 else None
    if values is None or not np.all(values > 0):
        raise ValueError(f"{name} must be a positive number or three positive numbers, got {value!r}")
    return tuple(kind(v) for v in values)


@dataclass(frozen=True, eq=False)
class ROI:
    """An oriented box in physical space.

    center: (3,) LPS mm. size_mm: (3,) edge lengths along the three axes.
    axes: 3x3, *columns* are the unit axis vectors in LPS (the image's direction).
    """

    center: tuple[float, float, float]
    size_mm: tuple[float, float, float]
    axes: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self):
        object.__setattr__(self, "center", tuple(float(c) for c in np.asarray(self.center).reshape(3)))
        object.__setattr__(self, "size_mm", _triple(self.size_mm, "size_mm"))
        axes = np.asarray(self.axes, dtype=np.float64).reshape(3, 3)
        if not np.allclose(axes.T @ axes, np.eye(3), atol=1e-4):
            raise ValueError("ROI axes must be orthonormal columns")
        object.__setattr__(self, "axes", axes)

    def patch_geometry(self, patch_size) -> Volume:
        """Reference grid of the patch: zeros of shape (D, H, W) = ``patch_size[::-1]`` (uint8).

        Spacing = size_mm / patch_size per axis (isotropic for a cube); direction = axes; origin so
        that the continuous index (n - 1) / 2, the patch centre, lands on ``center``. The patch's
        outer voxel edges coincide with the box faces.
        """
        n = np.asarray(_triple(patch_size, "patch_size", int), dtype=np.float64)
        spacing = np.asarray(self.size_mm) / n
        origin = np.asarray(self.center) - self.axes @ (spacing * (n - 1) / 2.0)
        shape = tuple(int(v) for v in n[::-1])
        return Volume(np.zeros(shape, dtype=np.uint8), tuple(spacing), tuple(origin), self.axes)

    def corners(self) -> np.ndarray:
        """The 8 corners of the box in LPS, shape (8, 3)."""
        half = np.asarray(self.size_mm) / 2.0
        signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)
        return np.asarray(self.center) + (signs * half) @ self.axes.T

    def to_dict(self) -> dict:
        """JSON-able: ``axes`` is the 3x3 matrix as nested rows (its columns are the axis vectors)."""
        return {
            "coordinate_system": "LPS",
            "center": list(self.center),
            "size_mm": list(self.size_mm),
            "axes": self.axes.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "ROI":
        if data.get("coordinate_system", "LPS") != "LPS":
            raise ValueError(f"ROI dict must be in LPS, got {data.get('coordinate_system')!r}")
        return cls(data["center"], data["size_mm"], np.asarray(data["axes"], dtype=np.float64))


@dataclass(frozen=True, eq=False)
class TLCRResult:
    """The patches of one case on the same patch grid, and the ROI they came from.

    image_patch: float32 raw intensities. tumour_patch: uint8 0/1 (the chosen component(s)).
    anatomy_patch: uint8 labels or None. background: the padding value used for the image.
    tumour_extent_mm: (3,) edge lengths of the chosen component's bounding box along the axes
    (voxel edges included); larger than the ROI means the tumour is cut by the crop.
    """

    image_patch: Volume
    tumour_patch: Volume
    anatomy_patch: Volume | None
    roi: ROI
    background: float
    tumour_extent_mm: tuple[float, float, float]

    @property
    def tumour_fits(self) -> bool:
        return bool(np.all(np.asarray(self.tumour_extent_mm) <= np.asarray(self.roi.size_mm) + 1e-6))


# --- tumour component ----------------------------------------------------------------------
def _mask_path(mask: Volume) -> str:
    return str(mask.metadata.get("path", "<tumour mask>"))


def _bbox(binary: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Inclusive (lo, hi) voxel bounds in array order (k, j, i) of the nonzero voxels, or None."""
    lo, hi = [], []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(np.any(binary, axis=other))
        if hits.size == 0:
            return None
        lo.append(hits[0])
        hi.append(hits[-1])
    return np.asarray(lo), np.asarray(hi)


def component_sizes(labels: np.ndarray, count: int) -> np.ndarray:
    """Voxel count of each component 1..count of a label array ``(count,)`` int64.

    Counted inside each component's bounding box, so no full-size temporary is made (``np.bincount``
    would copy the labels to int64: 8 bytes a voxel).
    """
    from scipy import ndimage

    sizes = np.zeros(count, dtype=np.int64)
    for n, box in enumerate(ndimage.find_objects(labels, max_label=count), start=1):
        if box is not None:
            sizes[n - 1] = np.count_nonzero(labels[box] == n)
    return sizes


def _tumour_component(mask: Volume, mode: str) -> tuple[Volume, np.ndarray]:
    """The chosen component as a tight uint8 block and its offset (k, j, i) on ``mask``'s grid."""
    from scipy import ndimage

    if mode not in COMPONENT_MODES:
        raise ValueError(f"component must be one of {COMPONENT_MODES}, got {mode!r}")
    binary = mask.array != 0
    box = _bbox(binary)
    if box is None:
        raise NoTumourFoundError(f"{_mask_path(mask)}: empty tumour mask (no nonzero voxel); cannot place the TLCR crop")
    lo, hi = box
    block = binary[lo[0] : hi[0] + 1, lo[1] : hi[1] + 1, lo[2] : hi[2] + 1]
    if mode == "largest":
        labels, count = ndimage.label(block, structure=np.ones((3, 3, 3), dtype=bool))
        if count > 1:
            sizes = component_sizes(labels, count)
            block = labels == (int(np.argmax(sizes)) + 1)
            sub_lo, sub_hi = _bbox(block)
            block = block[sub_lo[0] : sub_hi[0] + 1, sub_lo[1] : sub_hi[1] + 1, sub_lo[2] : sub_hi[2] + 1]
            lo = lo + sub_lo
    block = np.ascontiguousarray(block, dtype=np.uint8)
    return sub_volume(mask, block, lo), lo


def select_tumour_component(mask: Volume, mode: str = "largest") -> Volume:
    """The tumour voxels kept for the crop, on ``mask``'s grid, uint8 0/1.

    mode "largest": the largest 26-connected component (by voxel count); "all": every nonzero voxel.
    Raises NoTumourFoundError for an empty mask.
    """
    block, lo = _tumour_component(mask, mode)
    out = np.zeros(mask.array.shape, dtype=np.uint8)
    d, h, w = block.array.shape
    out[lo[0] : lo[0] + d, lo[1] : lo[1] + h, lo[2] : lo[2] + w] = block.array
    return mask.with_array(out)


def _on_grid(mask: Volume, image: Volume) -> Volume:
    """``mask`` on ``image``'s grid (nearest neighbour) unless it is already there."""
    if mask.same_grid(image):
        return mask
    return resample_volume(mask, image, "nearest", 0)


def tumour_roi(image: Volume, tumour: Volume, roi_mm=64.0, component: str = "largest") -> ROI:
    """A cube of ``roi_mm`` edge centred on the chosen tumour component's bounding-box centre.

    The bounding box is taken in ``image``'s voxel index space (the mask is resampled nearest onto
    the image grid if needed); its centre is the midpoint of the min and max voxel indices, mapped to
    LPS. Axes are the image's direction columns.
    """
    block, _ = _tumour_component(_on_grid(tumour, image), component)
    return _roi_for_block(block, roi_mm)


def _roi_for_block(block: Volume, roi_mm) -> ROI:
    centre_ijk = (np.asarray(block.size_ijk, dtype=np.float64) - 1.0) / 2.0
    return ROI(block.index_to_physical(centre_ijk), _triple(roi_mm, "roi_mm"), block.direction)


# --- cropping --------------------------------------------------------------------------------
def background_value(volume: Volume) -> float:
    """The image's background: its 1st percentile (linear interpolation between order statistics).

    Computed on a regular strided subsample of at most about one million voxels (every voxel for
    volumes up to that size), so it stays cheap for large scans.
    """
    array = volume.array
    step = max(1, int(np.ceil((array.size / _BACKGROUND_SAMPLE) ** (1.0 / 3.0))))
    sample = array[::step, ::step, ::step]
    return float(np.percentile(sample, BACKGROUND_PERCENTILE))


def crop_patch(volume: Volume, roi: ROI, patch_size=32, interpolation: str = "linear", default_value: float = 0.0) -> Volume:
    """Resample ``volume`` inside ``roi`` onto the patch grid ``roi.patch_geometry(patch_size)``.

    "linear" returns float32 (images); "nearest" returns uint8 (masks, values must fit 0..255).
    Points outside ``volume`` get ``default_value``.
    """
    dtype = np.float32 if interpolation == "linear" else np.uint8
    return resample_volume(volume, roi.patch_geometry(patch_size), interpolation, default_value, dtype)


def _keep_small_tumour(patch: Volume, block: Volume) -> Volume:
    """A tumour smaller than a patch voxel can fall between the nearest-neighbour samples: then mark
    the patch voxel holding its centroid, so the tumour patch is never empty."""
    if patch.array.any() or not block.array.any():
        return patch
    k, j, i = np.nonzero(block.array)
    centre = block.index_to_physical(np.stack([i, j, k], 1).astype(float)).mean(0)
    index = np.clip(np.rint(patch.physical_to_index(centre[None])[0]).astype(int), 0, np.asarray(patch.size_ijk) - 1)
    array = patch.array.copy()
    array[index[2], index[1], index[0]] = 1
    return patch.with_array(array)


def tlcr_crop(
    image: Volume,
    tumour: Volume,
    anatomy: Volume | None = None,
    roi_mm=64.0,
    patch_size=32,
    component: str = "largest",
) -> TLCRResult:
    """Cut the TLCR patches of one case (see the module docstring for every rule).

    image, tumour, anatomy: Volumes (masks are put on the image grid by nearest neighbour if they
    are not already there). Returns patches of shape ``(patch_size,) * 3`` and the ROI.
    """
    tumour = _on_grid(tumour, image)
    block, _ = _tumour_component(tumour, component)
    roi = _roi_for_block(block, roi_mm)
    background = background_value(image)
    image_patch = crop_patch(image, roi, patch_size, "linear", background)
    tumour_patch = _keep_small_tumour(crop_patch(block, roi, patch_size, "nearest", 0), block)
    anatomy_patch = None
    if anatomy is not None:
        anatomy_patch = crop_patch(_on_grid(anatomy, image), roi, patch_size, "nearest", 0)
    extent = tuple(float(v) for v in np.asarray(block.size_ijk) * np.asarray(block.spacing))
    return TLCRResult(image_patch, tumour_patch, anatomy_patch, roi, background, extent)


def tlcr_from_config(image: Volume, tumour: Volume, anatomy: Volume | None, cfg) -> TLCRResult:
    """:func:`tlcr_crop` with roi_mm, patch_size and component from a PreprocessConfig (or a NeoNetConfig)."""
    cfg = getattr(cfg, "preprocess", cfg)
    return tlcr_crop(image, tumour, anatomy, cfg.roi_mm, cfg.patch_size, cfg.component)


def patch_to_volume(
    patch_array: np.ndarray,
    roi: ROI,
    reference: Volume,
    interpolation: str = "linear",
    default_value: float = 0.0,
) -> Volume:
    """Map a patch-space array (D, H, W), e.g. an attention map, back onto ``reference``'s grid.

    The patch grid is ``roi.patch_geometry(patch_array.shape[::-1])``. Returns float32 on the
    reference grid; voxels outside the ROI box get ``default_value``.
    """
    patch_array = np.asarray(patch_array)
    if patch_array.ndim != 3:
        raise ValueError(f"patch_array must be 3D (D, H, W), got shape {patch_array.shape}")
    grid = roi.patch_geometry(patch_array.shape[::-1])
    patch = grid.with_array(np.ascontiguousarray(patch_array, dtype=np.float32))
    reference_grid = Volume(
        np.empty(reference.array.shape, dtype=np.uint8), reference.spacing, reference.origin, reference.direction
    )
    return resample_volume(patch, reference_grid, interpolation, default_value, np.float32)
