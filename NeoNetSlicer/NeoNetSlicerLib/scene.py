"""The MRML scene NeoNet works in, inside Slicer or outside it (slicer-core wheel), and file loading. No Qt.

Inside Slicer the application's scene and module logics are used. Outside (plain Python with the
``slicer-core`` wheel), :func:`standalone_scene` wires a scene the way Slicer does at start-up:
an application logic holding the Colors, Volumes, Segmentations, Markups, Tables, Sequences and
Subject hierarchy logics.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MODULE_LOGICS = {
    "Colors": "vtkSlicerColorLogic",
    "Volumes": "vtkSlicerVolumesLogic",
    "Segmentations": "vtkSlicerSegmentationsModuleLogic",
    "Markups": "vtkSlicerMarkupsLogic",
    "Tables": "vtkSlicerTablesLogic",
    "Sequences": "vtkSlicerSequencesLogic",
    "SubjectHierarchy": "vtkSlicerSubjectHierarchyModuleLogic",
}


@dataclass
class SceneContext:
    """A scene with its application logic (``logics`` keeps the module logics of a standalone scene alive)."""

    scene: object
    app_logic: object
    logics: dict


def in_slicer_app() -> bool:
    import slicer

    return getattr(slicer, "app", None) is not None


def standalone_scene(quiet: bool = True) -> SceneContext:
    """A new scene with Slicer's core module logics, for use outside the application."""
    import slicer
    import vtk

    # Wiring the logics without Slicer's home folder logs "default color files not loaded": expected here.
    vtk.vtkLogger.SetStderrVerbosity(vtk.vtkLogger.VERBOSITY_OFF if quiet else vtk.vtkLogger.VERBOSITY_WARNING)
    scene = slicer.vtkMRMLScene()
    slicer.mrmlScene = scene
    app_logic = slicer.vtkSlicerApplicationLogic()
    app_logic.SetMRMLScene(scene)
    logics = {}
    for name, class_name in MODULE_LOGICS.items():
        logic = getattr(slicer, class_name)()
        logic.SetMRMLApplicationLogic(app_logic)
        logic.SetMRMLScene(scene)
        app_logic.SetModuleLogic(name, logic)
        logics[name] = logic
    vtk.vtkLogger.SetStderrVerbosity(vtk.vtkLogger.VERBOSITY_ERROR if quiet else vtk.vtkLogger.VERBOSITY_WARNING)
    return SceneContext(scene, app_logic, logics)


def current_scene() -> SceneContext:
    """Slicer's own scene inside the application, else a new standalone scene."""
    import slicer

    if in_slicer_app():
        return SceneContext(slicer.mrmlScene, slicer.app.applicationLogic(), {})
    return standalone_scene()


def load_volume(context: SceneContext, path: str | Path, name: str | None = None, labelmap: bool = False):
    """Load a volume file (or DICOM-free image file) into a new node through Slicer's volumes logic."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    volumes = context.app_logic.GetModuleLogic("Volumes")
    node = volumes.AddArchetypeVolume(str(path), name or file_stem(path), 1 if labelmap else 0)
    if node is None:
        raise OSError(f"{path}: Slicer could not read this volume")
    return node


def load_segmentation(context: SceneContext, path: str | Path, name: str | None = None):
    """Load a tumour mask into a new segmentation node: a ``.seg.nrrd`` directly, any labelmap file by import."""
    import slicer

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    scene = context.scene
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name or file_stem(path))
    if path.name.lower().endswith(".seg.nrrd"):
        storage = slicer.vtkMRMLSegmentationStorageNode()
        scene.AddNode(storage)
        storage.SetFileName(str(path))
        ok = storage.ReadData(segmentation)
        scene.RemoveNode(storage)
    else:
        labelmap = load_volume(context, path, (name or file_stem(path)) + " labelmap", labelmap=True)
        ok = slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, segmentation)
        scene.RemoveNode(labelmap)
    if not ok:
        scene.RemoveNode(segmentation)
        raise OSError(f"{path}: Slicer could not read this segmentation")
    return segmentation


def file_stem(path: Path) -> str:
    """``path``'s name without its volume suffix (``case.seg.nrrd`` -> ``case``)."""
    name = path.name
    for suffix in (".seg.nrrd", ".nii.gz", ".nrrd", ".nii", ".nhdr", ".mha", ".mhd"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem
