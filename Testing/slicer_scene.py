"""A real MRML scene from the slicer-core wheel, outside the Slicer application (pytest fixtures).

``mrml`` builds a fresh scene with an application logic holding the Colors, Volumes, Segmentations,
Markups, Tables and Sequences logics, the way Slicer wires them at start-up
(:func:`NeoNetSlicerLib.scene.standalone_scene`); ``slicer.mrmlScene`` points at it. Import the fixtures into a test module: ``from slicer_scene import mrml, load_volume``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULE_DIR = ROOT / "NeoNetSlicer"
for path in (ROOT, MODULE_DIR):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is needed for the MRML tests")
import vtk  # noqa: E402  (after the slicer import, which loads VTK)

@dataclass
class MRML:
    scene: object
    app_logic: object
    logics: dict

    def load_volume(self, path, name: str | None = None, labelmap: bool = False):
        """Load a volume file through vtkSlicerVolumesLogic (Slicer's own reader path)."""
        node = self.logics["Volumes"].AddArchetypeVolume(str(path), name or Path(path).name.split(".")[0], 1 if labelmap else 0)
        if node is None:
            raise OSError(f"{path}: Slicer could not load the volume")
        return node

    def load_segmentation(self, labelmap_path, name: str = "tumour"):
        """A segmentation node made from a labelmap file (one segment per label)."""
        labelmap = self.load_volume(labelmap_path, name + "_labelmap", labelmap=True)
        segmentation = self.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
        assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, segmentation)
        self.scene.RemoveNode(labelmap)
        return segmentation

    def add_slice_views(self, names=("Red", "Yellow", "Green")):
        """Slice composite nodes like those of the three slice views of Slicer's layout."""
        out = []
        for name in names:
            node = slicer.vtkMRMLSliceCompositeNode()
            node.SetLayoutName(name)
            out.append(self.scene.AddNode(node))
        return out


def make_scene() -> MRML:
    """A new scene wired like Slicer's (NeoNetSlicerLib.scene.standalone_scene: the code the batch script uses)."""
    from NeoNetSlicerLib.scene import standalone_scene

    context = standalone_scene()
    return MRML(context.scene, context.app_logic, context.logics)


@pytest.fixture
def mrml():
    """A fresh MRML scene with Slicer's core module logics (see module docstring)."""
    env = make_scene()
    yield env
    env.scene.Clear(1)


def node_matrix(node) -> np.ndarray:
    """A volume node's IJKToRAS as numpy (4, 4)."""
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


def oblique_direction(deg_x: float = 20.0, deg_z: float = 35.0) -> np.ndarray:
    """A rotation (3x3, columns = axes) tilted about x then z: an oblique acquisition."""
    ax, az = np.radians(deg_x), np.radians(deg_z)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ rx
