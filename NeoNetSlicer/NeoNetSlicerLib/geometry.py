"""MRML geometry <-> neonet_core :class:`Volume`: the one place Slicer's RAS nodes meet the library.

A volume node stores its voxels as a VTK image (numpy view ``[k, j, i]``) and its geometry as the
4x4 ``IJKToRAS`` matrix (columns = i, j, k axes scaled by spacing, in RAS; last column = origin in
RAS). A :class:`Volume` keeps spacing, LPS origin and LPS direction columns. The conversion is
:func:`ijk_to_ras_to_geometry` and its inverse :func:`geometry_to_ijk_to_ras`; both flip RAS/LPS
only through :func:`neonet_core.volume.lps_to_ras`.
"""

from __future__ import annotations

import numpy as np

from neonet_core.volume import Volume, lps_to_ras, ras_to_lps


# --- the conversion (4x4 IJKToRAS <-> spacing, LPS origin, LPS direction) ---------------------------
def ijk_to_ras_to_geometry(ijk_to_ras) -> tuple[tuple, tuple, np.ndarray]:
    """A 4x4 IJKToRAS matrix -> ``(spacing (i, j, k), origin LPS (3,), direction LPS 3x3 columns)``."""
    m = np.asarray(ijk_to_ras, dtype=np.float64).reshape(4, 4)
    axes_ras = m[:3, :3]
    spacing = np.linalg.norm(axes_ras, axis=0)
    if np.any(spacing <= 0) or not np.all(np.isfinite(m)):
        raise ValueError(f"IJKToRAS matrix has a zero or invalid axis: spacing {spacing.tolist()}")
    direction = ras_to_lps(axes_ras / spacing[None, :])
    origin = ras_to_lps(m[:3, 3])
    return tuple(spacing.tolist()), tuple(origin.tolist()), direction


def geometry_to_ijk_to_ras(spacing, origin, direction) -> np.ndarray:
    """Spacing (i, j, k), LPS origin and LPS direction columns -> the 4x4 IJKToRAS matrix."""
    m = np.eye(4)
    m[:3, :3] = lps_to_ras(np.asarray(direction, dtype=np.float64).reshape(3, 3)) * np.asarray(spacing, dtype=np.float64)[None, :]
    m[:3, 3] = lps_to_ras(np.asarray(origin, dtype=np.float64))
    return m


# --- VTK matrix helpers ---------------------------------------------------------------------------
def vtk_to_numpy_matrix(vtk_matrix) -> np.ndarray:
    """A vtkMatrix4x4 -> numpy (4, 4)."""
    return np.array([[vtk_matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def numpy_to_vtk_matrix(matrix):
    """numpy (4, 4) -> a new vtkMatrix4x4."""
    import vtk

    out = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            out.SetElement(r, c, float(matrix[r, c]))
    return out


def node_ijk_to_world(volume_node) -> np.ndarray:
    """The node's IJK -> world RAS matrix (4, 4), including a linear parent transform.

    A non-linear parent transform cannot be expressed as a voxel grid: ValueError ("harden it first").
    """
    import vtk

    ijk_to_ras = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(ijk_to_ras)
    m = vtk_to_numpy_matrix(ijk_to_ras)
    transform = volume_node.GetParentTransformNode()
    if transform is not None:
        if not transform.IsTransformToWorldLinear():
            raise ValueError(f"volume {volume_node.GetName()!r} is under a non-linear transform; harden the transform first")
        to_world = vtk.vtkMatrix4x4()
        transform.GetMatrixTransformToWorld(to_world)
        m = vtk_to_numpy_matrix(to_world) @ m
    return m


# --- nodes <-> Volume -----------------------------------------------------------------------------
def volume_from_node(volume_node, copy: bool = True) -> Volume:
    """A scalar (or labelmap) volume node -> :class:`Volume` in world coordinates.

    The array is ``[k, j, i]`` (a copy unless ``copy=False``, then a view of the node's voxels:
    never write to it). Geometry includes a linear parent transform.
    """
    import vtk.util.numpy_support as ns

    image = volume_node.GetImageData()
    if image is None:
        raise ValueError(f"volume {volume_node.GetName()!r} has no image data")
    if image.GetNumberOfScalarComponents() != 1:
        raise ValueError(f"volume {volume_node.GetName()!r} has {image.GetNumberOfScalarComponents()} components; NeoNet needs a scalar volume")
    dims = image.GetDimensions()  # (i, j, k)
    array = ns.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(dims[::-1])
    if copy:
        array = array.copy()
    spacing, origin, direction = ijk_to_ras_to_geometry(node_ijk_to_world(volume_node))
    return Volume(array, spacing, origin, direction, {"node_id": volume_node.GetID(), "name": volume_node.GetName()})


def update_node_from_volume(volume_node, volume: Volume) -> None:
    """Set ``volume_node``'s voxels (a copy of ``volume.array``) and IJKToRAS from ``volume``."""
    import vtk
    import vtk.util.numpy_support as ns

    array = np.ascontiguousarray(volume.array)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    image = vtk.vtkImageData()
    image.SetDimensions(*array.shape[::-1])
    scalars = ns.numpy_to_vtk(array.ravel(), deep=True)
    image.GetPointData().SetScalars(scalars)
    volume_node.SetIJKToRASMatrix(numpy_to_vtk_matrix(geometry_to_ijk_to_ras(volume.spacing, volume.origin, volume.direction)))
    volume_node.SetAndObserveImageData(image)
