"""The intensity transforms of the augmentation: bias field, gamma, gain, offset and noise, per item."""

from __future__ import annotations

from typing import Sequence

import torch

from neonet_core.augment.config import AugmentParams


def bias_terms(degree: int) -> list[tuple[int, int, int]]:
    """The (i, j, k) Legendre degrees of the bias-field terms, i + j + k <= ``degree``."""
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
    i, j, k = (torch.tensor(v, device=coeffs.device) for v in zip(*bias_terms(degree)))
    full[:, i, j, k] = coeffs
    pz, py, px = (_legendre(n, degree, coeffs.device, coeffs.dtype) for n in shape)
    log = torch.einsum("bijk,kx->bijx", full, px)
    log = torch.einsum("bijx,jy->biyx", log, py).reshape(b, m, -1)
    log = torch.matmul(pz.t(), log)  # (D, m) @ (B, m, H*W)
    return torch.exp(log).view(b, *shape)


def apply_intensity(v: torch.Tensor, p: AugmentParams, degree: int, generator=None, inplace: bool = False) -> torch.Tensor:
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
