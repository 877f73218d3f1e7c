"""The options of the augmentation (:class:`AugmentConfig`) and the random draws of one batch (:class:`AugmentParams`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

ROT90_MODES = ("none", "inplane", "all")
SHIFT_MODES = ("roll", "edge")


@dataclass
class AugmentConfig:
    """Training-time augmentation. Defaults: today's classifier augmentation; see :meth:`lossless`."""

    enabled: bool = True
    flip_axes: tuple[int, ...] = (0, 1, 2)  # spatial axes (D, H, W) that may be flipped
    flip_prob: float = 0.5  # per axis and item
    rot90: str = "none"  # "none", "inplane" (quarter turns in rot90_plane), "all" (24 cube rotations)
    rot90_plane: tuple[int, int] = (1, 2)  # spatial axes of the in-plane turns: (H, W) = axial
    shift: int = 0  # integer shift of up to +/- this many voxels per axis
    shift_mode: str = "roll"  # "roll" (wrap round: lossless) or "edge" (repeat the border voxels)
    rotate_deg: float = 10.0  # small trilinear rotation, +/- degrees about each axis; 0 = off (blurs)
    gain: float = 0.1  # intensity * (1 +/- gain)
    offset: float = 0.1  # intensity + (+/- offset)
    gamma: float = 0.0  # gamma = exp(+/- this) on the item's min-max range; 0 = off
    bias_field: float = 0.0  # Legendre coefficients of a log bias field in +/- this; 0 = off
    bias_degree: int = 3
    noise_std: float = 0.0  # Gaussian noise, standard deviation drawn in [0, noise_std]; 0 = off

    @classmethod
    def lossless(cls, rot90: str = "inplane", shift: int = 2, shift_mode: str = "roll", intensity: float = 0.1, **kwargs) -> "AugmentConfig":
        """Flips on every axis, 90-degree rotations, integer shifts and gain/offset ``intensity``;
        no interpolation. ``rot90="all"`` for patches whose orientation carries no meaning."""
        return cls(**{**dict(rot90=rot90, shift=shift, shift_mode=shift_mode, rotate_deg=0.0, gain=intensity, offset=intensity), **kwargs})

    @classmethod
    def flips(cls, **kwargs) -> "AugmentConfig":
        """Flips on every axis only (no turns, shifts, rotation or intensity change)."""
        return cls(**{**dict(rotate_deg=0.0, gain=0.0, offset=0.0), **kwargs})

    @classmethod
    def off(cls) -> "AugmentConfig":
        return cls(enabled=False)

    def geometry_is_lossless(self) -> bool:
        """True when the geometry keeps every voxel value (no interpolated rotation)."""
        return self.rotate_deg == 0

    def check(self) -> "AugmentConfig":
        """Raise ValueError on an invalid option; returns self."""
        if self.rot90 not in ROT90_MODES:
            raise ValueError(f"augment rot90 must be one of {ROT90_MODES}, got {self.rot90!r}")
        if self.shift_mode not in SHIFT_MODES:
            raise ValueError(f"augment shift_mode must be one of {SHIFT_MODES}, got {self.shift_mode!r}")
        if any(a not in (0, 1, 2) for a in self.flip_axes) or len(set(self.rot90_plane)) != 2 or any(a not in (0, 1, 2) for a in self.rot90_plane):
            raise ValueError(f"augment axes are spatial axes 0, 1, 2: flip_axes={self.flip_axes}, rot90_plane={self.rot90_plane}")
        if not 0 <= self.flip_prob <= 1:
            raise ValueError(f"augment flip_prob must be in [0, 1], got {self.flip_prob}")
        for name in ("shift", "rotate_deg", "gain", "offset", "gamma", "bias_field", "bias_degree", "noise_std"):
            if getattr(self, name) < 0:
                raise ValueError(f"augment {name} must be >= 0, got {getattr(self, name)}")
        return self


@dataclass
class AugmentParams:
    """The random draws of one batch (CPU values). ``flips`` (B, 3) bool; ``rotation`` (B,) index
    into ``rotations``; ``shift`` (B, 3) int; ``angles`` (B, 3) radians or None; ``gain``, ``offset``,
    ``gamma``, ``noise`` (B,) or None; ``bias`` (B, K) or None."""

    flips: list
    rotations: list
    rotation: list
    shift: list
    shift_mode: str
    angles: torch.Tensor | None = None
    gain: torch.Tensor | None = None
    offset: torch.Tensor | None = None
    gamma: torch.Tensor | None = None
    bias: torch.Tensor | None = None
    noise: torch.Tensor | None = None
