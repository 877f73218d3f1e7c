"""Acquisition effects: partial-volume blur (slice thickness), bias field, Rician noise, scanner units.

Input is a noiseless tissue image ``(nz, ny, nx)`` float32 with liver = 1; output int16 like a scanner.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from neonet_core.phantom.grid import Grid, smooth_field
from neonet_core.phantom.params import ScannerSettings

INT16_MAX = np.iinfo(np.int16).max


def acquire(rng: np.random.Generator, grid: Grid, tissue: np.ndarray, settings: ScannerSettings) -> np.ndarray:
    """Blur, bias, noise and scale ``tissue`` ``(nz, ny, nx)``; returns an int16 array of the same shape."""
    image = gaussian_filter1d(tissue, settings.slice_blur * rng.uniform(0.8, 1.2), axis=0, mode="nearest")
    for axis in (1, 2):
        image = gaussian_filter1d(image, settings.inplane_blur, axis=axis, mode="nearest")
    image *= np.exp(settings.bias * smooth_field(rng, grid, 120.0))
    sigma = settings.noise * rng.uniform(0.8, 1.2)
    real = image + rng.standard_normal(image.shape, dtype=np.float32) * sigma
    imag = rng.standard_normal(image.shape, dtype=np.float32) * sigma
    image = np.sqrt(real * real + imag * imag)  # magnitude of complex Gaussian noise: Rician
    gain = 1000.0 * (1.0 + rng.uniform(-settings.gain_spread, settings.gain_spread))
    offset = rng.uniform(-settings.offset, settings.offset)
    return np.clip(np.rint(image * gain + offset), 0, INT16_MAX).astype(np.int16)
