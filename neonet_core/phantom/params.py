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
            noise=0.02 + 0.08 * d,
            bias=0.05 + 0.25 * d,
            slice_blur=0.25 + 0.5 * d,
            inplane_blur=0.3 + 0.3 * d,
            gain_spread=0.05 + 0.3 * d,
            offset=20.0 * d,
        )

    @property
    def pni(self) -> "PniSettings":
        d = self.difficulty
        return PniSettings(
            count=(2 - int(d >= 0.75), 4 - int(2 * d + 0.5)),
            length_mm=(20.0 - 10.0 * d, 35.0 - 15.0 * d),
            radius_mm=(3.2 - 1.2 * d, 4.0 - 1.4 * d),
            contrast=(1.0 - 0.3 * d, 1.0),
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
