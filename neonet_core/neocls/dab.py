"""3D Dual Attention Block (DAB), after DANet (Fu et al., CVPR 2019), for volumes.

Two branches work on the same feature map ``x`` of shape (B, C, D, H, W) with N = D*H*W voxels:

- Position attention (:class:`PositionAttention3d`): query and key are 1x1x1 convolutions to C/8
  channels, the value a 1x1x1 convolution to C channels. Every voxel attends to every voxel:
  ``softmax(Q K^T) V`` with Q, K (B, N, C/8) and V (B, N, C) (DANet uses no 1/sqrt(d) scaling, nor do
  we). It is computed with ``torch.nn.functional.scaled_dot_product_attention``: on backends with a
  fused kernel (flash / memory-efficient attention on CUDA, the flash kernel of recent CPU builds)
  the (N, N) attention matrix is never materialised and memory is O(N * C); the math fallback
  builds it, O(N^2) per batch item (N = 512 for a 32^3 patch at 4x downsampling: 1 MiB in float32;
  N = 4096 for a 64^3 patch at 4x: 64 MiB).
- Channel attention (:class:`ChannelAttention3d`): ``softmax(max(E) - E) X`` with the (C, C) Gram
  matrix ``E = X X^T`` of the flattened features (B, C, N); memory O(C^2 + C * N).

Each branch has a learnable scalar gate initialised to 0, and the outputs are fused by a sum:

    DAB(x) = x + gamma_p * PA(x) + gamma_c * CA(x)

so a freshly built block is exactly the identity and learns how much attention to mix in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _flatten(x: torch.Tensor) -> torch.Tensor:
    """(B, C, D, H, W) -> (B, N, C)."""
    return x.flatten(2).transpose(1, 2)


class PositionAttention3d(nn.Module):
    """Spatial self-attention. forward: (B, C, D, H, W) -> (B, C, D, H, W), the attended values
    (without the residual and gate; :class:`DualAttentionBlock3d` adds those).

    ``explicit=True`` computes softmax(QK^T)V by hand (for checking; always O(N^2) memory).
    """

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        inner = max(1, channels // reduction)
        self.query = nn.Conv3d(channels, inner, 1)
        self.key = nn.Conv3d(channels, inner, 1)
        self.value = nn.Conv3d(channels, channels, 1)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The (B, N, N) attention weights (explicit; for inspection and tests)."""
        q, k = _flatten(self.query(x)), _flatten(self.key(x))
        return torch.softmax(q @ k.transpose(1, 2), dim=-1)

    def forward(self, x: torch.Tensor, explicit: bool = False) -> torch.Tensor:
        b, c = x.shape[:2]
        v = _flatten(self.value(x))  # (B, N, C)
        if explicit:
            out = self.attention(x) @ v
        else:
            q, k = _flatten(self.query(x)), _flatten(self.key(x))
            out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None], scale=1.0)[:, 0]
        return out.transpose(1, 2).reshape(b, c, *x.shape[2:])


class ChannelAttention3d(nn.Module):
    """Channel self-attention (no parameters but the block's gate). (B, C, D, H, W) -> same shape."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        flat = x.flatten(2).float()  # (B, C, N)
        energy = flat @ flat.transpose(1, 2)  # (B, C, C)
        energy = energy.amax(dim=-1, keepdim=True) - energy  # DANet's max-subtraction
        attn = torch.softmax(energy, dim=-1)
        return (attn @ flat).reshape(b, c, *x.shape[2:]).to(x.dtype)


class DualAttentionBlock3d(nn.Module):
    """``x + gamma_p * PA(x) + gamma_c * CA(x)``; gates start at 0 (identity). Shapes: (B, C, D, H, W) in and out."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        self.position = PositionAttention3d(channels, reduction)
        self.channel = ChannelAttention3d()
        self.gamma_position = nn.Parameter(torch.zeros(1))
        self.gamma_channel = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, explicit: bool = False) -> torch.Tensor:
        return x + self.gamma_position * self.position(x, explicit) + self.gamma_channel * self.channel(x)


__all__ = ["DualAttentionBlock3d", "PositionAttention3d", "ChannelAttention3d"]
