"""The measures of the NeoGen quality report on inputs with known answers."""

import numpy as np
import pytest

from neonet_core.metrics import dice
from neonet_core.neogen.report import found_tumour, frechet_distance, ms_ssim


def _sphere(radius=5.0, size=32, centre=(16, 15, 17)):
    k, j, i = np.mgrid[:size, :size, :size]
    return ((k - centre[0]) ** 2 + (j - centre[1]) ** 2 + (i - centre[2]) ** 2) <= radius**2


def test_found_tumour_recovers_a_dark_lesion():
    rng = np.random.default_rng(0)
    tumour = _sphere()
    image = np.clip(0.7 + 0.03 * rng.standard_normal(tumour.shape) - 0.4 * tumour, 0, 1)
    assert dice(found_tumour(image, tumour), tumour) > 0.95
    bright = 1.0 - image  # the method takes the lesion's side from the reference patch
    assert dice(found_tumour(bright, tumour, reference=bright), tumour) > 0.95
    flat = np.full(tumour.shape, 0.5)  # nothing to find
    assert dice(found_tumour(flat, tumour), tumour) == 0.0
    assert dice(np.zeros(3), np.zeros(3)) == 1.0


def test_ms_ssim_and_frechet_distance():
    rng = np.random.default_rng(1)
    a = rng.random((32, 32, 32)).astype(np.float32)
    assert ms_ssim(a, a) == pytest.approx(1.0, abs=1e-4)
    other = ms_ssim(a, rng.random((32, 32, 32)).astype(np.float32))
    close = ms_ssim(a, np.clip(a + 0.05 * rng.standard_normal(a.shape), 0, 1).astype(np.float32))
    assert other < 0.5 < 0.9 < close < 1.0
    x = rng.standard_normal((200, 4))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-3)
    assert frechet_distance(x, x + 2.0) == pytest.approx(16.0, rel=1e-3)  # |mean shift|^2 = 4 * 2^2


