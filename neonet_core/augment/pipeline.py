"""Draw the parameters of a batch (:func:`sample_params`) and apply them in order (:func:`augment_batch`)."""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from neonet_core.augment.config import AugmentConfig, AugmentParams
from neonet_core.augment.geometry import exact_rotations, geometry_batch, item_plan, resample, rotation_matrices
from neonet_core.augment.intensity import apply_intensity, bias_terms


def _uniform(shape, lo_hi: float, device, generator) -> torch.Tensor:
    return (torch.rand(shape, device=device, generator=generator) * 2 - 1) * lo_hi


def sample_params(batch: int, spatial_shape: Sequence[int], cfg: AugmentConfig, device="cpu", generator: torch.Generator | None = None) -> AugmentParams:
    """Draw the random parameters of one batch (torch global RNG unless ``generator``)."""
    cfg.check()
    dev = generator.device if generator is not None else torch.device(device)
    b = batch
    flips = [[False] * 3 for _ in range(b)]
    if cfg.flip_axes and cfg.flip_prob > 0:
        coins = (torch.rand(b, 3, device=dev, generator=generator) < cfg.flip_prob).tolist()
        flips = [[c[a] and a in cfg.flip_axes for a in range(3)] for c in coins]
    p = AugmentParams(flips, [()], [0] * b, [[0, 0, 0] for _ in range(b)], cfg.shift_mode)
    if cfg.rot90 != "none":
        p.rotations = exact_rotations(cfg.rot90, cfg.rot90_plane, spatial_shape)
        p.rotation = torch.randint(len(p.rotations), (b,), device=dev, generator=generator).tolist()
    if cfg.shift > 0:
        p.shift = torch.randint(-cfg.shift, cfg.shift + 1, (b, 3), device=dev, generator=generator).tolist()
    if cfg.rotate_deg > 0:
        p.angles = _uniform((b, 3), math.radians(cfg.rotate_deg), dev, generator)
    if cfg.gain > 0:
        p.gain = 1 + _uniform(b, cfg.gain, dev, generator)
    if cfg.offset > 0:
        p.offset = _uniform(b, cfg.offset, dev, generator)
    if cfg.bias_field > 0:
        p.bias = _uniform((b, len(bias_terms(cfg.bias_degree))), cfg.bias_field, dev, generator)
    if cfg.gamma > 0:
        p.gamma = torch.exp(_uniform(b, cfg.gamma, dev, generator))
    if cfg.noise_std > 0:
        p.noise = torch.rand(b, device=dev, generator=generator) * cfg.noise_std
    return p


def augment_batch(x: torch.Tensor, cfg: AugmentConfig, *, intensity_channels: Sequence[int] | None = None,
                  extras: Sequence[torch.Tensor] | None = None, where: torch.Tensor | None = None,
                  generator: torch.Generator | None = None):
    """Augment a batch ``x`` (B, C, D, H, W) with ``cfg``; returns a tensor of the same shape and dtype.

    intensity_channels: the channels that get the intensity transforms (None = all); the others (e.g.
        a tumour-mask channel) get the geometry only, interpolated by nearest neighbour.
    extras: tensors (B, ..., D, H, W) (e.g. masks (B, D, H, W)) given the same geometry as their item;
        with extras the result is ``(x, [extras...])``.
    where: optional (B,) bool; items where it is False come back unchanged (every item by default:
        real and synthetic patches alike).
    generator: draw from it instead of the torch global RNG.
    """
    extras = None if extras is None else list(extras)
    if not cfg.enabled:
        return x if extras is None else (x, extras)
    if x.dim() != 5:
        raise ValueError(f"augment_batch expects (B, C, D, H, W), got shape {tuple(x.shape)}")
    b, c = x.shape[:2]
    for e in extras or ():
        if e.shape[0] != b or e.shape[-3:] != x.shape[-3:]:
            raise ValueError(f"augment_batch: extra tensor {tuple(e.shape)} does not match the batch {tuple(x.shape)}")
    p = sample_params(b, x.shape[2:], cfg, x.device, generator)
    ic = list(range(c)) if intensity_channels is None else sorted({int(i) % c for i in intensity_channels})
    others = [i for i in range(c) if i not in ic]

    plans = [item_plan(p, i) for i in range(b)]
    out = geometry_batch(x, plans, p.shift_mode)
    ext = [geometry_batch(e, plans, p.shift_mode) for e in extras or ()]
    if p.angles is not None:
        theta = torch.cat([rotation_matrices(p.angles.to(x.device)), torch.zeros(b, 3, 1, device=x.device, dtype=p.angles.dtype)], 2)
        grid = F.affine_grid(theta, [b, 1, *x.shape[2:]], align_corners=False)
        if others:
            rotated = out.clone()
            rotated[:, ic] = resample(out[:, ic], grid, "bilinear")
            rotated[:, others] = resample(out[:, others], grid, "nearest")
            out = rotated
        else:
            out = resample(out, grid, "bilinear")
        ext = [resample(e.reshape(b, -1, *e.shape[-3:]), grid, "nearest").reshape(e.shape) for e in ext]

    if ic and any(v is not None for v in (p.bias, p.gamma, p.gain, p.offset, p.noise)):
        owned = out is not x  # the geometry wrote a fresh buffer: transform it in place
        v = apply_intensity(out[:, ic] if others else out, p, cfg.bias_degree, generator, inplace=owned or bool(others))
        if others:
            out = out if owned else out.clone()
            out[:, ic] = v
        else:
            out = v
    if where is not None:
        keep = where.to(x.device).bool()
        out = torch.where(keep.view(b, 1, 1, 1, 1), out, x)
        ext = [torch.where(keep.view(b, *[1] * (e.dim() - 1)), a, e) for a, e in zip(ext, extras or ())]
    return out if extras is None else (out, ext)
