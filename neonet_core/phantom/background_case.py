"""One phantom case on a real background scan: a tumour, nerve fibres and (PNI+) extensions touching
the tumour or (PNI-) look-alike decoys that do not, painted into a randomly cropped copy of the scan.

Reuses the synthetic phantom's parts: :func:`~neonet_core.phantom.lesions.grow_tumour` (lobulated
mass with an eccentric lobe), :func:`~neonet_core.phantom.lesions.build_confounders` (dark vessels and
bright strands touching the tumour, every case), :func:`~neonet_core.phantom.lesions.nerve_exits` and
:func:`~neonet_core.phantom.lesions.build_extensions` (PNI sleeves; with ``gap_mm`` the decoys), all
drawn on a :class:`~neonet_core.phantom.grid.Grid` covering a box around the tumour site.

Geometry: the grid's world frame is the scan's own voxel axes in mm (its direction is orthonormal,
so distances are physical), with the tumour site at 0; each case draws a random rotation of the
structures about the site. The output keeps the scan's spacing and direction exactly; its origin is
the scan's voxel ``crop_start`` (a random crop of up to ``crop`` of each axis per side).

Intensities are relative to the scan around the site: with ``m`` the median of the host organ within
12 mm of the site, ``A = max(min(spread, m - floor), 4 * noise)`` (``spread`` the body's interquartile
range, ``floor`` the air level, ``noise`` the local noise), a tissue of relative value ``r`` (host = 1,
as in the synthetic phantom) has intensity ``m + (r - 1) * A``: proportional to the organ's signal on
MR (floor ~ 0), a few tens of HU on CT. Painting shifts the scan's *smoothed* intensity towards the
target (partial-volume occupancy), so the scan's own noise and fine texture stay, and every voxel
outside the painted structures keeps the scan's exact value.

Each case draws from its own streams ``SeedSequence([seed, index]).spawn(6)``; only the sleeves
(extensions or decoys) depend on the label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from neonet_core.errors import InputError
from neonet_core.labels import ANATOMY_LABELS, TUMOUR_LABEL
from neonet_core.phantom.anatomy import curved_path
from neonet_core.phantom.background import Background, signed_distance
from neonet_core.phantom.grid import Grid, draw_tube, empty_sd, resample_polyline, rotation_matrix, soft
from neonet_core.phantom.lesions import build_confounders, build_extensions, grow_tumour, nerve_exits, radial_fibres
from neonet_core.phantom.params import PhantomParams
from neonet_core.volume import Volume

HOST_LABEL = {name: value for value, name in ANATOMY_LABELS.items()}["liver"]
ROI_HALF_MM = 90.0  # structures are drawn in a box this far around the site (fibres end well inside)
SITE_MARGIN_MM = 20.0  # the crop keeps the site at least this far (or half the axis) from the edges
FIBRE_LENGTH_MM = (55.0, 70.0)
MIN_EXITS = 5  # fibres are added until this many leave the tumour (or MAX_FIBRES are drawn)
MAX_FIBRES = 16
MIN_TUMOUR_VOXELS = 8
SITE_TRIES = 10


@dataclass
class BackgroundCase:
    """A case on a background. ``image`` (the scan's dtype), ``tumour`` uint8 {0,1} and ``anatomy`` (uint8:
    1 the host organ, 4 tumour; None without a site mask) share one grid: the scan's spacing and direction,
    origin at the scan's voxel ``crop_start`` (i, j, k). Debug masks (bool ``(nz, ny, nx)``, not written):
    ``extension`` (PNI+ sleeves), ``decoys`` (PNI- sleeves), ``nerves``, and ``inserted`` (every voxel whose
    value may differ from the scan's). ``site`` is the tumour site in LPS mm."""

    image: Volume
    tumour: Volume
    anatomy: Volume | None
    label: int
    extension: np.ndarray
    decoys: np.ndarray
    nerves: np.ndarray
    inserted: np.ndarray
    crop_start: tuple[int, int, int]
    site: tuple[float, float, float]


def _values(rng: np.random.Generator) -> dict[str, float]:
    """Relative signal of the inserted tissues (host organ = 1)."""
    return {"tumour": rng.uniform(0.55, 0.7), "nerve": rng.uniform(0.75, 0.88)}


def _crop(rng: np.random.Generator, shape, site_zyx, spacing_zyx, fraction: float):
    """Random crop ``(lo, hi)`` (zyx, hi exclusive): up to ``fraction`` of each axis per side, never
    closer to the site than ``SITE_MARGIN_MM`` (or half the axis)."""
    lo, hi = [], []
    for n, k, s in zip(shape, site_zyx, spacing_zyx):
        most = int(np.floor(fraction * n))
        margin = int(np.ceil(min(SITE_MARGIN_MM / s, (n - 1) / 2)))
        lo.append(int(rng.integers(0, max(min(most, k - margin), 0) + 1)))
        hi.append(n - int(rng.integers(0, max(min(most, n - 1 - k - margin), 0) + 1)))
    return np.array(lo), np.array(hi)


def _sleeves_touching(sd: np.ndarray, tumour: np.ndarray, width: float) -> np.ndarray:
    """``sd`` with every painted part that is not connected (26-neighbours) to the tumour removed."""
    painted = sd < width / 2
    labels, _ = ndi.label(painted | tumour, structure=np.ones((3, 3, 3)))
    attached = np.unique(labels[tumour])
    out = sd.copy()
    out[painted & ~np.isin(labels, attached[attached > 0])] = 1e3
    return out


def generate_background_case(
    index: int,
    seed: int,
    label: int,
    background: Background,
    params: PhantomParams | None = None,
    crop: float = 0.06,
) -> BackgroundCase:
    """Case ``index`` of cohort ``seed`` with PNI ``label`` (0 or 1) on ``background``.

    ``params.difficulty`` sets the sleeves as in the synthetic phantom (:attr:`PhantomParams.pni`);
    ``crop`` (0..0.25) is the largest fraction of each axis cut from each side (0 keeps the scan's grid).
    """
    params = params or PhantomParams()
    if label not in (0, 1):
        raise ValueError(f"label must be 0 or 1, got {label!r}")
    if not 0.0 <= crop <= 0.25:
        raise ValueError(f"crop must be between 0 and 0.25, got {crop}")
    site_rng, tumour_rng, conf_rng, nerve_rng, pni_rng, value_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence([int(seed), int(index)]).spawn(6)
    )
    vol = background.volume
    shape = vol.array.shape
    spacing = np.asarray(vol.spacing, dtype=np.float64)  # (si, sj, sk)
    spacing_zyx = spacing[::-1]

    for _ in range(SITE_TRIES):  # a site where the host leaves room for a tumour
        site = np.array(np.unravel_index(background.sites[site_rng.integers(len(background.sites))], shape))  # zyx
        lo, hi = _crop(site_rng, shape, site, spacing_zyx, crop)
        half = np.ceil(ROI_HALF_MM / spacing_zyx).astype(int)
        r_lo, r_hi = np.maximum(site - half, lo), np.minimum(site + half + 1, hi)
        box = tuple(slice(a, b) for a, b in zip(r_lo, r_hi))
        grid = Grid(tuple(int(n) for n in r_hi - r_lo), tuple(spacing), rotation_matrix(site_rng, 180.0),
                    origin=(r_lo - site)[::-1] * spacing)
        body_sd = signed_distance(background.body[box], spacing_zyx)
        host_sd = np.maximum(signed_distance(background.host[box], spacing_zyx), body_sd)
        size = site_rng.uniform(0.75, 1.25)
        path, s = resample_polyline(curved_path(tumour_rng, np.array([-30.0 * size, 0, 0]), np.array([1.0, 0, 0]),
                                                60.0 * size, wiggle_deg=10.0, step=6.0), 1.5 * size)
        centre = s[np.argmin(np.linalg.norm(path, axis=1))]
        tumour = grow_tumour(tumour_rng, grid, path, s, centre, host_sd, size)
        if tumour.mask.sum() >= MIN_TUMOUR_VOXELS:
            break
    else:
        raise InputError(background.spec.path, f"found no room for a tumour in {SITE_TRIES} tries "
                                               "(the host organ or body is too thin); give a larger scan or site mask")

    w = grid.pv_width
    touch_mm = float(np.linalg.norm(spacing)) * 1.01  # voxel centres closer than this may be 26-neighbours
    fibres = []
    exits: list = []
    while len(fibres) < MAX_FIBRES and (len(fibres) < 4 or len(exits) < MIN_EXITS):
        fibre = radial_fibres(nerve_rng, tumour, 1, FIBRE_LENGTH_MM)[0]
        fibres.append(fibre)
        exits += nerve_exits(grid, [(fibre, 0)], tumour.mask)
    nerve_sd = empty_sd(grid)
    for fibre in fibres:
        draw_tube(grid, nerve_sd, fibre.points, fibre.radii)
    nerve_sd = np.maximum(nerve_sd, body_sd)

    pni = params.pni
    if label == 1:
        sleeve_sd, contrast = build_extensions(pni_rng, grid, exits, pni)
        sleeve_sd = _sleeves_touching(np.maximum(sleeve_sd, body_sd), tumour.mask, w)
    else:
        gap_lo = pni.radius_mm[1] + touch_mm + w
        gap_mm = (gap_lo, gap_lo + 8.0 * (1.0 - 0.5 * params.difficulty))
        sleeve_sd, contrast = build_extensions(pni_rng, grid, exits, pni, gap_mm=gap_mm)
        sleeve_sd = np.maximum(sleeve_sd, body_sd)
        near = ndi.distance_transform_edt(~tumour.mask, sampling=spacing_zyx) <= touch_mm + w
        sleeve_sd[near] = 1e3  # never touching the tumour, whatever the fibre's curve
    confounders = build_confounders(conf_rng, grid, tumour, 1.0)
    values = _values(value_rng)

    # intensities relative to the scan around the site
    bg = vol.array[box].astype(np.float32)
    smooth = ndi.gaussian_filter(bg, 1.0)
    host = host_sd <= 0
    near_site = _ball(grid, 12.0) & host
    m = float(np.median(bg[near_site])) if near_site.any() else float(np.median(bg[host]))
    residual = (bg - smooth)[host]
    noise = 1.4826 * float(np.median(np.abs(residual - np.median(residual))))
    unit = max(min(background.spread, m - background.floor), 4.0 * noise, 1e-6)

    def level(r):
        return m + (np.asarray(r, dtype=np.float32) - 1.0) * unit

    target = smooth.copy()
    occupied = np.zeros(grid.shape, dtype=bool)

    def paint(value, sd):
        occ = soft(sd, w)
        occupied[...] |= occ > 0
        target[...] += (value - target) * occ

    paint(level(values["nerve"]), nerve_sd)
    paint(level(1.0 + contrast * (values["tumour"] - 1.0)), sleeve_sd)
    for strand in confounders:
        paint(level(strand.tissue), np.maximum(strand.sd, body_sd))
    paint(level(values["tumour"] * (1.0 + 0.06 * tumour.texture)), tumour.sd)

    # the output: the cropped scan with the painted box
    crop_box = tuple(slice(a, b) for a, b in zip(lo, hi))
    dtype = vol.array.dtype
    image = vol.array[crop_box].copy()
    inner = tuple(slice(a - c, b - c) for a, b, c in zip(r_lo, r_hi, lo))
    painted = bg + (target - smooth)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        painted = np.clip(np.rint(painted), info.min, info.max)
    image[inner] = np.where(occupied, painted.astype(dtype), vol.array[box])

    def on_output(roi_mask: np.ndarray) -> np.ndarray:
        out = np.zeros(image.shape, dtype=bool)
        out[inner] = roi_mask
        return out

    tumour_mask = on_output(tumour.mask)
    geometry = dict(spacing=vol.spacing, origin=tuple(vol.index_to_physical(lo[::-1].astype(np.float64))),
                    direction=vol.direction)
    meta = {"case_index": int(index), "seed": int(seed), "label": int(label), "background": str(background.spec.path)}
    anatomy = None
    if background.spec.site_mask is not None:
        labels = np.zeros(image.shape, dtype=np.uint8)
        labels[background.host[crop_box]] = HOST_LABEL
        labels[tumour_mask] = TUMOUR_LABEL
        anatomy = Volume(labels, **geometry, metadata=meta)
    sleeves = on_output((sleeve_sd < w / 2) & ~tumour.mask)
    return BackgroundCase(
        image=Volume(image, **geometry, metadata=meta),
        tumour=Volume(tumour_mask.astype(np.uint8), **geometry, metadata=meta),
        anatomy=anatomy,
        label=int(label),
        extension=sleeves if label == 1 else np.zeros(image.shape, dtype=bool),
        decoys=sleeves if label == 0 else np.zeros(image.shape, dtype=bool),
        nerves=on_output(nerve_sd < w / 2),
        inserted=on_output(occupied),
        crop_start=tuple(int(v) for v in lo[::-1]),
        site=tuple(float(v) for v in vol.index_to_physical(site[::-1].astype(np.float64))),
    )


def _ball(grid: Grid, radius_mm: float) -> np.ndarray:
    """Voxels of ``grid`` within ``radius_mm`` of the world origin (the site)."""
    x, y, z = grid.axes
    return (x[None, None, :] ** 2 + y[None, :, None] ** 2 + z[:, None, None] ** 2) <= radius_mm ** 2
