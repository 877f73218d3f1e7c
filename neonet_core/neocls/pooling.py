"""How a classifier turns its last feature map into one vector: global or per region.

``"global"``: average + max over the whole grid, (B, C, d, h, w) -> (B, 2C).
``"regions"`` (beyond the paper): average + max within the tumour, the peritumoral shell and
outside, from the tumour mask in input channel 1 -> (B, 6C). The phantom's PNI signal (tumour-like
extensions next to the tumour) lives in the shell; global pooling has to find it without the mask.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

POOLINGS = ("global", "regions")


def region_weights(mask: torch.Tensor, grid: Sequence[int], shell: int) -> torch.Tensor:
    """Tumour, peritumoral shell and outside as soft weights on a feature grid.

    mask: (B, 1, D, H, W) tumour mask at the patch grid (> 0 = tumour). The shell is the tumour
    dilated by ``shell`` voxels (a cube) minus the tumour; outside is the rest. Each region is
    average-pooled to ``grid``: (B, 3, d, h, w), the share of each feature cell in each region.
    """
    tumour = (mask > 0).float()
    grown = F.max_pool3d(tumour, 2 * shell + 1, stride=1, padding=shell) if shell else tumour
    regions = torch.cat([tumour, grown - tumour, 1.0 - grown], dim=1)
    return F.adaptive_avg_pool3d(regions, tuple(grid))


def region_pool(f: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Features (B, C, d, h, w) pooled in each region of ``weights`` (B, R, d, h, w): the weighted
    mean and the max over the cells the region touches (0 where it touches none) -> (B, R * 2C)."""
    pooled = []
    for r in range(weights.shape[1]):
        w = weights[:, r : r + 1]
        mean = (f * w).sum(dim=(2, 3, 4)) / w.sum(dim=(2, 3, 4)).clamp_min(1e-6)
        touched = w > 0
        peak = f.masked_fill(~touched, float("-inf")).amax(dim=(2, 3, 4))
        pooled += [mean, torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))]
    return torch.cat(pooled, dim=1)


def check_pooling(pooling: str, in_channels: int) -> None:
    """ValueError for an unknown pooling, or ``"regions"`` without the mask channel."""
    if pooling not in POOLINGS or (pooling == "regions" and in_channels < 2):
        raise ValueError(f"pooling must be one of {POOLINGS} ('regions' needs the tumour mask: in_channels >= 2), "
                         f"got {pooling!r} with in_channels={in_channels}")


def pooled_width(channels: int, pooling: str) -> int:
    """Length of the pooled vector for ``channels`` feature channels."""
    return 2 * channels * (3 if pooling == "regions" else 1)


def pool_features(f: torch.Tensor, x: torch.Tensor, pooling: str, shell_voxels: int) -> torch.Tensor:
    """Features (B, C, d, h, w) of the input ``x`` (B, in_channels, D, H, W) -> (B, pooled_width)."""
    if pooling == "regions":
        return region_pool(f, region_weights(x[:, 1:2], f.shape[2:], shell_voxels))
    return torch.cat([f.mean(dim=(2, 3, 4)), f.amax(dim=(2, 3, 4))], dim=1)


__all__ = ["POOLINGS", "region_weights", "region_pool", "check_pooling", "pooled_width", "pool_features"]
