"""The phantom's voxel grid and its drawing primitives (all float32, all in mm).

Shapes follow :class:`~neonet_core.volume.Volume`: arrays are ``(nz, ny, nx)``, points are
``(x, y, z)`` LPS mm. Content is drawn in an *anatomy frame*, rotated by a small angle against the
grid about its centre: the volume's direction stays identity while the anatomy is slightly tilted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The field of view the anatomy is designed for (the default 128 x 128 x 40 grid at 1.5 x 1.5 x 3 mm).
DESIGN_FOV_MM = np.array([192.0, 192.0, 120.0])


@dataclass
class Grid:
    """A voxel grid with identity direction, centred on the origin of the anatomy frame.

    ``shape`` is ``(nz, ny, nx)``; ``spacing`` is ``(si, sj, sk)`` mm; ``rotation`` (3x3) maps
    anatomy-frame vectors to grid (world) vectors. ``origin`` (world mm of voxel ``(0, 0, 0)``) defaults
    to centring the grid on the world origin; a sub-grid of a larger volume passes its own.
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    rotation: np.ndarray
    origin: np.ndarray | None = None

    def __post_init__(self):
        self.size_ijk = np.array(self.shape[::-1])
        self.spacing_arr = np.asarray(self.spacing, dtype=np.float64)
        if self.origin is None:
            self.origin = -(self.size_ijk - 1) / 2.0 * self.spacing_arr
        else:
            self.origin = np.asarray(self.origin, dtype=np.float64).reshape(3)
        # 1D world coordinates of voxel centres along x (i), y (j), z (k)
        self.axes = [(self.origin[a] + self.spacing_arr[a] * np.arange(self.size_ijk[a])).astype(np.float32) for a in range(3)]
        self.pv_width = float(min(self.spacing[:2]))  # partial-volume ramp width (mm) of soft edges
        self._frame = None

    @property
    def fov_mm(self) -> np.ndarray:
        return self.size_ijk * self.spacing_arr

    def anatomy_coords(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Anatomy-frame coordinates ``(ax, ay, az)`` of every voxel centre, each ``(nz, ny, nx)`` float32."""
        if self._frame is None:
            x, y, z = self.axes
            rt = self.rotation.T.astype(np.float32)  # world -> anatomy
            self._frame = tuple(
                rt[r, 0] * x[None, None, :] + rt[r, 1] * y[None, :, None] + rt[r, 2] * z[:, None, None] for r in range(3)
            )
        return self._frame

    def to_world(self, points: np.ndarray) -> np.ndarray:
        """Anatomy-frame points ``(..., 3)`` -> world points ``(..., 3)``."""
        return np.asarray(points, dtype=np.float64) @ self.rotation.T

    def bbox(self, lo_world: np.ndarray, hi_world: np.ndarray) -> tuple[slice, slice, slice] | None:
        """Array slices ``(z, y, x)`` of the voxels whose centres lie in the world box, or None if empty."""
        lo = np.ceil((lo_world - self.origin) / self.spacing_arr).astype(int)
        hi = np.floor((hi_world - self.origin) / self.spacing_arr).astype(int) + 1
        lo, hi = np.maximum(lo, 0), np.minimum(hi, self.size_ijk)
        if np.any(hi <= lo):
            return None
        return slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0])


def rotation_matrix(rng: np.random.Generator, max_degrees: float) -> np.ndarray:
    """A random rotation of at most ``max_degrees`` about a random axis (Rodrigues)."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.deg2rad(rng.uniform(-max_degrees, max_degrees))
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def smooth_field(rng: np.random.Generator, grid: Grid, cell_mm: float) -> np.ndarray:
    """A smooth random field ``(nz, ny, nx)`` float32, mean ~0, std ~1, correlation length ~``cell_mm``.

    Gaussian-weighted interpolation of random node values on a coarse lattice, done separably
    (three small matrix products), so it costs about as much as one pass over the volume.
    """
    mats = []
    for axis_coords in grid.axes:
        lo, hi = float(axis_coords[0]) - cell_mm, float(axis_coords[-1]) + cell_mm
        nodes = np.arange(lo, hi + cell_mm, cell_mm, dtype=np.float32)
        w = np.exp(-0.5 * ((axis_coords[:, None] - nodes[None, :]) / (0.6 * cell_mm)) ** 2)
        mats.append((w / w.sum(axis=1, keepdims=True)).astype(np.float32))
    ax, ay, az = mats
    coarse = rng.standard_normal((az.shape[1], ay.shape[1], ax.shape[1])).astype(np.float32)
    field = np.tensordot(az, coarse, axes=(1, 0))  # (nz, cy, cx): small steps first
    field = ay[None] @ field  # (nz, ny, cx)
    field = (field.reshape(-1, ax.shape[1]) @ ax.T).reshape(len(az), len(ay), len(ax))  # one GEMM
    field -= field.mean()
    field /= max(float(field.std()), 1e-6)
    return field


def soft(sd: np.ndarray, width: float) -> np.ndarray:
    """Partial-volume occupancy in [0, 1] from a signed distance (mm, negative inside)."""
    return np.clip(0.5 - sd / width, 0.0, 1.0)


def ellipsoid_sd(grid: Grid, centre, semi_axes, pad: float = 15.0) -> np.ndarray:
    """Approximate signed distance (mm) to an axis-aligned (anatomy frame) ellipsoid, ``(nz, ny, nx)``.

    Computed only in a box reaching ``pad`` mm beyond the ellipsoid; elsewhere it is a large value.
    """
    c = np.asarray(centre, dtype=np.float32)
    s = np.asarray(semi_axes, dtype=np.float32)
    sd = empty_sd(grid)
    world_c = grid.to_world(c)
    box = grid.bbox(world_c - float(s.max()) - pad, world_c + float(s.max()) + pad)
    if box is None:
        return sd
    ax, ay, az = (a[box] for a in grid.anatomy_coords())
    q = np.sqrt(((ax - c[0]) / s[0]) ** 2 + ((ay - c[1]) / s[1]) ** 2 + ((az - c[2]) / s[2]) ** 2)
    sd[box] = (q - 1.0) * float(s.min())
    return sd


def draw_tube(grid: Grid, sd: np.ndarray, points: np.ndarray, radii: np.ndarray) -> None:
    """Draw a polyline tube into ``sd`` in place: ``sd = min(sd, distance - radius)``.

    ``points`` ``(N, 3)`` anatomy-frame mm, ``radii`` ``(N,)`` mm (linearly interpolated along each
    segment). Only a padded bounding box of each segment is touched, so thin tubes are cheap.
    """
    world = grid.to_world(points)
    pad = grid.pv_width + 0.5
    x, y, z = grid.axes
    for a, b, ra, rb in zip(world[:-1], world[1:], radii[:-1], radii[1:]):
        reach = max(ra, rb) + pad
        box = grid.bbox(np.minimum(a, b) - reach, np.maximum(a, b) + reach)
        if box is None:
            continue
        zs, ys, xs = box
        dx, dy, dz = x[xs][None, None, :] - a[0], y[ys][None, :, None] - a[1], z[zs][:, None, None] - a[2]
        d = (b - a).astype(np.float32)
        length2 = max(float(d @ d), 1e-9)
        t = np.clip((dx * d[0] + dy * d[1] + dz * d[2]) / length2, 0.0, 1.0)
        dist = np.sqrt((dx - t * d[0]) ** 2 + (dy - t * d[1]) ** 2 + (dz - t * d[2]) ** 2)
        np.minimum(sd[box], dist - (ra + t * (rb - ra)), out=sd[box])


def empty_sd(grid: Grid) -> np.ndarray:
    """A signed-distance canvas with nothing drawn (large positive everywhere)."""
    return np.full(grid.shape, 1e3, dtype=np.float32)


def resample_polyline(points: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Points every ``step`` mm along a polyline ``(N, 3)``; returns ``(points (M, 3), arc length (M,))``."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(int(np.ceil(s[-1] / step)), 1) + 1
    t = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(t, s, points[:, a]) for a in range(3)], axis=1), t
