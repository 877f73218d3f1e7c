"""The module self-test's checks (``NeoNetSlicerTest`` in NeoNetSlicer.py runs them). No Qt.

Each takes ``say(message)`` for progress messages; a failed check raises AssertionError.
"""

from __future__ import annotations

import numpy as np


def geometry_round_trip(scene, say) -> None:
    """An oblique volume node -> Volume -> new node: same voxels and IJKToRAS; the input is untouched."""
    import slicer

    from NeoNetSlicerLib.geometry import geometry_to_ijk_to_ras, node_ijk_to_world, numpy_to_vtk_matrix
    from NeoNetSlicerLib.geometry import update_node_from_volume, volume_from_node

    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "oblique")
    angle = np.radians(30)
    direction = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    matrix = geometry_to_ijk_to_ras((0.8, 1.2, 2.5), (10.0, -20.0, 5.0), direction)
    slicer.util.updateVolumeFromArray(node, np.arange(6 * 7 * 8, dtype=np.int16).reshape(6, 7, 8))
    node.SetIJKToRASMatrix(numpy_to_vtk_matrix(matrix))
    copy = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "copy")
    update_node_from_volume(copy, volume_from_node(node))
    assert np.allclose(node_ijk_to_world(copy), matrix, atol=1e-6), "IJKToRAS changed in the round trip"
    assert np.array_equal(slicer.util.arrayFromVolume(copy), slicer.util.arrayFromVolume(node)), "voxels changed"
    say("geometry round trip passed")


def predict_on_sample_data(logic, say) -> str:
    """Predict on the phantom sample case with the demo bundle. Skipped (not failed) where NeoNet's Python
    packages or the demo bundle are not installed, e.g. in the extension factory's test run. Returns what it did."""
    import slicer

    from NeoNetSlicerLib.base import default_bundle_path
    from NeoNetSlicerLib.dependencies import TORCH_REQUIREMENT, missing, read_requirements
    from NeoNetSlicerLib.panel import python_problem
    from NeoNetSlicerLib.sampledata import SAMPLE_FILES, sample_data_dir
    from NeoNetSlicerLib.scene import SceneContext, load_volume

    absent = [python_problem()] if python_problem() else missing([TORCH_REQUIREMENT, *read_requirements()])
    if absent or default_bundle_path() is None:
        message = f"prediction self-test skipped: not installed: {', '.join(absent) or 'the demo bundle'}"
        say(message)
        return message
    context = SceneContext(logic.scene, logic.app_logic, {})
    volume = load_volume(context, sample_data_dir() / next(iter(SAMPLE_FILES)))
    before = slicer.util.arrayFromVolume(volume).copy()
    out = logic.predict(volume, None, bundle=None, device="cpu")
    assert 0.0 <= out.probability <= 1.0, out.probability
    assert out.attentionNode is not None and out.roiNode is not None, "output nodes missing"
    assert np.array_equal(slicer.util.arrayFromVolume(volume), before), "the input volume changed"
    say(out.summary())
    return out.summary()
