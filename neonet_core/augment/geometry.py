"""The geometry of the augmentation: exact (flips, quarter turns, integer shifts; batched as one flip,
a permuted view and one pad per item) and interpolated (small rotations by ``grid_sample``)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from neonet_core.augment.config import AugmentParams

# --- exact rotations -------------------------------------------------------------------------------
# A rotation is a list of (quarter turns, spatial plane) applied in order. The 24 rotations of the
# cube: which face lies along axis 0 (6 ways) x quarter turns about axis 0 (4 ways).
_FACES = ((0, (0, 1)), (1, (0, 1)), (2, (0, 1)), (3, (0, 1)), (1, (0, 2)), (3, (0, 2)))
_CUBE = tuple(((fk, fp), (k, (1, 2))) for fk, fp in _FACES for k in range(4))


def exact_rotations(mode: str, plane: tuple[int, int], shape: Sequence[int]) -> list[tuple]:
    """The rotations of ``mode`` that keep a spatial ``shape``, identity first."""
    cands = [((k, tuple(plane)),) for k in range(4)] if mode == "inplane" else list(_CUBE)
    keep = []
    for rot in cands:
        s = list(shape)
        for k, (a, b) in rot:
            if k % 2:
                s[a], s[b] = s[b], s[a]
        if s == list(shape):
            keep.append(rot)
    return keep


def _rotate(t: torch.Tensor, rot: tuple, inverse: bool = False) -> torch.Tensor:
    for k, (a, b) in (reversed(rot) if inverse else rot):
        if k % 4:
            t = torch.rot90(t, -k if inverse else k, (a - 3, b - 3))
    return t


def _shift(t: torch.Tensor, shift: Sequence[int], mode: str) -> torch.Tensor:
    if not any(shift):
        return t
    if mode == "roll":
        return torch.roll(t, tuple(int(s) for s in shift), (-3, -2, -1))
    for axis, s in enumerate(shift):
        if s:
            n = t.shape[axis - 3]
            idx = (torch.arange(n, device=t.device) - int(s)).clamp_(0, n - 1)
            t = t.index_select(t.dim() + axis - 3, idx)
    return t


def apply_exact_geometry(t: torch.Tensor, p: AugmentParams, item: int, inverse: bool = False) -> torch.Tensor:
    """The lossless geometry (flips, quarter turns, shift) of batch item ``item`` applied to ``t``,
    whose last three dimensions are spatial; ``inverse`` undoes it (exactly, for the roll shift)."""
    flips = [a - 3 for a in range(3) if p.flips[item][a]]
    rot = p.rotations[p.rotation[item]]
    if not inverse:
        t = torch.flip(t, flips) if flips else t
        return _shift(_rotate(t, rot), p.shift[item], p.shift_mode)
    t = _rotate(_shift(t, [-s for s in p.shift[item]], p.shift_mode), rot, inverse=True)
    return torch.flip(t, flips) if flips else t


def item_plan(p: AugmentParams, item: int) -> tuple[list[int], list[int], list[int]]:
    """The lossless geometry of ``item`` as one flip, one axis permutation and one shift: ``(flip,
    axes, shift)``: flip the input's spatial axes ``flip``, then output axis ``a`` is input axis
    ``axes[a]``, then shift output axis ``a`` by ``shift[a]``. Equal to :func:`apply_exact_geometry`."""
    axes, reverse = [0, 1, 2], [bool(f) for f in p.flips[item]]
    for k, (a, b) in p.rotations[p.rotation[item]]:
        for _ in range(k % 4):  # torch.rot90(t, 1, (a, b)) == t.flip(b).transpose(a, b)
            reverse[b] = not reverse[b]
            axes[a], axes[b], reverse[a], reverse[b] = axes[b], axes[a], reverse[b], reverse[a]
    return [axes[a] for a in range(3) if reverse[a]], axes, [int(s) for s in p.shift[item]]


def geometry_batch(t: torch.Tensor, plans: list, mode: str) -> torch.Tensor:
    """Apply each item's plan to ``t`` (B, ..., D, H, W): a flip, a permuted view, a pad, one copy."""
    if all(not flip and axes == [0, 1, 2] and not any(shift) for flip, axes, shift in plans):
        return t
    out = torch.empty_like(t, memory_format=torch.contiguous_format)
    lead = t.dim() - 4  # dimensions between the batch and the spatial ones
    for i, (flip, axes, shift) in enumerate(plans):
        y = t[i]
        if flip:
            y = torch.flip(y, [lead + a for a in flip])
        y = y.permute(*range(lead), *(lead + a for a in axes))
        if y.dtype == torch.bool:  # replicate padding has no bool kernel
            out[i].copy_(_shift_by_padding(y.to(torch.uint8), shift, mode))
        else:
            out[i].copy_(_shift_by_padding(y, shift, mode))
    return out


def _shift_by_padding(t: torch.Tensor, shift: Sequence[int], mode: str) -> torch.Tensor:
    """:func:`_shift` as one replicate / circular pad and a sliced view (any strides; not bool)."""
    n = t.shape[-3:]
    s = [(v % m if (v % m) <= m // 2 else v % m - m) if mode == "roll" else max(-m, min(m, v)) for v, m in zip(shift, n)]
    if not any(s):
        return t
    pad = [abs(v) for v in s]
    padded = F.pad(t.reshape(1, -1, *n), (pad[2], pad[2], pad[1], pad[1], pad[0], pad[0]),
                   mode="circular" if mode == "roll" else "replicate")
    view = padded[0, :, pad[0] - s[0]: pad[0] - s[0] + n[0], pad[1] - s[1]: pad[1] - s[1] + n[1], pad[2] - s[2]: pad[2] - s[2] + n[2]]
    return view.reshape(t.shape)


def rotation_matrices(angles: torch.Tensor) -> torch.Tensor:
    """angles (B, 3) radians about x, y, z -> (B, 3, 3) = Rz @ Ry @ Rx."""
    cx, cy, cz = torch.cos(angles).unbind(1)
    sx, sy, sz = torch.sin(angles).unbind(1)
    one, zero = torch.ones_like(cx), torch.zeros_like(cx)
    rx = torch.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], 1).view(-1, 3, 3)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], 1).view(-1, 3, 3)
    rz = torch.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], 1).view(-1, 3, 3)
    return rz @ ry @ rx


def resample(t: torch.Tensor, grid: torch.Tensor, mode: str) -> torch.Tensor:
    """grid_sample ``t`` (B, C, D, H, W) of any dtype (integers: nearest, cast back)."""
    if t.is_floating_point():
        return F.grid_sample(t, grid.to(t.dtype), mode=mode, padding_mode="border", align_corners=False)
    out = F.grid_sample(t.float(), grid, mode="nearest", padding_mode="border", align_corners=False)
    return out.round().to(t.dtype)
