"""Robust intensity normalisation: the percentile map, masks, clipping, constant input, dtypes."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neonet_core.config import PreprocessConfig
from neonet_core.normalize import normalise_from_config, normalise_patch, robust_normalise, robust_percentiles
from neonet_core.volume import Volume


def _mri(seed=0, shape=(20, 24, 28)):
    """A body of tissue (int16, 300..1300) in a zero-valued air background, with a few hot voxels."""
    rng = np.random.default_rng(seed)
    array = np.zeros(shape, np.int16)
    array[3:-3, 3:-3, 3:-3] = rng.integers(300, 1300, size=(shape[0] - 6, shape[1] - 6, shape[2] - 6))
    array[5, 5, 5:10] = 30000
    return array


def test_percentiles_map_to_zero_and_one():
    array = _mri()
    out = robust_normalise(array, 0.5, 99.5, clip=None)
    body = array[array > 0]
    lo, hi = np.percentile(body, [0.5, 99.5])
    assert out.dtype == np.float32 and out.shape == array.shape
    assert robust_percentiles(array, 0.5, 99.5) == pytest.approx((lo, hi))
    assert np.allclose(out, (array - lo) / (hi - lo), atol=1e-5)
    assert np.percentile(out[array > 0], 0.5) == pytest.approx(0.0, abs=1e-5)
    assert np.percentile(out[array > 0], 99.5) == pytest.approx(1.0, abs=1e-5)


def test_background_is_left_out_and_clipping():
    array = _mri()
    padded = np.zeros((40, 24, 28), np.int16)  # twice as much air: same mapping
    padded[:20] = array
    out, out_padded = robust_normalise(array), robust_normalise(padded)
    assert np.allclose(out_padded[:20], out, atol=1e-6)
    assert out.min() == 0.0 and out.max() == 1.0
    assert np.all(out[5, 5, 5:10] == 1.0)  # hot voxels clipped
    body = out[array > 0]
    assert np.mean((body > 0) & (body < 1)) > 0.95


def test_mask_selects_the_voxels():
    array = _mri().astype(np.float32)
    mask = np.zeros(array.shape, bool)
    mask[8:12, 8:12, 8:12] = True
    out = robust_normalise(array, 0.0, 100.0, mask=mask, clip=None)
    assert out[mask].min() == pytest.approx(0.0, abs=1e-6) and out[mask].max() == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="empty"):
        robust_normalise(array, mask=np.zeros(array.shape, bool))
    with pytest.raises(ValueError, match="shape"):
        robust_normalise(array, mask=np.ones((2, 2, 2), bool))


def test_constant_image_gives_zeros():
    for value in (0, 7):
        out = robust_normalise(np.full((4, 5, 6), value, np.int16))
        assert out.dtype == np.float32 and np.all(out == 0.0) and np.isfinite(out).all()


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.floats(-1e4, 1e4), st.floats(0.01, 1e3))
def test_affine_invariance_and_monotonicity(seed, offset, scale):
    array = _mri(seed, (8, 9, 10)).astype(np.float64)
    a = robust_normalise(array, clip=None)
    b = robust_normalise(array * scale + offset, clip=None)
    assert np.allclose(a, b, atol=1e-3)
    order = np.argsort(array.ravel(), kind="stable")
    assert np.all(np.diff(a.ravel()[order]) >= -1e-6)


def test_normalise_patch_keeps_geometry_and_records_mapping():
    patch = Volume(_mri().astype(np.float32), (2.0, 2.0, 2.0), (1.0, 2.0, 3.0))
    out = normalise_patch(patch)
    assert out.same_grid(patch) and out.array.dtype == np.float32
    info = out.metadata["normalisation"]
    assert (info["lower_value"], info["upper_value"]) == pytest.approx(robust_percentiles(patch.array))
    assert info["clip"] == [0.0, 1.0]
    same = normalise_from_config(patch, PreprocessConfig(lower_percentile=0.5, upper_percentile=99.5))
    assert np.array_equal(same.array, out.array)
