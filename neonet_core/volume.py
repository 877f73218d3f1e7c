"""One geometry type for the whole library.

Conventions (the same as SimpleITK/ITK, so files map 1:1):
- ``array`` is indexed ``[k, j, i]`` (slice, row, column), i.e. shape ``(nz, ny, nx)``.
- ``spacing`` is ``(si, sj, sk)`` in mm, along the i, j, k voxel axes.
- ``origin`` is the physical position (mm, LPS) of the centre of voxel ``(i, j, k) = (0, 0, 0)``.
- ``direction`` is a 3x3 matrix whose *columns* are the unit vectors of the i, j, k axes in LPS.

Physical point of a continuous index ``(i, j, k)``: ``origin + direction @ (spacing * ijk)``.
Slicer's RAS meets LPS only in :func:`lps_to_ras` / :func:`ras_to_lps` (a sign flip of x and y).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def lps_to_ras(points: np.ndarray) -> np.ndarray:
    """Convert LPS points or direction columns ``(..., 3)`` (or a 3x3 matrix of column vectors) to RAS."""
    points = np.asarray(points, dtype=np.float64)
    if points.shape == (3, 3):
        return LPS_TO_RAS @ points
    return points * np.array([-1.0, -1.0, 1.0])


ras_to_lps = lps_to_ras  # the flip is its own inverse


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D array with its physical geometry (see module docstring for conventions)."""

    array: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.array.ndim != 3:
            raise ValueError(f"Volume needs a 3D array, got shape {self.array.shape}")
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        object.__setattr__(self, "origin", tuple(float(o) for o in self.origin))
        object.__setattr__(self, "direction", np.asarray(self.direction, dtype=np.float64).reshape(3, 3))

    # --- geometry -------------------------------------------------------------------------
    @property
    def size_ijk(self) -> tuple[int, int, int]:
        """Number of voxels along (i, j, k)."""
        return tuple(int(n) for n in self.array.shape[::-1])

    def index_to_physical(self, ijk: np.ndarray) -> np.ndarray:
        """Continuous indices ``(..., 3)`` in (i, j, k) order -> LPS points ``(..., 3)``."""
        ijk = np.asarray(ijk, dtype=np.float64)
        return ijk @ (self.direction * np.asarray(self.spacing)[None, :]).T + np.asarray(self.origin)

    def physical_to_index(self, points: np.ndarray) -> np.ndarray:
        """LPS points ``(..., 3)`` -> continuous (i, j, k) indices ``(..., 3)``."""
        points = np.asarray(points, dtype=np.float64)
        inv = np.linalg.inv(self.direction * np.asarray(self.spacing)[None, :])
        return (points - np.asarray(self.origin)) @ inv.T

    def corners_physical(self) -> np.ndarray:
        """The 8 outer corners (voxel edges, not centres) of the volume in LPS, shape (8, 3)."""
        n = np.asarray(self.size_ijk, dtype=np.float64)
        lo, hi = -0.5 * np.ones(3), n - 0.5
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
        return self.index_to_physical(corners)

    def same_grid(self, other: "Volume", tol: float = 1e-4) -> bool:
        """True when both volumes share shape, spacing, origin and direction (within ``tol`` mm)."""
        return (
            self.array.shape == other.array.shape
            and np.allclose(self.spacing, other.spacing, atol=tol)
            and np.allclose(self.origin, other.origin, atol=tol)
            and np.allclose(self.direction, other.direction, atol=tol)
        )

    def with_array(self, array: np.ndarray, **metadata) -> "Volume":
        """A new Volume on the same grid holding ``array`` (same shape required)."""
        if array.shape != self.array.shape:
            raise ValueError(f"array shape {array.shape} does not match grid {self.array.shape}")
        return Volume(array, self.spacing, self.origin, self.direction, {**self.metadata, **metadata})

    # --- SimpleITK bridge -------------------------------------------------------------------
    def to_sitk(self):
        """A SimpleITK image with the same voxels and geometry."""
        import SimpleITK as sitk

        array = self.array.astype(np.uint8) if self.array.dtype == bool else self.array
        image = sitk.GetImageFromArray(np.ascontiguousarray(array))
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(tuple(self.direction.flatten()))
        return image

    @classmethod
    def from_sitk(cls, image, **metadata) -> "Volume":
        """Build a Volume from a 3D SimpleITK image (the array is a copy, indexed [k, j, i])."""
        import SimpleITK as sitk

        return cls(
            sitk.GetArrayFromImage(image),
            image.GetSpacing(),
            image.GetOrigin(),
            np.asarray(image.GetDirection()).reshape(3, 3),
            metadata,
        )
