"""Real scans as phantom backgrounds: reading, the body, where a tumour may sit, intensity statistics.

A :class:`BackgroundSpec` names a scan (NIfTI, NRRD, MetaImage or a DICOM folder, read with
:func:`neonet_core.io.read_volume`) and optionally a *site mask* beside it (an organ labelmap; with
``site_labels`` only those labels, e.g. 5 for the liver in TotalSegmentator's numbering).
:func:`load_background` checks it and precomputes, once per scan:

- ``body``: the body foreground (everything clearly above the air level, largest component, holes
  filled slice by slice and in 3D);
- ``host``: where a tumour may grow (the site mask's labels, else the body);
- ``sites``: candidate tumour centres (flat indices): inside the host, away from its border and from
  the body outline; without a site mask also soft-tissue-like (intensity within the body's middle
  range, locally homogeneous), so that tumours land in parenchyma rather than fat, bone or bowel gas;
- ``floor`` (the air level) and ``spread`` (the body's interquartile intensity range), from which the
  inserted structures take their intensities (see :mod:`neonet_core.phantom.background_case`).

Every problem is an :class:`~neonet_core.errors.InputError` naming the file: one clear line.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from neonet_core.errors import InputError
from neonet_core.volume import Volume

MIN_VOXELS_PER_AXIS = 3
MIN_BODY_VOXELS = 500
BODY_LEVEL = 0.1  # body threshold: air level + this fraction of (tissue level - air level)
HOST_DEPTH_MM = 8.0  # preferred depth of a tumour centre inside its host organ
BODY_DEPTH_MM = 15.0  # preferred depth of a tumour centre inside the body outline


@dataclass(frozen=True)
class BackgroundSpec:
    """A background scan, with an optional site mask (and the labels of it that may host a tumour)."""

    path: Path
    site_mask: Path | None = None
    site_labels: tuple[int, ...] | None = None

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))
        if self.site_mask is not None:
            object.__setattr__(self, "site_mask", Path(self.site_mask))
        if self.site_labels is not None:
            if self.site_mask is None:
                raise ValueError(f"site labels {list(self.site_labels)} given for {self.path} without a site mask")
            object.__setattr__(self, "site_labels", tuple(int(v) for v in self.site_labels))

    def describe(self) -> dict:
        """JSON-able identity: absolute paths, content hashes, labels (a cohort's settings hold it)."""
        return {
            "path": str(self.path.resolve()),
            "sha256": file_digest(self.path),
            "site_mask": None if self.site_mask is None else str(self.site_mask.resolve()),
            "site_mask_sha256": None if self.site_mask is None else file_digest(self.site_mask),
            "site_labels": None if self.site_labels is None else list(self.site_labels),
        }


@dataclass
class Background:
    """A checked background scan and what the generator needs from it (arrays ``(nz, ny, nx)``)."""

    spec: BackgroundSpec
    volume: Volume
    body: np.ndarray  # bool
    host: np.ndarray  # bool, where the tumour may grow
    sites: np.ndarray  # int64 flat indices of candidate tumour centres
    floor: float  # air level (1st percentile of the scan)
    spread: float  # interquartile range of the body's intensities


def file_digest(path: Path) -> str:
    """SHA-256 of a file, or of a folder's files (names and contents, sorted; e.g. a DICOM series)."""
    h = hashlib.sha256()
    path = Path(path)
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(f.name.encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def load_background(spec: BackgroundSpec) -> Background:
    """Read and check ``spec``'s scan (and site mask) and find where tumours may go."""
    from neonet_core.io import read_mask_on_image, read_volume

    path = spec.path
    volume = read_volume(path)  # InputError naming the file for anything unreadable
    shape = volume.array.shape
    if min(shape) < MIN_VOXELS_PER_AXIS:
        raise InputError(path, f"has only {min(shape)} voxels along one axis (size {'x'.join(map(str, shape[::-1]))}); "
                               f"a background needs at least {MIN_VOXELS_PER_AXIS} along each")
    if volume.array.dtype.kind not in "iuf":
        raise InputError(path, f"has voxel type {volume.array.dtype}; a background needs integer or real intensities")
    d = volume.direction
    if not np.allclose(d.T @ d, np.eye(3), atol=1e-3):
        raise InputError(path, "has a sheared (non-orthonormal) direction matrix; resample it onto a regular grid first")
    array = volume.array.astype(np.float32)
    floor, top = (float(v) for v in np.percentile(array, [1, 99]))
    if top <= floor:
        raise InputError(path, f"has (nearly) constant intensity ({floor:g}); is it a scan?")
    spacing = np.asarray(volume.spacing, dtype=np.float64)[::-1]  # (sz, sy, sx) for (nz, ny, nx) arrays
    body = body_mask(array, floor, top)
    if body.sum() < MIN_BODY_VOXELS:
        raise InputError(path, f"no body found (only {int(body.sum())} voxels clearly above the air level {floor:g}); "
                               "is it a scan of a patient?")
    values = array[body]
    q1, q3 = (float(v) for v in np.percentile(values, [25, 75]))
    spread = max(q3 - q1, 1e-3 * max(abs(q1), abs(q3), 1.0))

    if spec.site_mask is not None:
        mask = read_mask_on_image(spec.site_mask, volume).array  # InputError naming the mask
        present = sorted(int(v) for v in np.unique(mask) if v != 0)
        if spec.site_labels is not None:
            host = np.isin(mask, spec.site_labels)
            if not host.any():
                raise InputError(spec.site_mask, f"has no voxel with site label(s) {list(spec.site_labels)} "
                                                 f"on the scan's grid (labels present: {present[:20] or 'none'})")
        else:
            host = mask != 0
            if not host.any():
                raise InputError(spec.site_mask, "is empty on the scan's grid: no site for a tumour")
        host &= body | ndi.binary_dilation(body)  # a model-made organ mask may spill a voxel into the air
        if not host.any():
            raise InputError(spec.site_mask, "lies outside the body of the scan: no site for a tumour")
        tissue_like = None
    else:
        host = body
        tissue_like = _tissue_like(array, body, spacing)
    sites = _site_candidates(host, body, spacing, tissue_like)
    return Background(spec, volume, body, host, sites, floor, spread)


def body_mask(array: np.ndarray, floor: float, top: float) -> np.ndarray:
    """The body foreground of a scan ``(nz, ny, nx)``: above ``floor + BODY_LEVEL * (tissue - floor)``
    (tissue = median above the Otsu threshold), the largest connected part, holes filled."""
    clipped = np.clip(array, floor, top)
    tissue = float(np.median(clipped[clipped > otsu_threshold(clipped)]))
    body = array > floor + BODY_LEVEL * (tissue - floor)
    labels, n = ndi.label(body)
    if n == 0:
        return body
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    body = labels == int(sizes.argmax())
    body = ndi.binary_closing(body, iterations=1) | body
    for k in range(body.shape[0]):  # slice by slice: a body open at the top or bottom slice still fills
        body[k] = ndi.binary_fill_holes(body[k])
    return ndi.binary_fill_holes(body)


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of ``values`` (the level that best splits their histogram into two classes)."""
    hist, edges = np.histogram(values, bins=bins)
    centres = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(hist).astype(np.float64)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres) / np.maximum(w0, 1)
    m1 = (np.sum(hist * centres) - np.cumsum(hist * centres)) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    return float(centres[int(np.argmax(between[:-1]))])


def signed_distance(mask: np.ndarray, spacing) -> np.ndarray:
    """Approximate signed distance (mm, negative inside) to the border of ``mask`` ``(nz, ny, nx)``;
    ``spacing`` is ``(sz, sy, sx)``. The border lies half a voxel outside the mask's voxel centres."""
    spacing = np.asarray(spacing, dtype=np.float64)
    half = 0.5 * float(spacing.min())
    if not mask.any():
        return np.full(mask.shape, 1e3, dtype=np.float32)
    if mask.all():
        return np.full(mask.shape, -1e3, dtype=np.float32)
    outside = ndi.distance_transform_edt(~mask, sampling=spacing)
    inside = ndi.distance_transform_edt(mask, sampling=spacing)
    return np.where(mask, half - inside, outside - half).astype(np.float32)


def _tissue_like(array: np.ndarray, body: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Body voxels that look like organ parenchyma: smoothed intensity within the body's 35th-85th
    percentiles (on CT this leaves out fat, lung and bone) and a local standard deviation (over
    ~7 mm) below the body's median one."""
    sigma = 2.0 / spacing  # 2 mm
    smooth = ndi.gaussian_filter(array, sigma)
    lo, hi = np.percentile(smooth[body], [35, 85])
    size = np.maximum(np.rint(7.0 / spacing).astype(int) | 1, 1)
    mean = ndi.uniform_filter(smooth, size)
    local_sd = np.sqrt(np.clip(ndi.uniform_filter(smooth * smooth, size) - mean * mean, 0, None))
    calm = local_sd <= np.median(local_sd[body])
    return body & (smooth >= lo) & (smooth <= hi) & calm


def _site_candidates(host: np.ndarray, body: np.ndarray, spacing: np.ndarray, tissue_like: np.ndarray | None) -> np.ndarray:
    """Flat indices of tumour-centre candidates: deep enough in the host and in the body (each depth
    capped at half of the deepest available), tissue-like where that is known and leaves any."""
    host_depth = ndi.distance_transform_edt(host, sampling=spacing)
    body_depth = host_depth if host is body else ndi.distance_transform_edt(body, sampling=spacing)
    deep = host & (host_depth >= min(HOST_DEPTH_MM, 0.5 * host_depth.max()))
    deep &= body_depth >= min(BODY_DEPTH_MM, 0.5 * body_depth[deep].max())
    inner = np.ones_like(deep)  # away from the edges of the field of view as well
    for axis, (n, s) in enumerate(zip(host.shape, spacing)):
        k = np.arange(n)
        edge = np.minimum(k, n - 1 - k) * s >= min(BODY_DEPTH_MM, 0.5 * (n - 1) * s)
        inner &= edge.reshape([-1 if a == axis else 1 for a in range(3)])
    for extra in (inner, tissue_like):
        if extra is not None and (deep & extra).any():
            deep &= extra
    return np.flatnonzero(deep)
