"""The perihilar tumour, its PNI extensions along nerve fibres, and look-alike confounders.

- The tumour is an elongated, lobulated mass around a hilar duct path (plus an eccentric lobe).
- A PNI extension is a thin tumour-intensity sleeve following a nerve fibre outward from the point
  where the fibre leaves the tumour; it is NOT part of the tumour mask.
- A decoy (background cohorts, PNI- cases) is the same sleeve starting a gap beyond the tumour surface,
  so it does not touch the tumour.
- Confounders (every case, the same distribution whatever the label): small dark vessels and bright
  strands touching the tumour, so that "something thin leaves the tumour" is no giveaway.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neonet_core.phantom.anatomy import Anatomy, Tube, curved_path
from neonet_core.phantom.grid import Grid, draw_tube, empty_sd, resample_polyline, smooth_field
from neonet_core.phantom.params import PniSettings, uniform


@dataclass
class Tumour:
    """The main mass: signed distance ``sd`` ``(nz, ny, nx)`` (clipped to the liver), its ``mask``,
    the duct path it grows along (resampled ``points`` ``(N, 3)``, ``radii`` ``(N,)`` mass radius)."""

    sd: np.ndarray
    mask: np.ndarray
    path_index: int
    points: np.ndarray
    radii: np.ndarray
    texture: np.ndarray


def build_tumour(rng: np.random.Generator, grid: Grid, anatomy: Anatomy, scale: float) -> Tumour:
    """An elongated mass along a hilar duct path (right duct 60 %, left 40 %), centred near the hilum."""
    k = 0 if rng.uniform() < 0.6 else 1
    pts, s = resample_polyline(anatomy.duct_paths[k].points, 1.5 * scale)
    s_hilum = s[np.argmin(np.linalg.norm(pts - anatomy.hilum, axis=1))]
    centre = s_hilum + rng.uniform(-6, 10) * scale
    return grow_tumour(rng, grid, pts, s, centre, anatomy.liver_sd, scale, k)


def grow_tumour(rng: np.random.Generator, grid: Grid, pts: np.ndarray, s: np.ndarray, centre: float,
                host_sd: np.ndarray | None, scale: float, path_index: int = 0) -> Tumour:
    """An elongated, lobulated mass around the polyline ``pts`` ``(N, 3)`` (arc length ``s`` ``(N,)``,
    anatomy-frame mm), centred at arc length ``centre``; kept inside ``host_sd`` (signed distance of the
    organ it grows in, or None). ``scale`` multiplies its length, radius and lobulation."""
    half = rng.uniform(9, 16) * scale
    r_max = rng.uniform(8, 12) * scale
    inside = np.abs(s - centre) <= half
    pts, s = pts[inside], s[inside]
    radii = r_max * np.sqrt(np.clip(1.0 - ((s - centre) / half) ** 2, 0.02, 1.0))
    sd = empty_sd(grid)
    draw_tube(grid, sd, pts, radii)

    # an eccentric lobe: tumours rarely sit symmetrically around the duct
    i = rng.integers(len(pts) // 4, max(3 * len(pts) // 4, len(pts) // 4 + 1))
    side = np.cross(pts[min(i + 1, len(pts) - 1)] - pts[max(i - 1, 0)], rng.normal(size=3))
    side /= np.linalg.norm(side)
    lobe_r = rng.uniform(0.5, 0.8) * radii[i]
    lobe = pts[i] + side * rng.uniform(0.3, 0.7) * radii[i]
    draw_tube(grid, sd, np.stack([lobe, lobe + side * 0.1]), np.array([lobe_r, lobe_r]))

    # lobulated margins (every case: a confounder of shape), then keep it inside the host organ
    sd += smooth_field(rng, grid, 7.0 * scale) * (rng.uniform(0.08, 0.25) * r_max)
    if host_sd is not None:
        sd = np.maximum(sd, host_sd)
    return Tumour(sd, sd <= 0, path_index, pts, radii, smooth_field(rng, grid, 5.0 * scale))


@dataclass
class Strand:
    """A thin structure drawn with one intensity: ``sd`` canvas and ``tissue`` value (liver = 1)."""

    sd: np.ndarray
    tissue: float


def build_confounders(rng: np.random.Generator, grid: Grid, tumour: Tumour, scale: float) -> list[Strand]:
    """1-3 small vessels (dark) or fibrous strands (bright) starting inside the tumour and leaving it."""
    strands = []
    for _ in range(rng.integers(1, 4)):
        i = rng.integers(0, len(tumour.points))
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        start = tumour.points[i] + direction * 0.5 * tumour.radii[i]
        length = tumour.radii[i] + rng.uniform(6, 20) * scale
        points = curved_path(rng, start, direction, length, wiggle_deg=15.0, step=3.0)
        radius = rng.uniform(0.7, 1.5)
        sd = empty_sd(grid)
        draw_tube(grid, sd, points, np.linspace(radius, 0.7 * radius, len(points)))
        tissue = rng.uniform(0.12, 0.3) if rng.uniform() < 0.65 else rng.uniform(1.1, 1.25)
        strands.append(Strand(sd, tissue))
    return strands


def nerve_exits(grid: Grid, nerves: list[tuple[Tube, int]], tumour_mask: np.ndarray, step: float = 0.5):
    """Where nerve fibres leave the tumour: a list of ``(points (M, 3), start)`` polylines that begin at an
    exit and run outward along the fibre (``start`` is the index of the exit point)."""
    exits = []
    for tube, _ in nerves:
        pts, _ = resample_polyline(tube.points, step)
        ijk = np.rint((grid.to_world(pts) - grid.origin) / grid.spacing_arr).astype(int)
        valid = np.all((ijk >= 0) & (ijk < grid.size_ijk), axis=1)
        inside = np.zeros(len(pts), dtype=bool)
        inside[valid] = tumour_mask[ijk[valid, 2], ijk[valid, 1], ijk[valid, 0]]
        for i in np.flatnonzero(inside[:-1] & ~inside[1:]):  # leaving forwards
            exits.append((pts, int(i)))
        for i in np.flatnonzero(~inside[:-1] & inside[1:]):  # leaving backwards
            exits.append((pts[::-1], len(pts) - 2 - int(i)))
    return exits


def build_extensions(rng: np.random.Generator, grid: Grid, exits: list, pni: PniSettings, gap_mm=None):
    """PNI: tumour spreading along 1..n nerve fibres outward from the tumour surface (``exits`` from
    :func:`nerve_exits`).

    Returns ``(sd, contrast)``: the extensions' signed-distance canvas (a thin sleeve, radius tapering
    from the root to the nerve) and how close their intensity is to the tumour's (1 = same).

    ``gap_mm`` (low, high) draws look-alike *decoys* instead: the same sleeves (count, length, radius,
    contrast), but starting that far beyond the exit along the fibre, detached from the tumour.
    """
    sd = empty_sd(grid)
    count = int(rng.integers(pni.count[0], pni.count[1] + 1))
    step = 0.5
    for e in rng.permutation(len(exits))[:count]:
        pts, i = exits[e]
        if gap_mm is None:  # root just inside the tumour so the sleeve is attached; length from the exit
            root, start = max(i - int(1.5 / step), 0), i
        else:
            root = start = min(i + int(uniform(rng, gap_mm) / step), len(pts) - 1)
        length = uniform(rng, pni.length_mm)
        end = min(start + int(length / step) + 1, len(pts))
        if end - root < 3:
            continue
        keep = np.unique(np.r_[root:end:4, end - 1])  # vertices every 2 mm are plenty
        r0 = uniform(rng, pni.radius_mm)
        draw_tube(grid, sd, pts[keep], np.linspace(r0, max(0.5 * r0, 0.6), len(keep)))
    return sd, uniform(rng, pni.contrast)


def radial_fibres(rng: np.random.Generator, tumour: Tumour, count: int, length_mm: tuple[float, float]) -> list[Tube]:
    """``count`` thin nerve fibres (radius 0.5-0.75 mm) that start in the tumour core and run outward in
    random directions, gently curving, for ``length_mm`` (low, high): a nerve plexus around the mass
    when the background has no nerves of the phantom's own anatomy."""
    fibres = []
    for _ in range(count):
        i = rng.integers(0, len(tumour.points))
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        points = curved_path(rng, tumour.points[i], direction, uniform(rng, length_mm), wiggle_deg=12.0, step=3.0)
        fibres.append(Tube(points, np.full(len(points), rng.uniform(0.5, 0.75))))
    return fibres
