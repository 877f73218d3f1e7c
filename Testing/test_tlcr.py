"""TLCR crop: centring, oblique images, the real brain MRI, round trip, padding, components, errors."""

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from neonet_core.config import PreprocessConfig
from neonet_core.errors import NoTumourFoundError
from neonet_core.io import write_volume
from neonet_core.tlcr import (
    ROI,
    background_value,
    crop_patch,
    patch_to_volume,
    select_tumour_component,
    tlcr_crop,
    tlcr_from_config,
    tumour_roi,
)
from neonet_core.volume import Volume

DATA = Path(__file__).parent / "Data"
# The repository's copy of the real brain MRI (cropped in-plane around the tumour).
BRAIN, BRAIN_TUMOUR = DATA / "brain_mr_crop.nrrd", DATA / "brain_mr_tumor_crop.nrrd"


def _rotation(a, b, c):
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _read(path, **meta):
    return Volume.from_sitk(sitk.ReadImage(str(path)), path=str(path), **meta)


def _case(tmp_path, direction=np.eye(3), spacing=(1.0, 1.0, 1.0), shape=(40, 48, 56), box=((12, 20), (15, 26), (30, 37))):
    """An int16 image with a bright box tumour, written and read back through SimpleITK (NRRD)."""
    rng = np.random.default_rng(0)
    image = rng.integers(100, 200, size=shape).astype(np.int16)
    mask = np.zeros(shape, np.uint8)
    (k0, k1), (j0, j1), (i0, i1) = box
    mask[k0:k1, j0:j1, i0:i1] = 1
    image[mask > 0] += 500
    origin = (-12.5, 30.25, 7.0)
    write_volume(Volume(image, spacing, origin, direction), tmp_path / "image.nrrd")
    write_volume(Volume(mask, spacing, origin, direction), tmp_path / "mask.nrrd")
    return _read(tmp_path / "image.nrrd"), _read(tmp_path / "mask.nrrd")


def _bbox_centre_ijk(mask_array):
    idx = np.argwhere(mask_array > 0)  # (k, j, i)
    return ((idx.min(0) + idx.max(0)) / 2.0)[::-1]


def _patch_tumour_centre_mm(result):
    patch = result.tumour_patch
    return patch.index_to_physical(_bbox_centre_ijk(patch.array))


def test_roi_patch_geometry_centre_and_extent():
    roi = ROI((10.0, -5.0, 3.0), 64.0, _rotation(0.3, -0.2, 0.5))
    grid = roi.patch_geometry(32)
    assert grid.array.shape == (32, 32, 32)
    assert np.allclose(grid.spacing, 2.0)
    assert np.allclose(grid.index_to_physical([15.5, 15.5, 15.5]), roi.center, atol=1e-9)
    assert np.allclose(np.sort(grid.corners_physical(), axis=0), np.sort(roi.corners(), axis=0), atol=1e-9)
    back = ROI.from_dict(roi.to_dict())
    assert np.allclose(back.center, roi.center) and np.allclose(back.axes, roi.axes) and back.size_mm == (64.0,) * 3


def test_crop_is_centred_on_tumour_bbox(tmp_path):
    image, mask = _case(tmp_path)
    result = tlcr_crop(image, mask, roi_mm=32, patch_size=32)
    expected = image.index_to_physical(_bbox_centre_ijk(mask.array))
    assert np.allclose(result.roi.center, expected, atol=1e-6)
    assert np.abs(_patch_tumour_centre_mm(result) - expected).max() <= 0.5 + 1e-6  # half a 1 mm voxel
    assert result.image_patch.array.dtype == np.float32 and result.image_patch.array.shape == (32, 32, 32)
    assert result.tumour_patch.array.dtype == np.uint8
    assert result.tumour_patch.array.sum() == mask.array.sum()  # same spacing: every tumour voxel lands once
    inside = result.tumour_patch.array > 0  # the bright tumour is there (edges interpolated half-way)
    assert result.image_patch.array[inside].mean() > 550 > 300 > result.image_patch.array[~inside].mean()
    assert result.tumour_fits and np.allclose(result.tumour_extent_mm, (7, 11, 8))


def test_oblique_image_crops_along_its_own_axes(tmp_path):
    direction = _rotation(0.4, -0.3, 0.7)
    image, mask = _case(tmp_path, direction=direction, spacing=(0.8, 0.9, 1.3))
    result = tlcr_crop(image, mask, roi_mm=40, patch_size=40)
    expected = image.index_to_physical(_bbox_centre_ijk(mask.array))
    assert np.allclose(result.roi.center, expected, atol=1e-6)
    assert np.allclose(result.roi.axes, direction, atol=1e-6)
    assert np.allclose(result.image_patch.direction, direction, atol=1e-6)
    half = 0.5 * (np.asarray(result.tumour_patch.spacing) + np.asarray(image.spacing))  # patch + image half voxel
    offset_along_axes = direction.T @ (_patch_tumour_centre_mm(result) - expected)
    assert np.all(np.abs(offset_along_axes) <= half + 1e-6)


def test_real_brain_mr_with_tumour_mask():
    image, mask = _read(BRAIN), _read(BRAIN_TUMOUR)
    result = tlcr_from_config(image, mask, None, PreprocessConfig(roi_mm=64, patch_size=32, component="all"))
    expected = image.index_to_physical(_bbox_centre_ijk(mask.array))
    assert np.allclose(result.roi.center, expected, atol=1e-6)
    assert np.allclose(result.roi.axes, image.direction)  # y flipped, kept
    half = 0.5 * (np.asarray(result.tumour_patch.spacing) + np.asarray(image.spacing))
    assert np.all(np.abs(image.direction.T @ (_patch_tumour_centre_mm(result) - expected)) <= half + 1e-6)
    # 2 mm patch voxels: the tumour volume is kept within 15 %
    tumour_ml = mask.array.astype(bool).sum() * np.prod(image.spacing)
    patch_ml = result.tumour_patch.array.sum() * np.prod(result.tumour_patch.spacing)
    assert abs(patch_ml / tumour_ml - 1) < 0.15
    assert result.anatomy_patch is None and result.background == pytest.approx(np.percentile(image.array, 1))
    largest = select_tumour_component(mask, "largest")  # this mask has two 26-connected parts: 3524 + 613 voxels
    assert largest.array.sum() == 3524
    roi = tumour_roi(image, mask, 64, "largest")
    assert np.allclose(roi.center, image.index_to_physical(_bbox_centre_ijk(largest.array)), atol=1e-6)


def test_patch_to_volume_round_trip(tmp_path):
    image, mask = _case(tmp_path, direction=_rotation(0.2, 0.1, -0.3))
    result = tlcr_crop(image, mask, roi_mm=32, patch_size=32)
    # a blob in patch space at the tumour: the tumour patch itself, as float
    back = patch_to_volume(result.tumour_patch.array.astype(np.float32), result.roi, image, "linear", 0.0)
    assert back.same_grid(image) and back.array.dtype == np.float32
    blob = back.array > 0.5
    centroid = np.argwhere(blob).mean(0)
    assert np.abs(centroid - np.argwhere(mask.array > 0).mean(0)).max() <= 1.0
    dice = 2 * (blob & (mask.array > 0)).sum() / (blob.sum() + mask.array.sum())
    assert dice > 0.8
    # outside the ROI box: the default value
    outside = patch_to_volume(np.ones((32, 32, 32)), result.roi, image, "nearest", -7.0)
    ijk = np.argwhere(outside.array == 1.0)[:, ::-1]
    assert np.all(np.abs(result.roi.axes.T @ (image.index_to_physical(ijk) - result.roi.center).T) <= 16.0 + 1e-6)
    assert np.sum(outside.array == -7.0) == outside.array.size - len(ijk) > 0


def test_border_padding_is_background(tmp_path):
    image, mask = _case(tmp_path, box=((0, 4), (0, 5), (50, 56)))  # touches three faces of the volume
    anatomy = mask.with_array((mask.array * 4).astype(np.uint8))
    result = tlcr_crop(image, mask, anatomy, roi_mm=32, patch_size=16)
    background = np.percentile(image.array, 1)
    assert result.background == pytest.approx(background)
    patch = result.image_patch
    kji = np.indices(patch.array.shape).reshape(3, -1).T
    src = image.physical_to_index(patch.index_to_physical(kji[:, ::-1]))
    size = np.asarray(image.size_ijk)
    outside = np.any((src < -0.51) | (src > size - 0.49), axis=1)
    inside = np.all((src > 0.01) & (src < size - 1.01), axis=1)
    assert outside.sum() > 1000 and inside.sum() > 100
    assert np.all(patch.array.ravel()[outside] == np.float32(background))
    assert patch.array.ravel()[inside].min() >= 100  # real image values, not padding
    assert np.all(result.anatomy_patch.array.ravel()[outside] == 0)
    assert set(np.unique(result.anatomy_patch.array)) == {0, 4}


def test_empty_mask_raises_with_path(tmp_path):
    image, mask = _case(tmp_path)
    write_volume(mask.with_array(np.zeros_like(mask.array)), tmp_path / "empty.nrrd")
    empty = _read(tmp_path / "empty.nrrd")
    with pytest.raises(NoTumourFoundError, match=r"empty\.nrrd: empty tumour mask"):
        tlcr_crop(image, empty)
    with pytest.raises(NoTumourFoundError):
        tumour_roi(image, empty)


def test_component_selection():
    mask = np.zeros((30, 30, 30), np.uint8)
    mask[2:5, 2:5, 2:5] = 1  # 27 voxels
    mask[10:20, 10:20, 10:20] = 1  # 1000 voxels: the largest
    mask[25, 25, 25] = 1
    mask[26, 26, 26] = 2  # diagonal neighbour of the previous: one 26-connected component
    volume = Volume(mask, (1.0, 2.0, 3.0))
    largest = select_tumour_component(volume, "largest")
    assert largest.array.dtype == np.uint8 and largest.array.sum() == 1000 and largest.same_grid(volume)
    assert select_tumour_component(volume, "all").array.sum() == 27 + 1000 + 2
    image = Volume(np.zeros((30, 30, 30), np.int16), (1.0, 2.0, 3.0))
    assert np.allclose(tumour_roi(image, volume, 20, "largest").center, volume.index_to_physical([14.5] * 3))
    assert np.allclose(tumour_roi(image, volume, 20, "all").center, volume.index_to_physical([14.0] * 3))
    with pytest.raises(ValueError, match="component"):
        select_tumour_component(volume, "biggest")


def test_mask_on_another_grid_is_resampled_nearest(tmp_path):
    image, mask = _case(tmp_path)
    coarse = Volume(mask.array[:, :, ::2].copy(), (2.0, 1.0, 1.0), tuple(np.asarray(mask.origin) + [0.5, 0, 0]))
    result = tlcr_crop(image, coarse, roi_mm=32, patch_size=32)
    assert np.abs(np.asarray(result.roi.center) - tlcr_crop(image, mask, roi_mm=32).roi.center).max() <= 1.0


def test_crop_patch_fully_outside_is_default():
    volume = Volume(np.ones((10, 10, 10), np.int16))
    patch = crop_patch(volume, ROI((500.0, 0, 0), 20.0), 8, "linear", -3.0)
    assert patch.array.shape == (8, 8, 8) and np.all(patch.array == -3.0)
    assert background_value(volume) == 1.0


def test_tumour_smaller_than_a_patch_voxel_is_kept():
    """A 1-voxel tumour on a 0.5 mm grid, cropped to 4 mm patch voxels: nearest-neighbour sampling
    misses it, the tumour patch still marks the voxel at its centre."""
    image = Volume(np.full((40, 40, 40), 100, np.int16), (0.5, 0.5, 0.5), (-10.0, -10.0, -10.0))
    mask = np.zeros((40, 40, 40), np.uint8)
    mask[21, 22, 23] = 1
    result = tlcr_crop(image, image.with_array(mask), roi_mm=16.0, patch_size=4)
    assert int(result.tumour_patch.array.sum()) == 1
    k, j, i = np.argwhere(result.tumour_patch.array)[0]
    centre = result.tumour_patch.index_to_physical(np.array([[i, j, k]], float))[0]
    assert np.linalg.norm(centre - image.index_to_physical(np.array([[23, 22, 21]], float))[0]) <= 2 * np.sqrt(3)
