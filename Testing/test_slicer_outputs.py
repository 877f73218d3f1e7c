"""Rules NeoNet's output nodes follow on a real MRML scene (slicer-core wheel): an edited tumour segmentation
is never written again, outputs are marked as NeoNet's before they enter the scene and sit under the
input's study, patches are shown beside the real patch in two linked views, and the model card is
cached per bundle file state."""

from __future__ import annotations

import os

import numpy as np

from slicer_scene import mrml, slicer  # noqa: F401  (fixture)

from neonet_core.volume import Volume

from NeoNetSlicerLib import nodes
from NeoNetSlicerLib.geometry import update_node_from_volume
from NeoNetSlicerLib.logic import NeoNetLogic


def case(mrml):
    """(volume node, its Volume, a box tumour mask on its grid)."""
    image = Volume(np.zeros((8, 10, 12), np.int16), (1.0, 1.0, 2.0), (5.0, -3.0, 1.0))
    volume = mrml.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "MRI")
    update_node_from_volume(volume, image)
    mask = np.zeros(image.array.shape, np.uint8)
    mask[2:5, 3:7, 4:8] = 1
    return volume, image, image.with_array(mask)


def paint(mrml, segmentation_node, image: Volume, array):
    """Replace the first segment's voxels, as the Segment Editor would (Segmentations logic, segment kept)."""
    import vtk

    labelmap = mrml.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    update_node_from_volume(labelmap, image.with_array(array.astype(np.uint8)))
    ids = vtk.vtkStringArray()
    ids.InsertNextValue(segmentation_node.GetSegmentation().GetNthSegmentID(0))
    assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, segmentation_node, ids)
    mrml.scene.RemoveNode(labelmap)


def test_an_edited_tumour_segmentation_is_never_written_again(mrml):
    logic = NeoNetLogic(mrml.scene, mrml.app_logic)
    volume, image, mask = case(mrml)
    first = logic.set_tumour(volume, mask, "neoseg")
    assert logic.set_tumour(volume, mask.with_array(np.roll(mask.array, 1, axis=2)), "neoseg") is first  # not edited: updated

    edited = nodes.mask_from_segmentation(first, volume, image).array.copy()
    edited[6, 8, 10] = 1  # the user paints a voxel (as the Segment Editor would)
    paint(mrml, first, image, edited)
    assert first.GetSegmentation().GetNumberOfSegments() == 1
    second = logic.set_tumour(volume, mask, "neoseg")  # NeoSeg again
    assert second is not first and first.GetScene() is not None
    np.testing.assert_array_equal(nodes.mask_from_segmentation(first, volume, image).array, edited)  # the edit stays
    np.testing.assert_array_equal(nodes.mask_from_segmentation(second, volume, image).array, mask.array)
    assert first.GetAttribute(nodes.ROLE) == "tumour-edited" and second.GetAttribute(nodes.ROLE) == "tumour"
    assert logic.is_own_tumour(second, volume) and not logic.is_own_tumour(first, volume)

    second.GetSegmentation().AddEmptySegment("liver", "liver")  # a segment added also counts as an edit
    assert logic.set_tumour(volume, mask, "user") is not second and second.GetSegmentation().GetNumberOfSegments() == 2


def test_outputs_are_marked_before_they_enter_the_scene_and_sit_under_the_study(mrml):
    volume, _, _ = case(mrml)
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(mrml.scene)
    study = hierarchy.CreateStudyItem(hierarchy.CreateSubjectItem(hierarchy.GetSceneItemID(), "patient"), "study")
    hierarchy.CreateItem(study, volume)
    roles_seen = []
    mrml.scene.AddObserver(mrml.scene.NodeAddedEvent, lambda scene, event: roles_seen.append(
        scene.GetNthNode(scene.GetNumberOfNodes() - 1).GetAttribute(nodes.ROLE)))
    attention = nodes.output_node(mrml.scene, "vtkMRMLScalarVolumeNode", "attention", volume.GetID(), "MRI NeoNet attention")
    assert roles_seen[0] == "attention" and attention.GetAttribute(nodes.INPUT) == volume.GetID()
    assert hierarchy.GetItemParent(hierarchy.GetItemByDataNode(attention)) == study
    assert nodes.own_output_ids(mrml.scene) == [attention.GetID()]
    table = nodes.output_node(mrml.scene, "vtkMRMLTableNode", "results", None, "NeoNet results")  # belongs to no case
    assert hierarchy.GetItemParent(hierarchy.GetItemByDataNode(table)) in (0, hierarchy.GetSceneItemID())


def test_patches_beside_the_real_patch_in_two_linked_views(mrml):
    views = mrml.add_slice_views()
    for view in views:
        mrml.scene.AddNode(slicer.vtkMRMLSliceNode()).SetLayoutName(view.GetLayoutName())
    layout = mrml.scene.AddNode(slicer.vtkMRMLLayoutNode())
    logic = NeoNetLogic(mrml.scene, mrml.app_logic)
    volume, _, _ = case(mrml)
    views[2].SetBackgroundVolumeID(volume.GetID())
    patches = [Volume(np.full((4, 4, 4), n, np.float32), (2.0, 2.0, 2.0)) for n in range(2)]
    masks = [p.with_array((p.array > 0).astype(np.uint8)) for p in patches]
    sequence, browser, proxy, real = logic.show_patches(volume, patches, patches[0], masks=masks, real_mask=masks[0])
    red, yellow, green = views
    assert layout.GetViewArrangement() == layout.SlicerLayoutSideBySideView
    assert (red.GetBackgroundVolumeID(), yellow.GetBackgroundVolumeID(), green.GetBackgroundVolumeID()) == (proxy.GetID(), real.GetID(), volume.GetID())
    assert mrml.scene.GetNodeByID(red.GetLabelVolumeID()).IsA("vtkMRMLLabelMapVolumeNode")
    assert mrml.scene.GetNodeByID(yellow.GetLabelVolumeID()).GetAttribute(nodes.ROLE) == "real_patch_mask"
    assert red.GetLinkedControl() and yellow.GetLinkedControl() and not green.GetLinkedControl()
    assert all(mrml.scene.GetSingletonNode(n, "vtkMRMLSliceNode").GetUseLabelOutline() for n in ("Red", "Yellow"))
    assert proxy.GetID() in nodes.own_output_ids(mrml.scene)  # the browser's proxies are no inputs either


def test_model_card_is_cached_until_the_bundle_changes(tmp_path):
    from NeoNetSlicerLib.base import model_card_text

    (tmp_path / "bundle.json").write_text("{}")
    first = model_card_text(tmp_path)
    assert first.startswith(f"Not a usable bundle: {tmp_path}") and model_card_text(tmp_path) is first
    (tmp_path / "bundle.json").write_text('{"format": "neonet-bundle"}')
    os.utime(tmp_path / "bundle.json", ns=(1, 1))
    assert model_card_text(tmp_path) is not first
