"""Phantom parameters and what ``difficulty`` (0 = easy, 1 = hard) does to them.

Every amplitude that makes a case harder to read grows linearly with difficulty: scanner noise,
bias field, slice-thickness blur, intensity scale spread; and the PNI extensions get shorter,
thinner, fainter and fewer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

GENERATOR_VERSION = 1  # bump when the same (seed, index, params) would give different voxels


@dataclass(frozen=True)
class PhantomParams:
    """Grid and difficulty of a phantom cohort. ``size`` is ``(i, j, k)`` voxels, ``spacing`` mm."""

    size: tuple[int, int, int] = (128, 128, 40)
    spacing: tuple[float, float, float] = (1.5, 1.5, 3.0)
    difficulty: float = 0.5

    def __post_init__(self):
        object.__setattr__(self, "size", tuple(int(n) for n in self.size))
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        object.__setattr__(self, "difficulty", float(self.difficulty))
        if len(self.size) != 3 or min(self.size) < 8:
            raise ValueError(f"phantom size must be 3 numbers of at least 8 voxels, got {self.size}")
        if len(self.spacing) != 3 or min(self.spacing) <= 0:
            raise ValueError(f"phantom spacing must be 3 positive numbers (mm), got {self.spacing}")
        if not 0.0 <= self.difficulty <= 1.0:
            raise ValueError(f"difficulty must be between 0 and 1, got {self.difficulty}")

    def to_dict(self) -> dict:
        return {**asdict(self), "size": list(self.size), "spacing": list(self.spacing)}

    @property
    def scanner(self) -> "ScannerSettings":
        d = self.difficulty
        return ScannerSettings(
            noise=0.012 + 0.032 * d,
            bias=0.025 + 0.1 * d,
            slice_blur=0.2 + 0.2 * d,
            inplane_blur=0.27 + 0.12 * d,
            gain_spread=0.02 + 0.12 * d,
            offset=8.0 * d,
        )

    @property
    def pni(self) -> "PniSettings":
        # Calibrated with bench/phantom_learnability.py: a tiny CNN on 128 cases needs sizeable
        # extensions; at difficulty 0.5 its 3-fold CV AUC lands around 0.75-0.9.
        d = self.difficulty
        fewer = int(d >= 0.75)
        return PniSettings(
            count=(4 - fewer, 5 - fewer),
            length_mm=(31.5 - 6.0 * d, 39.5 - 5.5 * d),
            radius_mm=(4.7 - 0.8 * d, 5.2 - 0.75 * d),
            contrast=(1.0 - 0.1 * d, 1.0),
        )


@dataclass(frozen=True)
class ScannerSettings:
    """Acquisition effects. ``noise`` is the Rician sigma relative to the liver signal; ``bias`` the std of
    the log bias field; blurs are Gaussian sigmas in voxels; ``gain_spread`` the relative spread of the
    global scale; ``offset`` the largest global offset (stored units)."""

    noise: float
    bias: float
    slice_blur: float
    inplane_blur: float
    gain_spread: float
    offset: float


@dataclass(frozen=True)
class PniSettings:
    """Ranges (low, high) for the PNI extensions of a positive case: how many, how long from the tumour
    surface (mm), how thick at the root (mm radius), and how close to tumour intensity (1 = tumour)."""

    count: tuple[int, int]
    length_mm: tuple[float, float]
    radius_mm: tuple[float, float]
    contrast: tuple[float, float]


def uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    """One draw from ``bounds`` (low, high); an empty range gives ``low``."""
    lo, hi = bounds
    return float(lo if hi <= lo else rng.uniform(lo, hi))
