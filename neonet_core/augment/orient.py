"""The fixed orientations used outside training: the 8 flip variants (:data:`FLIPS`), :func:`flip_variant`
(NeoGen's latent cache, test-time augmentation) and :func:`orient` (flips then quarter turns)."""

from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np
import torch

# The 8 flip variants of a 3D patch: every subset of the spatial axes (0, 1, 2) = (D, H, W).
# Index 0 is the identity; each variant is its own inverse. The NeoGen latent cache stores one
# encoding per variant in this order, and test-time augmentation averages over them.
FLIPS: tuple[tuple[int, ...], ...] = tuple(c for r in range(4) for c in itertools.combinations((0, 1, 2), r))


def flip_variant(x, variant: int, spatial_start: int = -3):
    """Apply flip variant ``variant`` (index into :data:`FLIPS`) to the 3 spatial axes of ``x`` that
    start at ``spatial_start`` (2 for (B, C, D, H, W), 1 for (C, D, H, W), -3 = the last three).
    Works on torch tensors and numpy arrays; variant 0 returns ``x`` itself."""
    axes = [spatial_start + a for a in FLIPS[variant]]
    if not axes:
        return x
    return torch.flip(x, axes) if isinstance(x, torch.Tensor) else np.flip(x, axes)


def orient(x, flips: Sequence[int] = (), quarter_turns: int = 0, plane: tuple[int, int] = (1, 2), spatial_start: int = -3):
    """Flip ``x`` along the spatial axes ``flips`` (0, 1, 2 = D, H, W), then rotate it by
    ``quarter_turns`` in the spatial ``plane`` (from its first axis towards its second, as
    ``np.rot90``). Torch tensors or numpy arrays (numpy results are made contiguous)."""
    axes = [spatial_start + a for a in flips]
    dims = [spatial_start + a for a in plane]
    if isinstance(x, torch.Tensor):
        out = torch.flip(x, axes) if axes else x
        return torch.rot90(out, quarter_turns, dims) if quarter_turns % 4 else out
    out = np.flip(x, axes) if axes else x
    return np.ascontiguousarray(np.rot90(out, quarter_turns, axes=dims) if quarter_turns % 4 else out)
