"""PattenNet: the frozen NeoGen autoencoder encoder, dual attention blocks, pooling and a head.

    patch (B, 1, D, H, W) in [0, 1]
      -> the first ``encoder_blocks`` AE encoder blocks, frozen by default (0 = all of them: the
         deepest feature map before the latent projection, (B, C_enc, D/4, H/4, W/4) for the
         3-level presets; the tiny preset stops after the first residual block, (B, 8, D, H, W))
      -> adapter (:func:`build_adapter`): max-pool + conv + BatchNorm + ReLU down to the deepest
         level's grid, then conv + BatchNorm + ReLU to ``adapter_channels`` (as DANet before its attention)
      -> ``num_dab`` x DualAttentionBlock3d
      -> global average + max pooling (B, 2C) -> dropout -> linear -> logit (B,);  p(PNI) = sigmoid

Saliency: Grad-CAM (Selvaraju et al. 2017) on the output of the last DAB (on the adapter output when
``num_dab == 0``): channel weights = spatial mean of d logit / d features, map = ReLU of the weighted
channel sum, trilinearly upsampled to the patch and scaled to [0, 1] per item (:func:`grad_cam`).
The same function serves the baselines (their last convolutional stage).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from neonet_core.config import AEConfig, ClsConfig
from neonet_core.neocls.dab import DualAttentionBlock3d


def build_adapter(channels: int, downsample: int, width: int, layers: int) -> nn.Module:
    """Encoder features (B, channels, d, h, w) -> (B, width, d / 2**downsample, ...).

    ``downsample`` x [2x max-pool, 3x3x3 conv doubling the channels (at most ``width``), BatchNorm,
    ReLU] bring shallower encoder features to the deepest level's grid, then ``layers`` x [3x3x3 conv
    to ``width``, BatchNorm, ReLU]. ``width`` 0 = no adapter (identity).
    """
    if not width:
        return nn.Identity()
    modules = []
    for _ in range(downsample):
        nxt = min(2 * channels, width)
        modules += [nn.MaxPool3d(2), nn.Conv3d(channels, nxt, 3, padding=1), nn.BatchNorm3d(nxt), nn.ReLU(inplace=True)]
        channels = nxt
    for _ in range(layers):
        modules += [nn.Conv3d(channels, width, 3, padding=1), nn.BatchNorm3d(width), nn.ReLU(inplace=True)]
        channels = width
    return nn.Sequential(*modules)


class PattenNet(nn.Module):
    """forward: (B, 1, D, H, W) -> logits (B,). ``cam_layer`` is the module Grad-CAM hooks."""

    def __init__(self, ae_cfg: AEConfig, cls_cfg: ClsConfig):
        super().__init__()
        from neonet_core.neogen.autoencoder import build_autoencoder

        blocks = list(build_autoencoder(ae_cfg).encoder.blocks)
        depth = cls_cfg.encoder_blocks or len(blocks) - 2  # the last two make the latent (GroupNorm, conv)
        if not 1 <= depth <= len(blocks) - 2:
            raise ValueError(f"ClsConfig.encoder_blocks must be 0 or 1..{len(blocks) - 2}, got {cls_cfg.encoder_blocks}")
        self.encoder = nn.ModuleList(blocks[:depth])
        self.frozen = cls_cfg.freeze_encoder
        if self.frozen:
            self.encoder.requires_grad_(False)
        channels, downsample = self._encoder_output(len(ae_cfg.channels))
        if downsample and not cls_cfg.adapter_channels:
            raise ValueError("ClsConfig.adapter_channels must be > 0 when encoder_blocks stops above the deepest level")
        self.adapter = build_adapter(channels, downsample, cls_cfg.adapter_channels, cls_cfg.adapter_layers)
        channels = cls_cfg.adapter_channels or channels
        self.dabs = nn.ModuleList(DualAttentionBlock3d(channels, cls_cfg.dab_reduction) for _ in range(cls_cfg.num_dab))
        self.dropout = nn.Dropout(cls_cfg.dropout)
        self.head = nn.Linear(2 * channels, 1)

    @property
    def cam_layer(self) -> nn.Module:
        """Grad-CAM target: the last DAB (the adapter when there is none). A property, not a
        registered submodule, so the state dict names each weight once."""
        return self.dabs[-1] if len(self.dabs) else self.adapter

    @torch.no_grad()
    def _encoder_output(self, levels: int) -> tuple[int, int]:
        """(channels of the encoder output, 2x downsamplings from its grid to the deepest level's grid)."""
        side = 2 ** levels
        out = self.encode(torch.zeros(1, 1, side, side, side))
        deepest = side // 2 ** (levels - 1)
        return int(out.shape[1]), int(math.log2(out.shape[-1] // deepest))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, D, H, W) -> encoder features (B, C_enc, d, h, w)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            for block in self.encoder:
                x = block(x)
        return x

    def load_encoder(self, autoencoder: nn.Module) -> None:
        """Copy the encoder blocks' weights from a trained NeoGen AutoencoderKL."""
        for mine, theirs in zip(self.encoder, autoencoder.encoder.blocks):
            mine.load_state_dict(theirs.state_dict())

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.encoder.eval()  # frozen means frozen: no dropout / norm statistics change either
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.adapter(self.encode(x))
        for dab in self.dabs:
            f = dab(f)
        pooled = torch.cat([f.mean(dim=(2, 3, 4)), f.amax(dim=(2, 3, 4))], dim=1)
        return self.head(self.dropout(pooled)).squeeze(1)


def grad_cam(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Grad-CAM of the PNI logit on ``model.cam_layer``.

    x: (B, 1, D, H, W). Returns (logits (B,), cam (B, D, H, W) in [0, 1], both detached). Only the
    gradient with respect to the hooked features is computed; no parameter receives a gradient.
    """
    store = {}

    def hook(_module, _inputs, output):
        if not output.requires_grad:  # e.g. the hooked layer sits right after a frozen encoder
            output = output.detach().requires_grad_(True)
        store["features"] = output
        return output

    handle = model.cam_layer.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            logits = model(x.detach())
            grads = torch.autograd.grad(logits.sum(), store["features"])[0]
    finally:
        handle.remove()
    features = store["features"].detach()
    weights = grads.mean(dim=(2, 3, 4), keepdim=True)
    cam = F.relu((weights * features).sum(1, keepdim=True))
    cam = F.interpolate(cam.float(), size=x.shape[2:], mode="trilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).amax(1).clamp_min(1e-12)
    return logits.detach(), cam / peak[:, None, None, None]


__all__ = ["PattenNet", "grad_cam"]
