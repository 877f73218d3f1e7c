"""The one training-time augmentation: its config (:class:`AugmentConfig`), one batched function
(:func:`augment_batch`) and the fixed orientations the rest of the library needs (:data:`FLIPS`,
:func:`flip_variant`, :func:`orient`).

Transforms, in the order they are applied to each item of a batch ``(B, C, D, H, W)``:

1. geometry, exact (no interpolation, every voxel value kept): a flip along each axis of
   ``flip_axes`` with probability ``flip_prob``; a random 90-degree rotation (``rot90``: ``"inplane"``
   = quarter turns in ``rot90_plane``, ``"all"`` = the 24 rotations of the cube; only the shape-keeping
   ones when sides differ); an integer shift of up to ``shift`` voxels per axis (``shift_mode``:
   ``"roll"`` wraps round, a bijection; ``"edge"`` repeats the border voxels). The same geometry is
   applied to every channel of an item and to every ``extras`` tensor (masks).
2. geometry, interpolated (opt-in): a small rotation of up to ``rotate_deg`` about each axis,
   trilinear on intensity channels, nearest on mask channels and extras. It blurs (issue 14 measured
   ~24 % of the high-frequency energy of real patches), so the lossless preset turns it off.
3. intensity, on the intensity channels only: a smooth multiplicative bias field (Legendre polynomial
   of degree ``bias_degree``, coefficients in +/- ``bias_field``), a gamma curve (``log gamma`` in
   +/- ``gamma``, on the item's min-max range as MONAI's RandAdjustContrast does), gain
   ``1 +/- gain`` and offset ``+/- offset``, Gaussian noise of a standard deviation drawn in
   ``[0, noise_std]``.

``AugmentConfig()`` is the classifier augmentation of before (flips, +/- 10 degrees trilinear, gain and
offset +/- 0.1): with ``where=real`` it draws the same random numbers as the old
``neocls.data.augment(x, real)`` and gives a bit-identical result (Testing/test_augment.py keeps
that function as a reference, and NeoGen's and NeoSeg's old flips and jitter too).
``AugmentConfig.lossless()`` is flips + quarter turns + integer shifts + intensity.

Randomness: every draw comes from ``generator`` or else the torch global RNG (which the engine seeds
each step), so the same seed gives the same output. A draw is made only for the transforms that are
on, in a fixed order: flips, quarter turns, shifts, rotation angles, gain, offset, bias field, gamma,
noise (so turning an intensity transform on or off keeps the geometry of a seed, and the legacy
configurations draw exactly what the code they replace drew).
Real and synthetic items are augmented alike; ``where`` can restrict the items (a legacy option).

Implementation: hand-written, batched torch, not a MONAI ``Compose`` run per item, because it is
faster in every measured case. ``bench/bench_augment.py`` (CPU, 1 thread, 2 shared cores, median of
30 batches of 8 x 1 x N^3; MONAI 1.6.1 array transforms per item, ``set_track_meta(False)``), ms per
batch, ours / MONAI (ratio), two runs:

- lossless (flips, quarter turns, edge shift <= 2, gain, offset), 32^3: 1.04 / 6.2 (0.17); 1.06 / 9.3 (0.11)
- lossless, 64^3: 5.8 / 25.7 (0.22); 6.5 / 23.8 (0.27)
- full (+ 10-degree trilinear rotation, bias field, gamma, noise), 32^3: 20.5 / 56.3 (0.36); 15.9 / 57.0 (0.28)
- full, 64^3: 203 / 314 (0.65); 234 / 286 (0.82) (trilinear ``grid_sample`` is most of it)

The lossless geometry folds each item's flips and quarter turns into one flip and a permuted view,
and its shift into one pad; per-item intensity factors act on a (B, voxels) view, in place.

MONAI's random transforms also draw from their own numpy ``RandomState`` (one per transform), not
from the torch RNG the engine seeds and checkpoints, and ``RandAffine`` resamples even for an identity
draw; MONAI has no integer shift (pad + random crop emulates the edge mode, nothing does the roll).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

# The 8 flip variants of a 3D patch: every subset of the spatial axes (0, 1, 2) = (D, H, W).
# Index 0 is the identity; each variant is its own inverse. The NeoGen latent cache stores one
# encoding per variant in this order, and test-time augmentation averages over them.
FLIPS: tuple[tuple[int, ...], ...] = tuple(c for r in range(4) for c in itertools.combinations((0, 1, 2), r))

ROT90_MODES = ("none", "inplane", "all")
SHIFT_MODES = ("roll", "edge")


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


# --- exact rotations -------------------------------------------------------------------------------
# A rotation is a list of (quarter turns, spatial plane) applied in order. The 24 rotations of the
# cube: which face lies along axis 0 (6 ways) x quarter turns about axis 0 (4 ways).
_FACES = ((0, (0, 1)), (1, (0, 1)), (2, (0, 1)), (3, (0, 1)), (1, (0, 2)), (3, (0, 2)))
_CUBE = tuple(((fk, fp), (k, (1, 2))) for fk, fp in _FACES for k in range(4))


def _rotations(mode: str, plane: tuple[int, int], shape: Sequence[int]) -> list[tuple]:
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
        p.rotations = _rotations(cfg.rot90, cfg.rot90_plane, spatial_shape)
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
        p.bias = _uniform((b, len(_bias_terms(cfg.bias_degree))), cfg.bias_field, dev, generator)
    if cfg.gamma > 0:
        p.gamma = torch.exp(_uniform(b, cfg.gamma, dev, generator))
    if cfg.noise_std > 0:
        p.noise = torch.rand(b, device=dev, generator=generator) * cfg.noise_std
    return p


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


def _plan(p: AugmentParams, item: int) -> tuple[list[int], list[int], list[int]]:
    """The lossless geometry of ``item`` as one flip, one axis permutation and one shift: ``(flip,
    axes, shift)``: flip the input's spatial axes ``flip``, then output axis ``a`` is input axis
    ``axes[a]``, then shift output axis ``a`` by ``shift[a]``. Equal to :func:`apply_exact_geometry`."""
    axes, reverse = [0, 1, 2], [bool(f) for f in p.flips[item]]
    for k, (a, b) in p.rotations[p.rotation[item]]:
        for _ in range(k % 4):  # torch.rot90(t, 1, (a, b)) == t.flip(b).transpose(a, b)
            reverse[b] = not reverse[b]
            axes[a], axes[b], reverse[a], reverse[b] = axes[b], axes[a], reverse[b], reverse[a]
    return [axes[a] for a in range(3) if reverse[a]], axes, [int(s) for s in p.shift[item]]


def _geometry_batch(t: torch.Tensor, plans: list, mode: str) -> torch.Tensor:
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


def _rotation_matrices(angles: torch.Tensor) -> torch.Tensor:
    """angles (B, 3) radians about x, y, z -> (B, 3, 3) = Rz @ Ry @ Rx."""
    cx, cy, cz = torch.cos(angles).unbind(1)
    sx, sy, sz = torch.sin(angles).unbind(1)
    one, zero = torch.ones_like(cx), torch.zeros_like(cx)
    rx = torch.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], 1).view(-1, 3, 3)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], 1).view(-1, 3, 3)
    rz = torch.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], 1).view(-1, 3, 3)
    return rz @ ry @ rx


def _resample(t: torch.Tensor, grid: torch.Tensor, mode: str) -> torch.Tensor:
    """grid_sample ``t`` (B, C, D, H, W) of any dtype (integers: nearest, cast back)."""
    if t.is_floating_point():
        return F.grid_sample(t, grid.to(t.dtype), mode=mode, padding_mode="border", align_corners=False)
    out = F.grid_sample(t.float(), grid, mode="nearest", padding_mode="border", align_corners=False)
    return out.round().to(t.dtype)


def _bias_terms(degree: int) -> list[tuple[int, int, int]]:
    return [(i, j, k) for i in range(degree + 1) for j in range(degree + 1 - i) for k in range(degree + 1 - i - j)]


def _legendre(n: int, degree: int, device, dtype) -> torch.Tensor:
    """Legendre polynomials P_0..P_degree on n points in [-1, 1]: (degree + 1, n)."""
    x = torch.linspace(-1, 1, n, device=device, dtype=dtype)
    polys = [torch.ones_like(x), x]
    for m in range(1, degree):
        polys.append(((2 * m + 1) * x * polys[m] - m * polys[m - 1]) / (m + 1))
    return torch.stack(polys[: degree + 1])


def bias_field(coeffs: torch.Tensor, shape: Sequence[int], degree: int) -> torch.Tensor:
    """Multiplicative fields exp(sum_c coeff_c P_i(z) P_j(y) P_k(x)) for coeffs (B, K) in the order
    of the terms i + j + k <= degree: (B, D, H, W). Evaluated axis by axis (no (K, D, H, W) basis)."""
    b, m = coeffs.shape[0], degree + 1
    full = torch.zeros(b, m, m, m, device=coeffs.device, dtype=coeffs.dtype)
    i, j, k = (torch.tensor(v, device=coeffs.device) for v in zip(*_bias_terms(degree)))
    full[:, i, j, k] = coeffs
    pz, py, px = (_legendre(n, degree, coeffs.device, coeffs.dtype) for n in shape)
    log = torch.einsum("bijk,kx->bijx", full, px)
    log = torch.einsum("bijx,jy->biyx", log, py).reshape(b, m, -1)
    log = torch.matmul(pz.t(), log)  # (D, m) @ (B, m, H*W)
    return torch.exp(log).view(b, *shape)


def _intensity(v: torch.Tensor, p: AugmentParams, degree: int, generator=None, inplace: bool = False) -> torch.Tensor:
    """The intensity transforms on the intensity channels ``v`` (B, c, D, H, W); ``inplace`` when
    ``v`` is a buffer of our own (a fresh large tensor per step costs page faults). Per-item factors
    multiply a (B, c * voxels) view by (B, 1) columns: broadcasting over four size-1 dimensions is
    several times slower in torch on the CPU."""
    shape, b = v.shape, v.shape[0]
    v = v.reshape(b, -1)
    if not inplace:
        v = v.clone()

    def col(t):
        return t.to(v.device, v.dtype).view(b, 1)

    if p.bias is not None:
        field = bias_field(p.bias.to(v.device, torch.float32), shape[2:], degree).to(v.dtype)
        v.view(shape).mul_(field[:, None])
    if p.gamma is not None:
        lo = v.amin(1, keepdim=True)
        span = v.amax(1, keepdim=True) - lo
        v.sub_(lo).div_(span + 1e-7).clamp_(0, 1).pow_(col(p.gamma)).mul_(span).add_(lo)
    if p.gain is not None:
        v.mul_(col(p.gain))
    if p.offset is not None:
        v.add_(col(p.offset))
    if p.noise is not None:
        noise = torch.randn(v.shape, device=p.noise.device, generator=generator).to(v.device, v.dtype)
        v.add_(noise.mul_(col(p.noise)))
    return v.view(shape)


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

    plans = [_plan(p, i) for i in range(b)]
    out = _geometry_batch(x, plans, p.shift_mode)
    ext = [_geometry_batch(e, plans, p.shift_mode) for e in extras or ()]
    if p.angles is not None:
        theta = torch.cat([_rotation_matrices(p.angles.to(x.device)), torch.zeros(b, 3, 1, device=x.device, dtype=p.angles.dtype)], 2)
        grid = F.affine_grid(theta, [b, 1, *x.shape[2:]], align_corners=False)
        if others:
            rotated = out.clone()
            rotated[:, ic] = _resample(out[:, ic], grid, "bilinear")
            rotated[:, others] = _resample(out[:, others], grid, "nearest")
            out = rotated
        else:
            out = _resample(out, grid, "bilinear")
        ext = [_resample(e.reshape(b, -1, *e.shape[-3:]), grid, "nearest").reshape(e.shape) for e in ext]

    if ic and any(v is not None for v in (p.bias, p.gamma, p.gain, p.offset, p.noise)):
        owned = out is not x  # the geometry wrote a fresh buffer: transform it in place
        v = _intensity(out[:, ic] if others else out, p, cfg.bias_degree, generator, inplace=owned or bool(others))
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


__all__ = ["AugmentConfig", "AugmentParams", "FLIPS", "augment_batch", "apply_exact_geometry", "bias_field",
           "flip_variant", "orient", "sample_params"]
