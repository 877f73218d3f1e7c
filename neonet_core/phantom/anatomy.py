"""Abdominal anatomy of one phantom case: body, liver, bile-duct tree, vessels and nerve fibres.

Everything is built in the anatomy frame (mm, LPS: x to the patient's left, y posterior, z superior)
for the design field of view, multiplied by ``scale`` for other fields of view. The result holds
signed-distance maps ``(nz, ny, nx)`` float32 (negative inside) and polylines for the thin parts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neonet_core.phantom.grid import Grid, draw_tube, ellipsoid_sd, empty_sd, resample_polyline, smooth_field


@dataclass
class Tube:
    """A polyline tube: ``points`` ``(N, 3)`` anatomy-frame mm and ``radii`` ``(N,)`` mm."""

    points: np.ndarray
    radii: np.ndarray


@dataclass
class Branch:
    """One branch of a tree and its sub-branches (the first child continues the main path)."""

    tube: Tube
    children: list["Branch"] = field(default_factory=list)

    def tubes(self) -> list[Tube]:
        return [self.tube] + [t for c in self.children for t in c.tubes()]

    def main_path(self) -> Tube:
        """This branch followed by its first child, recursively (points and radii concatenated)."""
        tubes = [self.tube]
        node = self
        while node.children:
            node = node.children[0]
            tubes.append(node.tube)
        return Tube(np.concatenate([tubes[0].points] + [t.points[1:] for t in tubes[1:]]),
                    np.concatenate([tubes[0].radii] + [t.radii[1:] for t in tubes[1:]]))


@dataclass
class Anatomy:
    """Signed distances (mm) of each structure, the hilar duct paths and the nerve fibres."""

    body_sd: np.ndarray  # skin outline
    wall_sd: np.ndarray  # inner edge of the subcutaneous fat (abdominal wall muscle starts)
    cavity_sd: np.ndarray  # inner edge of the muscle wall
    organs: list[tuple[np.ndarray, str]]  # other organs (sd, tissue name), drawn before the liver
    liver_sd: np.ndarray
    duct_sd: np.ndarray
    vessel_sd: np.ndarray  # portal and hepatic veins, IVC (labelled as vessels)
    nerve_sd: np.ndarray  # nerve fibres (never labelled)
    duct_paths: list[Tube]  # hilar paths: common duct (reversed) + right / left duct + first children
    nerves: list[tuple[Tube, int]]  # nerve polylines and the index of the duct path each follows
    hilum: np.ndarray  # (3,) mm
    liver_texture: np.ndarray  # smooth field for liver heterogeneity


def _cross(a, b) -> np.ndarray:
    """Cross product of two 3-vectors (np.cross is slow for single vectors)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _rotate_towards(rng: np.random.Generator, direction: np.ndarray, degrees: float) -> np.ndarray:
    """``direction`` turned by ``degrees`` about a random perpendicular axis."""
    perp = _cross(direction, rng.normal(size=3))
    perp /= np.linalg.norm(perp)
    a = np.deg2rad(degrees)
    out = np.cos(a) * direction + np.sin(a) * perp
    return out / np.linalg.norm(out)


def curved_path(rng: np.random.Generator, start, direction, length: float, wiggle_deg: float = 12.0, step: float = 4.0):
    """A gently curving polyline ``(N, 3)`` from ``start`` along ``direction`` for ``length`` mm."""
    n = max(int(np.ceil(length / step)), 2)
    d = np.asarray(direction, dtype=np.float64)
    d /= np.linalg.norm(d)
    points = [np.asarray(start, dtype=np.float64)]
    for _ in range(n):
        d = _rotate_towards(rng, d, rng.uniform(0, wiggle_deg))
        points.append(points[-1] + d * length / n)
    return np.array(points)


def grow_tree(rng, start, direction, length, radius, depth, spread=(30.0, 55.0)) -> Branch:
    """A bifurcating tree: each branch splits into two children ``depth`` times (radius x0.75)."""
    pts = curved_path(rng, start, direction, length)
    branch = Branch(Tube(pts, np.linspace(radius, 0.9 * radius, len(pts))))
    if depth > 0:
        end_dir = pts[-1] - pts[-2]
        end_dir /= np.linalg.norm(end_dir)
        for _ in range(2):
            child_dir = _rotate_towards(rng, end_dir, rng.uniform(*spread))
            branch.children.append(
                grow_tree(rng, pts[-1], child_dir, length * rng.uniform(0.7, 0.9), radius * 0.75, depth - 1, spread)
            )
    return branch


def offset_tree(branch: Branch, prefer: np.ndarray, gap: float, radius_factor: float, start=None) -> Branch:
    """A companion tree (e.g. portal vein beside a bile duct): each vertex shifted sideways, towards
    ``prefer`` projected perpendicular to the local direction, by duct radius + vessel radius + ``gap``."""
    pts, radii = branch.tube.points, branch.tube.radii
    tangents = np.gradient(pts, axis=0)
    tangents /= np.linalg.norm(tangents, axis=1, keepdims=True)
    side = prefer[None, :] - (tangents @ prefer)[:, None] * tangents
    side /= np.linalg.norm(side, axis=1, keepdims=True)
    new_radii = radii * radius_factor
    new_pts = pts + side * (radii + new_radii + gap)[:, None]
    if start is not None:
        new_pts[0] = start
    out = Branch(Tube(new_pts, new_radii))
    out.children = [offset_tree(c, prefer, gap, radius_factor, start=new_pts[-1]) for c in branch.children]
    return out


def nerve_along(rng: np.random.Generator, path: Tube, hilum: np.ndarray, scale: float = 1.0, step: float = 3.0) -> Tube:
    """A thin nerve fibre (radius 0.5-0.75 mm) running outside a duct/vessel wall along ``path``.

    The side it runs on turns slowly around the path. Near the ``hilum`` it hugs the wall (gap
    1-3 mm x ``scale``); further out it drifts away from the path (14-27 degrees, up to 12 mm), as
    hilar plexus fibres spread into the liver.
    """
    pts, s = resample_polyline(path.points, step)
    s_orig = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path.points, axis=0), axis=1))])
    wall = np.interp(s, s_orig, path.radii)
    s_hilum = s[np.argmin(np.linalg.norm(pts - hilum, axis=1))]
    spread = np.clip(np.abs(s - s_hilum) - rng.uniform(0.0, 6.0) * scale, 0.0, None) * rng.uniform(0.25, 0.5)
    tangents = np.gradient(pts, axis=0)
    tangents /= np.linalg.norm(tangents, axis=1, keepdims=True)
    side = _cross(tangents[0], rng.normal(size=3))
    gap = rng.uniform(1.0, 3.0) * scale
    offsets = []
    for t, w, away in zip(tangents, wall, np.minimum(spread, 12.0 * scale)):
        side = side - (side @ t) * t  # parallel transport: stay perpendicular to the path
        side = _rotate_about(side / np.linalg.norm(side), t, rng.normal(0, 7.0))
        gap = float(np.clip(gap + rng.normal(0, 0.3) * scale, 1.0 * scale, 3.0 * scale))
        offsets.append(side * (w + gap + away))
    nerve_pts = pts + np.array(offsets)
    return Tube(nerve_pts, np.full(len(nerve_pts), rng.uniform(0.5, 0.75)))


def _rotate_about(v: np.ndarray, axis: np.ndarray, degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    return v * np.cos(a) + _cross(axis, v) * np.sin(a) + axis * (axis @ v) * (1 - np.cos(a))


def _circle_sd(grid: Grid, cx: float, cy: float, r: float) -> np.ndarray:
    ax, ay, _ = grid.anatomy_coords()
    return np.sqrt((ax - cx) ** 2 + (ay - cy) ** 2) - r


def build_anatomy(rng: np.random.Generator, grid: Grid, scale: float) -> Anatomy:
    """Draw one random abdomen on ``grid``; ``scale`` multiplies every design length (not nerve radii)."""
    u = rng.uniform
    s = scale
    ax, ay, az = grid.anatomy_coords()

    # body outline and subcutaneous fat
    a, b, cy = u(82, 92) * s, u(62, 72) * s, u(0, 8) * s
    body_shape = smooth_field(rng, grid, 60.0 * s) * (2.5 * s)
    q = np.sqrt((ax / a) ** 2 + ((ay - cy) / b) ** 2)
    body_sd = (q - 1.0) * b + body_shape
    fat = u(6, 18) * s
    muscle = u(4, 7) * s
    wall_sd = (np.sqrt((ax / (a - fat)) ** 2 + ((ay - cy) / (b - fat)) ** 2) - 1.0) * (b - fat) + body_shape
    cavity_sd = (np.sqrt((ax / (a - fat - muscle)) ** 2 + ((ay - cy) / (b - fat - muscle)) ** 2) - 1.0) * (b - fat - muscle) + body_shape

    # other organs: spine, aorta, spleen, left kidney, bowel loops
    organs = [
        (_circle_sd(grid, u(-3, 3) * s, cy + b * 0.62, u(13, 16) * s), "bone"),
        (_circle_sd(grid, u(12, 20) * s, cy + b * 0.35, u(8, 11) * s), "aorta"),
        (ellipsoid_sd(grid, np.array([u(55, 65), u(20, 30), u(5, 25)]) * s, np.array([u(15, 20), u(25, 32), u(35, 45)]) * s), "spleen"),
        (ellipsoid_sd(grid, np.array([u(40, 50), u(25, 35), u(-45, -25)]) * s, np.array([u(18, 24), u(15, 20), u(30, 40)]) * s), "kidney"),
    ]
    for _ in range(rng.integers(2, 5)):
        centre = np.array([u(5, 60), u(-45, 0), u(-55, 10)]) * s
        organs.append((ellipsoid_sd(grid, centre, np.array([u(10, 25), u(10, 20), u(12, 30)]) * s), "bowel"))
    organs = [(np.maximum(sd, cavity_sd), name) for sd, name in organs]

    # liver: union of three ellipsoids, smoothly deformed, kept inside the abdominal cavity
    c = np.array([u(-30, -20), u(-6, 6), u(0, 10)]) * s
    lobes = [
        (c, np.array([u(50, 58), u(44, 52), u(52, 62)]) * s),
        (c + np.array([u(35, 45), u(-20, -10), u(4, 12)]) * s, np.array([u(32, 42), u(18, 26), u(24, 32)]) * s),
        (c + np.array([u(10, 20), u(10, 20), u(-10, 0)]) * s, np.array([u(16, 24), u(15, 21), u(18, 26)]) * s),
    ]
    liver_sd = np.minimum.reduce([ellipsoid_sd(grid, lc, la) for lc, la in lobes])
    liver_sd += smooth_field(rng, grid, 35.0 * s) * (4.0 * s)
    liver_sd = np.maximum(liver_sd, cavity_sd + 2.0 * s)

    # bile-duct tree from the hilum: common hepatic duct downwards, right and left ducts into the liver
    hilum = c + np.array([u(18, 26), u(2, 10), u(-22, -16)]) * s
    trunk_pts = curved_path(rng, hilum, [u(0.1, 0.4), u(-0.3, 0.1), -1.0], u(30, 40) * s)
    trunk = Branch(Tube(trunk_pts, np.full(len(trunk_pts), u(2.8, 3.6) * s)))
    # (upstream of a perihilar tumour the intrahepatic ducts are dilated, so they are drawn wide)
    r_lobar = u(2.6, 3.4) * s
    right = grow_tree(rng, hilum, [-1.0, u(-0.1, 0.3), u(0.3, 0.6)], u(24, 32) * s, r_lobar, depth=3)
    left = grow_tree(rng, hilum, [1.0, u(-0.6, -0.2), u(0.2, 0.5)], u(28, 36) * s, r_lobar, depth=3)

    def reversed_tube(t: Tube) -> Tube:
        return Tube(t.points[::-1].copy(), t.radii[::-1].copy())

    duct_paths = []
    for lobar in (right, left):
        main = lobar.main_path()
        rt = reversed_tube(trunk.tube)
        duct_paths.append(Tube(np.concatenate([rt.points, main.points[1:]]), np.concatenate([rt.radii, main.radii[1:]])))

    # portal vein beside the ducts (posterior side), hepatic veins and IVC from the posterior dome
    prefer = np.array([u(-0.3, 0.3), 1.0, u(-0.3, 0.3)])
    gap = u(1.0, 2.5) * s
    portal = [offset_tree(t, prefer, gap, 1.4) for t in (trunk, right, left)]
    ivc_x, ivc_y = c[0] + u(22, 30) * s, c[1] + u(26, 34) * s
    ivc_top = np.array([ivc_x, ivc_y, c[2] + u(30, 40) * s])
    hepatic = [
        grow_tree(rng, ivc_top, d, u(40, 55) * s, u(3.0, 4.0) * s, depth=1)
        for d in ([-1.0, -0.3, -0.2], [-0.2, -1.0, -0.3], [0.8, -0.8, -0.1])
    ]

    duct_sd, vessel_sd = empty_sd(grid), empty_sd(grid)
    duct_in, vessel_in = empty_sd(grid), empty_sd(grid)
    draw_tube(grid, duct_sd, trunk.tube.points, trunk.tube.radii)
    draw_tube(grid, vessel_sd, portal[0].tube.points, portal[0].tube.radii)
    for tree in (right, left):
        for t in tree.tubes():
            draw_tube(grid, duct_in, t.points, t.radii)
    for tree in portal[1:] + hepatic:
        for t in tree.tubes():
            draw_tube(grid, vessel_in, t.points, t.radii)
    # intrahepatic branches stop at the liver surface; the extrahepatic trunks do not
    duct_sd = np.minimum(duct_sd, np.maximum(duct_in, liver_sd + 1.0))
    vessel_sd = np.minimum(vessel_sd, np.maximum(vessel_in, liver_sd + 1.0))
    vessel_sd = np.minimum(vessel_sd, np.maximum(_circle_sd(grid, ivc_x, ivc_y, u(9, 11) * s), az - ivc_top[2]))

    # nerve fibres along the hilar ducts and the portal vein (2-3 on each duct path, 1-2 on the portal)
    nerves = []
    for k, path in enumerate(duct_paths):
        for _ in range(rng.integers(2, 4)):
            nerves.append((nerve_along(rng, path, hilum, s), k))
    for k, lobar in enumerate(portal[1:]):
        main = lobar.main_path()
        pt = reversed_tube(portal[0].tube)
        path = Tube(np.concatenate([pt.points, main.points[1:]]), np.concatenate([pt.radii, main.radii[1:]]))
        for _ in range(rng.integers(1, 3)):
            nerves.append((nerve_along(rng, path, hilum, s), -1))
    nerve_sd = empty_sd(grid)
    for tube, _ in nerves:
        draw_tube(grid, nerve_sd, tube.points, tube.radii)

    return Anatomy(
        body_sd=body_sd, wall_sd=wall_sd, cavity_sd=cavity_sd, organs=organs, liver_sd=liver_sd,
        duct_sd=duct_sd, vessel_sd=vessel_sd, nerve_sd=nerve_sd, duct_paths=duct_paths, nerves=nerves,
        hilum=hilum, liver_texture=smooth_field(rng, grid, 12.0 * s),
    )
