"""MRML <-> neonet_core geometry and NeoNet's output nodes, on a real MRML scene (slicer-core wheel)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from slicer_scene import mrml, node_matrix, oblique_direction, slicer  # noqa: F401  (fixture)

from neonet_core.io import read_segmentation, read_volume, write_volume
from neonet_core.resample import resample_volume
from neonet_core.markups import read_roi_mrk_json, write_roi_mrk_json
from neonet_core.tlcr import ROI
from neonet_core.volume import Volume, lps_to_ras

from NeoNetSlicerLib import nodes
from NeoNetSlicerLib.geometry import geometry_to_ijk_to_ras, ijk_to_ras_to_geometry, update_node_from_volume, volume_from_node
from NeoNetSlicerLib.outputs import save_node

ORIGIN = (-31.5, 12.25, -40.0)
SPACING = (0.8, 1.1, 2.5)


def oblique_volume() -> Volume:
    rng = np.random.default_rng(0)
    array = rng.normal(100, 20, size=(12, 17, 23)).astype(np.float32)  # (k, j, i): not a cube
    return Volume(array, SPACING, ORIGIN, oblique_direction())


def test_conversion_matches_slicer_reader_on_oblique_file(mrml, tmp_path):
    """A file read by Slicer's volumes logic gives the Volume SimpleITK reads, voxel for voxel."""
    volume = oblique_volume()
    path = write_volume(volume, tmp_path / "oblique.nrrd")
    node = mrml.load_volume(path)
    converted = volume_from_node(node)
    reference = read_volume(path)
    assert converted.array.shape == reference.array.shape == (12, 17, 23)
    np.testing.assert_array_equal(converted.array, reference.array)
    np.testing.assert_allclose(converted.spacing, reference.spacing, atol=1e-6)
    np.testing.assert_allclose(converted.origin, reference.origin, atol=1e-4)
    np.testing.assert_allclose(converted.direction, reference.direction, atol=1e-6)
    # the inverse conversion is Slicer's own IJKToRAS
    np.testing.assert_allclose(geometry_to_ijk_to_ras(volume.spacing, volume.origin, volume.direction), node_matrix(node), atol=1e-4)
    # one voxel, two ways: Slicer's matrix on (i, j, k) and the library's index_to_physical flipped to RAS
    ijk = np.array([7.0, 3.0, 9.0])
    ras_slicer = node_matrix(node) @ np.append(ijk, 1.0)
    np.testing.assert_allclose(ras_slicer[:3], lps_to_ras(volume.index_to_physical(ijk)), atol=1e-4)


def test_round_trip_is_exact_and_matrix_functions_are_inverse():
    volume = oblique_volume()
    matrix = geometry_to_ijk_to_ras(volume.spacing, volume.origin, volume.direction)
    spacing, origin, direction = ijk_to_ras_to_geometry(matrix)
    np.testing.assert_allclose(spacing, SPACING, atol=1e-12)
    np.testing.assert_allclose(origin, ORIGIN, atol=1e-12)
    np.testing.assert_allclose(direction, oblique_direction(), atol=1e-12)
    with pytest.raises(ValueError, match="zero or invalid axis"):
        ijk_to_ras_to_geometry(np.diag([1.0, 0.0, 1.0, 1.0]))


def test_node_written_by_slicer_storage_reads_back_in_simpleitk(mrml, tmp_path):
    volume = oblique_volume()
    node = mrml.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "made")
    update_node_from_volume(node, volume)
    path = save_node(node, tmp_path / "made.nrrd")
    image = sitk.ReadImage(str(path))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), volume.array)
    np.testing.assert_allclose(image.GetOrigin(), ORIGIN, atol=1e-4)
    np.testing.assert_allclose(np.reshape(image.GetDirection(), (3, 3)), oblique_direction(), atol=1e-6)
    np.testing.assert_allclose(image.GetSpacing(), SPACING, atol=1e-6)


def test_linear_parent_transform_is_part_of_the_geometry(mrml, tmp_path):
    volume = oblique_volume()
    node = mrml.load_volume(write_volume(volume, tmp_path / "v.nrrd"))
    transform = mrml.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    shift = np.eye(4)
    shift[:3, 3] = (10.0, -5.0, 2.0)  # RAS mm
    from NeoNetSlicerLib.geometry import numpy_to_vtk_matrix

    transform.SetMatrixTransformToParent(numpy_to_vtk_matrix(shift))
    node.SetAndObserveTransformNodeID(transform.GetID())
    moved = volume_from_node(node)
    np.testing.assert_allclose(moved.origin, np.asarray(ORIGIN) + (-10.0, 5.0, 2.0), atol=1e-4)  # RAS shift in LPS
    np.testing.assert_allclose(moved.direction, volume.direction, atol=1e-6)


def test_segmentation_node_mask_and_seg_nrrd_round_trip(mrml, data_dir, tmp_path):
    """The user's tumour from a segmentation node equals the labelmap file; NeoNet's segment saves as .seg.nrrd."""
    image_node = mrml.load_volume(data_dir / "brain_mr_crop.nrrd")
    user_seg = mrml.load_segmentation(data_dir / "brain_mr_tumor_crop.nrrd")
    image = volume_from_node(image_node)
    truth = read_volume(data_dir / "brain_mr_tumor_crop.nrrd")
    mask = nodes.mask_from_segmentation(user_seg, image_node, image)
    assert mask.array.dtype == np.uint8 and mask.same_grid(image)
    # Slicer may store the voxels in another order (here k is reversed: the file's axes are left-handed),
    # so compare in physical space: the file's mask put on the node's grid
    truth_on_node = resample_volume(truth, image, "nearest", 0)
    np.testing.assert_array_equal(mask.array, (truth_on_node.array != 0).astype(np.uint8))
    np.testing.assert_array_equal(mask.array, (truth.array[::-1] != 0).astype(np.uint8))
    assert int(mask.array.sum()) == 4137

    out = mrml.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "NeoNet tumour")
    segment_id = nodes.set_segment(out, mask, image_node, "tumour")
    assert out.GetSegmentation().GetNumberOfSegments() == 1
    assert out.GetSegmentation().GetSegment(segment_id).GetName() == "tumour"
    path = save_node(out, tmp_path / "tumour.seg.nrrd")
    back = read_segmentation(path)
    assert back.metadata["segment_names"] == {1: "tumour"}
    # Slicer crops a saved segmentation to its extent: compare in physical space on the image grid
    on_image = resample_volume(back, image, "nearest", 0)
    np.testing.assert_array_equal(on_image.array != 0, mask.array != 0)


def test_pick_tumour_segment_by_name(mrml, data_dir):
    seg = mrml.load_segmentation(data_dir / "brain_mr_tumor_crop.nrrd")
    seg.GetSegmentation().AddEmptySegment("liver", "liver")
    seg.GetSegmentation().GetNthSegment(0).SetName("Tumor 1")
    assert nodes.pick_tumour_segment(seg) == seg.GetSegmentation().GetNthSegmentID(0)
    seg.GetSegmentation().GetNthSegment(0).SetName("lesion")
    with pytest.raises(ValueError, match="several segments"):
        nodes.pick_tumour_segment(seg)


def test_roi_node_round_trips_through_mrk_json(mrml, tmp_path):
    roi = ROI((12.0, -30.5, 44.0), (64.0, 64.0, 64.0), oblique_direction())
    node = mrml.scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "TLCR")
    nodes.set_roi(node, roi)
    np.testing.assert_allclose(_center(node), lps_to_ras(np.asarray(roi.center)), atol=1e-6)
    back = nodes.roi_from_node(node)
    np.testing.assert_allclose(back.center, roi.center, atol=1e-6)
    np.testing.assert_allclose(back.axes, roi.axes, atol=1e-6)
    # Slicer's JSON writer -> the library's reader
    saved = read_roi_mrk_json(save_node(node, tmp_path / "tlcr.mrk.json"))
    np.testing.assert_allclose(saved.center, roi.center, atol=1e-4)
    np.testing.assert_allclose(saved.size_mm, roi.size_mm, atol=1e-4)
    np.testing.assert_allclose(saved.axes, roi.axes, atol=1e-4)
    # the library's writer -> Slicer's reader: the same box in RAS
    path = write_roi_mrk_json(roi, tmp_path / "lib.mrk.json")
    other = mrml.scene.AddNewNodeByClass("vtkMRMLMarkupsROINode")
    storage = slicer.vtkMRMLMarkupsROIJsonStorageNode()
    mrml.scene.AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.ReadData(other)
    np.testing.assert_allclose(_center(other), lps_to_ras(np.asarray(roi.center)), atol=1e-4)
    np.testing.assert_allclose(other.GetSize(), roi.size_mm, atol=1e-4)
    np.testing.assert_allclose(nodes.roi_from_node(other).axes, roi.axes, atol=1e-4)


def _center(node):
    c = [0.0, 0.0, 0.0]
    node.GetCenter(c)
    return np.asarray(c)


def test_results_table_rows_update_and_save_as_tsv(mrml, tmp_path):
    table = mrml.scene.AddNewNodeByClass("vtkMRMLTableNode", "results")
    assert nodes.set_table_row(table, "case", {"case": "a", "probability": 0.25, "label": "PNI-"}) == 0
    assert nodes.set_table_row(table, "case", {"case": "b", "probability": 0.75, "label": "PNI+", "time_total_s": 1.5}) == 1
    assert nodes.set_table_row(table, "case", {"case": "a", "probability": 0.5, "label": "PNI+"}) == 0  # re-run: same row
    rows = nodes.table_rows(table)
    assert [r["case"] for r in rows] == ["a", "b"]
    assert rows[0]["probability"] == 0.5 and rows[0]["label"] == "PNI+"
    assert np.isnan(rows[0]["time_total_s"]) and rows[1]["time_total_s"] == 1.5
    path = save_node(table, tmp_path / "results.tsv")
    lines = path.read_text().splitlines()
    assert lines[0].split("\t") == ["case", "probability", "label", "time_total_s"]
    assert lines[1].split("\t")[:3] == ["a", "0.5", "PNI+"]
    back = mrml.scene.AddNewNodeByClass("vtkMRMLTableNode")
    storage = slicer.vtkMRMLTableStorageNode()
    mrml.scene.AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.ReadData(back)
    assert nodes.table_rows(back)[1]["case"] == "b"
    assert float(nodes.table_rows(back)[1]["probability"]) == 0.75


def test_volume_sequence_and_browser(mrml):
    from NeoNetSlicerLib.logic import NeoNetLogic

    logic = NeoNetLogic(mrml.scene, mrml.app_logic)
    patches = [Volume(np.full((4, 5, 6), n, np.float32), (2.0, 2.0, 2.0)) for n in range(3)]
    sequence, browser, proxy, real = logic.show_patches(None, patches, real_patch=patches[0].with_array(np.full((4, 5, 6), 9, np.float32)))
    assert sequence.GetNumberOfDataNodes() == 3
    assert proxy is not None and float(slicer.util.arrayFromVolume(proxy).mean()) == 0.0
    proxy = logic.select_patch(browser, 2)
    assert float(slicer.util.arrayFromVolume(proxy).mean()) == 2.0
    assert float(slicer.util.arrayFromVolume(real).mean()) == 9.0
    # a second call reuses the same nodes; conditioning masks are browsed in step with the patches
    masks = [p.with_array(np.full((4, 5, 6), 10 + n, np.uint8)) for n, p in enumerate(patches[:2])]
    again = logic.show_patches(None, patches[:2], masks=masks)
    assert again[0] is sequence and again[1] is browser and sequence.GetNumberOfDataNodes() == 2
    conditioning = nodes.find_output(mrml.scene, "vtkMRMLSequenceNode", "conditioning:synthetic", None)
    proxy = logic.select_patch(browser, 1)
    assert float(slicer.util.arrayFromVolume(proxy).mean()) == 1.0
    assert float(slicer.util.arrayFromVolume(browser.GetProxyNode(conditioning)).mean()) == 11.0


def test_attention_overlay_uses_colour_node_and_slice_views(mrml):
    views = mrml.add_slice_views()
    background = mrml.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "mri")
    attention = nodes.output_node(mrml.scene, "vtkMRMLScalarVolumeNode", "attention", background.GetID(), "att")
    volume = Volume(np.linspace(0, 1, 60, dtype=np.float32).reshape(3, 4, 5))
    nodes.set_attention(attention, volume, mrml.scene)
    color = attention.GetDisplayNode().GetColorNode()
    assert color.GetName() == nodes.ATTENTION_COLOR_NAME and color.GetNumberOfColors() == 256
    assert nodes.show_foreground(mrml.scene, attention, background, 0.4) == 3
    assert all(v.GetForegroundVolumeID() == attention.GetID() and v.GetBackgroundVolumeID() == background.GetID() for v in views)
    assert views[0].GetForegroundOpacity() == pytest.approx(0.4)
    assert nodes.find_output(mrml.scene, "vtkMRMLScalarVolumeNode", "attention", background.GetID()) is attention
