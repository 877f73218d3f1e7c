"""Classifier data: TLCR patches of real and synthetic cases, and training-time augmentation.

A :class:`PatchSet` holds normalised image patches (N, D, H, W) float32 in [0, 1] with their labels.
Real patches come from :func:`neonet_core.neogen.data.extract_patches` (TLCR crop + per-patch robust
normalisation: no statistic is pooled over cases, so nothing in preprocessing learns from the
cohort); synthetic patches are NeoGen's generated images, already on their patch grid.

Augmentation (:func:`augment`) runs batched in the training step, on real items only, with the
torch global RNG (seeded per step by the engine, so a resumed run sees the same augmentations):
random flips along each axis, a small random rotation (trilinear, border padding) and an
intensity gain/offset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from neonet_core.errors import NeoNetError
from neonet_core.fileio import atomic_path


@dataclass
class PatchSet:
    """Patches and their labels. images: (N, D, H, W) float32; labels, synthetic: (N,)."""

    case_ids: list[str]
    patient_ids: list[str]
    images: np.ndarray
    labels: np.ndarray
    synthetic: np.ndarray = field(default=None)

    def __post_init__(self):
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.synthetic is None:
            self.synthetic = np.zeros(len(self.case_ids), dtype=bool)
        self.synthetic = np.asarray(self.synthetic, dtype=bool)

    def __len__(self):
        return len(self.case_ids)

    def select(self, case_ids) -> "PatchSet":
        index = {c: i for i, c in enumerate(self.case_ids)}
        missing = [c for c in case_ids if c not in index]
        if missing:
            raise NeoNetError(f"no patch for case(s) {', '.join(missing[:5])}")
        idx = [index[c] for c in case_ids]
        return PatchSet([self.case_ids[i] for i in idx], [self.patient_ids[i] for i in idx], self.images[idx], self.labels[idx], self.synthetic[idx])

    def __add__(self, other: "PatchSet") -> "PatchSet":
        if len(other) == 0:
            return self
        return PatchSet(self.case_ids + other.case_ids, self.patient_ids + other.patient_ids,
                        np.concatenate([self.images, other.images]), np.concatenate([self.labels, other.labels]),
                        np.concatenate([self.synthetic, other.synthetic]))

    def save(self, path: str | Path) -> Path:
        with atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, images=self.images, labels=self.labels, synthetic=self.synthetic,
                         case_ids=np.asarray(self.case_ids), patient_ids=np.asarray(self.patient_ids))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "PatchSet":
        with np.load(path, allow_pickle=False) as z:
            return cls([str(c) for c in z["case_ids"]], [str(p) for p in z["patient_ids"]], z["images"], z["labels"], z["synthetic"])


def real_patches(cases, cfg) -> PatchSet:
    """TLCR patches of the real cases (``cfg``: NeoNetConfig or PreprocessConfig)."""
    from neonet_core.neogen.data import extract_patches

    records = extract_patches([c for c in cases if not c.synthetic], cfg)
    return PatchSet([r.case_id for r in records], [r.patient_id for r in records],
                    np.stack([r.image for r in records]).astype(np.float32), [r.label for r in records])


def synthetic_patches(cases) -> PatchSet:
    """NeoGen's synthetic cases (image files already on their patch grid, intensities in [0, 1])."""
    from neonet_core.io import read_volume

    cases = [c for c in cases if c.synthetic]
    if not cases:
        return PatchSet([], [], np.zeros((0, 1, 1, 1), np.float32), [], [])
    images = np.stack([read_volume(c.image).array.astype(np.float32) for c in cases])
    return PatchSet([c.case_id for c in cases], [c.patient_id for c in cases], images, [c.label for c in cases], np.ones(len(cases), bool))


class PatchDataset(torch.utils.data.Dataset):
    """Items ``{"image": (1, D, H, W) float32, "label": () float32, "real": () bool}``."""

    def __init__(self, patches: PatchSet):
        self.patches = patches

    def __len__(self):
        return len(self.patches)

    def __getitem__(self, i):
        p = self.patches
        return {
            "image": torch.from_numpy(np.ascontiguousarray(p.images[i]))[None],
            "label": torch.tensor(float(p.labels[i])),
            "real": torch.tensor(not bool(p.synthetic[i])),
        }


def _rotation_matrices(angles: torch.Tensor) -> torch.Tensor:
    """angles (B, 3) radians -> rotation matrices (B, 3, 3) = Rz @ Ry @ Rx."""
    cx, cy, cz = torch.cos(angles).unbind(1)
    sx, sy, sz = torch.sin(angles).unbind(1)
    one, zero = torch.ones_like(cx), torch.zeros_like(cx)
    rx = torch.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], 1).view(-1, 3, 3)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], 1).view(-1, 3, 3)
    rz = torch.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], 1).view(-1, 3, 3)
    return rz @ ry @ rx


def augment(x: torch.Tensor, real: torch.Tensor, rotate_deg: float = 10.0, intensity: float = 0.1) -> torch.Tensor:
    """Random flips, rotation (+/- rotate_deg about each axis) and gain/offset (+/- intensity) of the
    items where ``real`` is True. x: (B, 1, D, H, W); real: (B,) bool. Random numbers are drawn for
    every item (torch global RNG), so the draws do not depend on which items are real."""
    b = x.shape[0]
    dev = x.device
    flips = torch.rand(b, 3, device=dev) < 0.5
    angles = (torch.rand(b, 3, device=dev) * 2 - 1) * math.radians(rotate_deg)
    gain = 1 + (torch.rand(b, device=dev) * 2 - 1) * intensity
    offset = (torch.rand(b, device=dev) * 2 - 1) * intensity
    out = x
    for axis in range(3):
        out = torch.where(flips[:, axis, None, None, None, None], out.flip(2 + axis), out)
    if rotate_deg > 0:
        theta = torch.cat([_rotation_matrices(angles).to(x.dtype), torch.zeros(b, 3, 1, device=dev, dtype=x.dtype)], 2)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        out = F.grid_sample(out, grid, mode="bilinear", padding_mode="border", align_corners=False)
    out = out * gain.view(b, 1, 1, 1, 1).to(x.dtype) + offset.view(b, 1, 1, 1, 1).to(x.dtype)
    return torch.where(real.view(b, 1, 1, 1, 1), out, x)


__all__ = ["PatchSet", "PatchDataset", "real_patches", "synthetic_patches", "augment"]
