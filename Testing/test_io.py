"""Volume IO on real files: geometry round trips, DICOM, Slicer .seg.nrrd, masks on images, bad input."""

from __future__ import annotations

import gzip
import shutil
import struct

import numpy as np
import pytest
import SimpleITK as sitk

from neonet_core.errors import InputError
from neonet_core.io import (
    check_overlap,
    read_mask_on_image,
    read_segmentation,
    read_volume,
    write_segmentation,
    write_volume,
)
from neonet_core.resample import resample_volume
from neonet_core.volume import Volume, lps_to_ras
from conftest import write_dicom_slice

TOL = 1e-4  # mm


def rotation(axis, degrees) -> np.ndarray:
    """Rotation matrix about ``axis`` (Rodrigues)."""
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    t = np.radians(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k


def oblique(volume: Volume) -> Volume:
    """The same voxels with an oblique direction (about a tilted axis) and a shifted origin."""
    return Volume(volume.array, volume.spacing, (12.5, -40.25, 7.0), rotation([1, 2, 3], 27), {})


def assert_same_geometry(a: Volume, b: Volume):
    assert a.array.shape == b.array.shape
    np.testing.assert_allclose(a.spacing, b.spacing, atol=TOL)
    np.testing.assert_allclose(a.origin, b.origin, atol=TOL)
    np.testing.assert_allclose(a.direction, b.direction, atol=TOL)
    np.testing.assert_allclose(a.corners_physical(), b.corners_physical(), atol=TOL)


def write_any(volume: Volume, path):
    """write_volume for its formats; SimpleITK directly for the read-only ones (.mha, .mhd, .nhdr)."""
    if path.name.endswith((".nii", ".nii.gz", ".nrrd")):
        return write_volume(volume, path)
    sitk.WriteImage(volume.to_sitk(), str(path), True)
    return path


# --- round trips ------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"])
@pytest.mark.parametrize("source", ["breast_mr.nrrd", "breast_mr.nrrd:oblique", "brain_mr_crop.nrrd"])
def test_round_trip_keeps_voxels_and_geometry(data_dir, tmp_path, source, suffix):
    name, _, variant = source.partition(":")
    original = read_volume(data_dir / name)
    if variant == "oblique":
        original = oblique(original)
    back = read_volume(write_any(original, tmp_path / f"out{suffix}"))
    assert_same_geometry(original, back)
    np.testing.assert_array_equal(original.array, back.array)
    assert back.metadata["path"] == str(tmp_path / f"out{suffix}")


def test_brain_mr_has_flipped_y_and_known_geometry(data_dir, tmp_path):
    brain = read_volume(data_dir / "brain_mr_crop.nrrd")
    assert brain.array.shape == (25, 128, 128) and brain.array.dtype == np.int16
    np.testing.assert_allclose(brain.direction, np.diag([1.0, -1.0, 1.0]), atol=1e-12)
    np.testing.assert_allclose(brain.spacing, (0.78125, 0.78125, 6.5), atol=TOL)
    np.testing.assert_allclose(brain.origin, (0.390625, 49.609375, -78.0), atol=TOL)
    # voxel (0, 10, 0) lies 10 voxels towards -y (anterior) of the origin
    np.testing.assert_allclose(brain.index_to_physical([0, 10, 0]), (0.390625, 49.609375 - 7.8125, -78.0), atol=TOL)
    back = read_volume(write_volume(brain, tmp_path / "brain.nii.gz"))
    assert_same_geometry(brain, back)
    np.testing.assert_allclose(back.direction[1, 1], -1.0)


def test_abdomen_nifti_reads(data_dir):
    mr = read_volume(data_dir / "abdomen_mr.nii.gz")
    assert mr.size_ijk == (117, 91, 20)
    np.testing.assert_allclose(mr.spacing, (3.0, 3.0, 3.0), atol=TOL)
    np.testing.assert_allclose(mr.origin, (-168.59963989, -166.35943604, 28.98964119), atol=TOL)


# --- DICOM --------------------------------------------------------------------------------------------
def test_dicom_series_folder(data_dir, tmp_path):
    ct = read_volume(data_dir / "abdomen_ct_dicom5")
    assert ct.array.shape == (5, 512, 512) and ct.array.dtype == np.int16
    np.testing.assert_allclose(ct.spacing, (0.9765625, 0.9765625, 2.0), atol=TOL)
    np.testing.assert_allclose(ct.origin, (-249.51171875, -437.51171875, -804.5), atol=TOL)
    np.testing.assert_allclose(ct.direction, np.eye(3), atol=TOL)
    assert ct.metadata["dicom_files"] == 5 and "dicom_other_series" not in ct.metadata
    back = read_volume(write_volume(ct, tmp_path / "ct.nrrd"))
    assert_same_geometry(ct, back)
    np.testing.assert_array_equal(ct.array, back.array)


def _write_small_dicom_series(folder, n_slices=3, uid="1.2.826.0.1.3680043.2.1125.77.1"):
    folder.mkdir(parents=True, exist_ok=True)
    array = (np.arange(n_slices * 16 * 16).reshape(n_slices, 16, 16) % 100).astype(np.int16)
    for k in range(n_slices):
        image = sitk.GetImageFromArray(array[k])
        image.SetSpacing((0.5, 0.5))
        tags = {
            "0020|000e": uid, "0020|000d": uid + ".9", "0008|0060": "MR", "0020|0013": str(k + 1),
            "0020|0032": f"10\\20\\{30 + 2 * k}", "0020|0037": "1\\0\\0\\0\\1\\0", "0028|0030": "0.5\\0.5",
        }
        write_dicom_slice(image, tags, folder / f"slice{k}.dcm")


def test_dicom_folder_with_two_series_picks_the_largest(data_dir, tmp_path):
    folder = tmp_path / "two series"
    shutil.copytree(data_dir / "abdomen_ct_dicom5", folder)
    _write_small_dicom_series(folder, n_slices=3)
    ct = read_volume(folder)
    assert ct.array.shape == (5, 512, 512)
    assert ct.metadata["dicom_files"] == 5
    assert ct.metadata["dicom_other_series"] == [("1.2.826.0.1.3680043.2.1125.77.1", 3)]
    small = read_volume(_only_small(tmp_path))
    assert small.array.shape == (3, 16, 16)
    np.testing.assert_allclose(small.origin, (10, 20, 30), atol=TOL)
    np.testing.assert_allclose(small.spacing, (0.5, 0.5, 2.0), atol=TOL)


def _only_small(tmp_path):
    folder = tmp_path / "small"
    _write_small_dicom_series(folder, n_slices=3)
    return folder


def test_empty_dicom_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no images here")
    for folder in ("empty", "notes"):
        with pytest.raises(InputError, match="no DICOM series found") as err:
            read_volume(tmp_path / folder)
        assert err.value.path == str(tmp_path / folder)


# --- bad input ------------------------------------------------------------------------------------------
def _small(tmp_path, array=None, **kw) -> Volume:
    array = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6) if array is None else array
    return Volume(array, kw.get("spacing", (1.0, 2.0, 3.0)), (0, 0, 0), np.eye(3))


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_volume(tmp_path / "nope.nii.gz")
    (tmp_path / "scan.png").write_bytes(b"\x89PNG")
    with pytest.raises(InputError, match="unknown volume format"):
        read_volume(tmp_path / "scan.png")


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_truncated_files_are_refused(data_dir, tmp_path, suffix):
    full = write_any(read_volume(data_dir / "breast_mr.nrrd"), tmp_path / f"full{suffix}")
    data = full.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated|incomplete") as err:
        read_volume(cut)
    assert str(cut) in str(err.value) and "\n" not in str(err.value)


def test_garbage_file_is_refused(tmp_path):
    for name in ("junk.nii.gz", "junk.nrrd", "junk.mha"):
        (tmp_path / name).write_bytes(b"this is not an image " * 20)
        with pytest.raises(InputError) as err:
            read_volume(tmp_path / name)
        assert err.value.path == str(tmp_path / name) and "\n" not in str(err.value)


def test_2d_4d_and_vector_images_are_refused(data_dir, tmp_path):
    image = sitk.ReadImage(str(data_dir / "breast_mr.nrrd"))
    sitk.WriteImage(image[:, :, 3], str(tmp_path / "slice.nii.gz"))
    sitk.WriteImage(image[:, :, 3:4], str(tmp_path / "one_slice.nii.gz"))
    sitk.WriteImage(sitk.JoinSeries([image, image]), str(tmp_path / "series.nii.gz"))
    sitk.WriteImage(sitk.Compose([image, image]), str(tmp_path / "vector.nrrd"))
    cases = {"slice.nii.gz": "is 2D", "one_slice.nii.gz": "single slice", "series.nii.gz": "is 4D", "vector.nrrd": "2 components"}
    for name, words in cases.items():
        with pytest.raises(InputError, match=words):
            read_volume(tmp_path / name)


@pytest.mark.parametrize("suffix", [".nrrd", ".nii", ".nii.gz", ".mha"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_and_inf_voxels_are_counted(tmp_path, suffix, dtype):
    volume = _small(tmp_path, np.arange(4 * 5 * 6, dtype=dtype).reshape(4, 5, 6))
    volume.array[0, 0, :3] = np.nan
    volume.array[1, 2, 3] = -np.inf
    path = write_any(volume, tmp_path / f"nan{suffix}")
    with pytest.raises(InputError, match=r"has 4 NaN/Inf voxel\(s\) out of 120"):
        read_volume(path)


@pytest.mark.parametrize("value", [0.0, -2.0, float("nan")])
def test_invalid_nifti_spacing(tmp_path, value):
    path = write_volume(_small(tmp_path), tmp_path / "v.nii", compress=False)
    data = bytearray(path.read_bytes())
    data[80 + 4 : 80 + 8] = struct.pack("<f", value)  # pixdim[2]
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="invalid voxel spacing"):
        read_volume(path)
    gz = tmp_path / "v.nii.gz"
    gz.write_bytes(gzip.compress(bytes(data)))
    with pytest.raises(InputError, match="invalid voxel spacing"):
        read_volume(gz)


def test_zero_nrrd_spacing(tmp_path):
    path = write_volume(_small(tmp_path), tmp_path / "v.nrrd", compress=False)
    path.write_bytes(path.read_bytes().replace(b"(0,2,0)", b"(0,0,0)"))
    with pytest.raises(InputError, match="spacing"):
        read_volume(path)


# --- Slicer segmentations ----------------------------------------------------------------------------
def _slicer_labelmap_node(scene, volume: Volume):
    import slicer
    import vtk

    node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(volume.array))
    node.SetSpacing(*volume.spacing)
    node.SetOrigin(*lps_to_ras(np.asarray(volume.origin)))
    matrix = vtk.vtkMatrix4x4()
    ras = lps_to_ras(volume.direction)
    for r in range(3):
        for c in range(3):
            matrix.SetElement(r, c, ras[r, c])
    node.SetIJKToRASDirectionMatrix(matrix)
    return node


def write_seg_with_slicer(labelmaps: list[tuple[Volume, list[str]]], path) -> None:
    """Build a vtkMRMLSegmentationNode from labelmap volumes and write it with Slicer's storage node.

    Each labelmap is imported with its segments named in label order; overlapping imports end on
    separate layers (a 4D file).
    """
    import slicer

    scene = slicer.vtkMRMLScene()
    slicer.mrmlScene = scene
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    for volume, names in labelmaps:
        first = segmentation.GetSegmentation().GetNumberOfSegments()
        assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(_slicer_labelmap_node(scene, volume), segmentation)
        for n, name in enumerate(names):
            segmentation.GetSegmentation().GetNthSegment(first + n).SetName(name)
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(path))
    assert storage.WriteData(segmentation) == 1


def _label_grid(values: dict[int, tuple[slice, slice, slice]], shape=(7, 9, 11)) -> Volume:
    array = np.zeros(shape, np.uint8)
    for value, where in values.items():
        array[where] = value
    return Volume(array, (0.8, 1.1, 2.5), (-30.0, 12.0, 5.0), rotation([1, -1, 2], 35))


def test_read_single_layer_seg_written_by_slicer(tmp_path):
    truth = _label_grid({2: np.s_[1:3, 2:5, 3:7], 4: np.s_[3:6, 4:8, 5:9]})
    path = tmp_path / "two.seg.nrrd"
    write_seg_with_slicer([(truth, ["bile_duct", "tumour"])], path)
    seg = read_segmentation(path)
    assert seg.metadata["segment_names"] == {2: "bile_duct", 4: "tumour"}
    assert seg.array.dtype == np.uint8
    np.testing.assert_allclose(seg.direction, truth.direction, atol=TOL)
    np.testing.assert_allclose(seg.spacing, truth.spacing, atol=TOL)
    # Slicer crops to the segments' extent (i from 3, j from 2, k from 1): the origin is truth's voxel (3, 2, 1)
    offset = truth.physical_to_index(np.asarray(seg.origin))
    np.testing.assert_allclose(offset, (3, 2, 1), atol=TOL / min(truth.spacing))
    on_truth = resample_volume(seg, truth, "nearest")
    np.testing.assert_array_equal(on_truth.array, truth.array)
    assert read_volume(path).metadata["segment_names"] == {2: "bile_duct", 4: "tumour"}


def test_read_multi_layer_seg_written_by_slicer(tmp_path):
    tumour = _label_grid({1: np.s_[1:4, 2:5, 3:7]})
    liver = _label_grid({1: np.s_[2:6, 3:8, 4:9]})  # overlaps the tumour
    path = tmp_path / "layers.seg.nrrd"
    write_seg_with_slicer([(liver, ["liver"]), (tumour, ["tumour"])], path)
    assert sitk.ReadImage(str(path)).GetNumberOfComponentsPerPixel() == 2  # really a 4D, 2-layer file
    seg = read_segmentation(path)
    assert seg.metadata["segment_names"] == {1: "liver", 2: "tumour"}
    on_truth = resample_volume(seg, tumour, "nearest").array
    expected = np.where(tumour.array > 0, 2, np.where(liver.array > 0, 1, 0))  # later segment wins
    np.testing.assert_array_equal(on_truth, expected)
    np.testing.assert_allclose(seg.direction, tumour.direction, atol=TOL)


def test_write_segmentation_is_read_by_slicer(tmp_path):
    import slicer

    truth = _label_grid({1: np.s_[0:3, 0:4, 0:5], 4: np.s_[3:6, 4:8, 5:9]})
    path = write_segmentation(truth, {1: "liver", 4: "tumour"}, tmp_path / "mine.seg.nrrd")
    scene = slicer.vtkMRMLScene()
    slicer.mrmlScene = scene
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(path))
    assert storage.ReadData(node) == 1
    segmentation = node.GetSegmentation()
    found = {segmentation.GetNthSegment(n).GetLabelValue(): segmentation.GetNthSegment(n).GetName() for n in range(segmentation.GetNumberOfSegments())}
    assert found == {1: "liver", 4: "tumour"}
    back = read_segmentation(path)
    assert back.metadata["segment_names"] == {1: "liver", 4: "tumour"}
    assert_same_geometry(truth, back)
    np.testing.assert_array_equal(back.array, truth.array)
    with pytest.raises(InputError, match=".seg.nrrd"):
        write_segmentation(truth, {}, tmp_path / "mine.nrrd")


def test_plain_label_volume_names(data_dir):
    organs = read_segmentation(data_dir / "abdomen_mr_organs.nii.gz")
    assert organs.array.dtype == np.uint8
    assert organs.metadata["segment_names"][5] == "label_5"
    assert set(organs.metadata["segment_names"]) == set(np.unique(organs.array)) - {0}


# --- masks on images ----------------------------------------------------------------------------------
def test_mask_on_the_same_grid_is_returned_as_is(data_dir):
    image = read_volume(data_dir / "brain_mr_crop.nrrd")
    mask = read_mask_on_image(data_dir / "brain_mr_tumor_crop.nrrd", image)
    assert mask.same_grid(image) and "resampled" not in mask.metadata
    assert int(mask.array.sum()) == 4137


def test_mask_on_another_grid_is_resampled(data_dir, tmp_path):
    image = read_volume(data_dir / "brain_mr_crop.nrrd")
    mask = read_mask_on_image(data_dir / "brain_mr_tumor_crop.nrrd", image)
    # the same tumour drawn on a coarser, shifted, rotated grid covering the tumour only
    centre = lambda v: v.index_to_physical(np.argwhere(v.array > 0)[:, ::-1].mean(axis=0))  # noqa: E731
    size, spacing, direction = np.array([80, 80, 30]), np.array([1.0, 1.0, 2.0]), rotation([0, 0, 1], 10)
    origin = centre(mask) - direction @ (spacing * (size - 1) / 2)
    other = Volume(np.zeros(tuple(size[::-1]), np.uint8), spacing, origin, direction)
    coarse = resample_volume(mask, other, "nearest")
    path = write_volume(coarse, tmp_path / "coarse mask.nii.gz")
    back = read_mask_on_image(path, image)
    assert back.same_grid(image) and back.metadata["resampled"] is True
    dice = 2 * np.sum((back.array > 0) & (mask.array > 0)) / (np.sum(back.array > 0) + np.sum(mask.array > 0))
    assert dice > 0.85
    assert np.linalg.norm(centre(back) - centre(mask)) < 1.0  # mm


def test_mask_that_misses_the_image_is_refused(data_dir, tmp_path):
    image = read_volume(data_dir / "brain_mr_crop.nrrd")
    mask = read_segmentation(data_dir / "brain_mr_tumor_crop.nrrd")
    moved = Volume(mask.array, mask.spacing, np.asarray(mask.origin) + (0, 0, 500.0), mask.direction)
    path = write_volume(moved, tmp_path / "moved.nrrd")
    with pytest.raises(InputError, match="does not overlap the image") as err:
        read_mask_on_image(path, image)
    assert err.value.path == str(path) and str(data_dir / "brain_mr_crop.nrrd") in str(err.value)


def test_check_overlap_fraction():
    a = Volume(np.zeros((10, 10, 10), np.uint8))
    assert check_overlap(a, a) == pytest.approx(1.0)
    half = Volume(np.zeros((10, 10, 10), np.uint8), origin=(5.0, 0.0, 0.0))
    assert check_overlap(a, half) == pytest.approx(0.5)
    far = Volume(np.zeros((10, 10, 10), np.uint8), origin=(0.0, 0.0, 10.0))
    assert check_overlap(a, far) == 0.0
    small = Volume(np.zeros((2, 2, 2), np.uint8), spacing=(0.5, 0.5, 0.5), origin=(3.0, 3.0, 3.0))
    assert check_overlap(small, a) == pytest.approx(1.0)
    assert check_overlap(a, small) == pytest.approx(1 / 1000)
