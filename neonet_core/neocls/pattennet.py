"""PattenNet: the frozen NeoGen autoencoder encoder, dual attention blocks, pooling and a head.

    patch (B, C, D, H, W): channel 0 the image in [0, 1]; channels 1.. (optional) e.g. the tumour mask
      -> ``encoder``: the first blocks of the NeoGen autoencoder's encoder on the image channel, frozen
         by default: (B, C_enc, D / 2**k, ...) (:func:`build_ae_encoder` builds them from an AEConfig;
         all blocks before the latent projection give the deepest features, (B, channels[-1], D/4, ...)
         for the 3-level presets; the tiny preset stops after the first residual block, (B, 8, D, H, W))
      -> the extra input channels, average-pooled to the encoder's grid, concatenated
      -> adapter (:func:`build_adapter`): ``pool_steps`` x [max-pool + conv + BatchNorm + ReLU] down to
         the deepest level's grid, then conv + BatchNorm + ReLU to ``dab_channels`` (as DANet before its attention)
      -> ``num_dab`` x DualAttentionBlock3d
      -> global average + max pooling (B, 2C), or (``pooling="regions"``, beyond the paper) average + max
         within the tumour, the peritumoral shell and outside (B, 6C) -> dropout -> linear -> logit (B,)

Saliency: Grad-CAM (Selvaraju et al. 2017) on the output of the last DAB (on the adapter output when
``num_dab == 0``): channel weights = spatial mean of d logit / d features, map = ReLU of the weighted
channel sum, trilinearly upsampled to the patch and scaled to [0, 1] per item (:func:`grad_cam`).
The same function serves every classifier of :mod:`neonet_core.neocls.models` (``model.cam_layer``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.nets.autoencoderkl import Encoder
from torch import nn

from neonet_core.config import AEConfig
from neonet_core.neocls.dab import DualAttentionBlock3d
from neonet_core.neocls.pooling import check_pooling, pool_features, pooled_width

AE_NORM_EPS = 1e-6  # MONAI AutoencoderKL's default; the encoder blocks must match the autoencoder's


def ae_encoder_plan(channels: Sequence[int], num_res_blocks: int, with_nonlocal_attn: bool = False) -> list[tuple[int, int]]:
    """(output channels, 2x downsamplings from the input) after each block of a MONAI AutoencoderKL
    encoder without attention levels, in block order, up to (not including) the GroupNorm and conv
    that make the latent. Arithmetic only; no network is built.

    Example: ``ae_encoder_plan((8, 16, 32), 1)`` ->
    ``[(8, 0), (8, 0), (8, 1), (16, 1), (16, 2), (32, 2)]`` (conv_in, res, down, res, down, res).
    """
    plan = [(channels[0], 0)]
    for level, ch in enumerate(channels):
        plan += [(ch, level)] * num_res_blocks
        if level < len(channels) - 1:
            plan.append((ch, level + 1))  # AEKLDownsample keeps the channels, halves the grid
    if with_nonlocal_attn:
        plan += [(channels[-1], len(channels) - 1)] * 3  # res block, attention, res block
    return plan


def build_ae_encoder(ae_cfg: AEConfig, blocks: int = 0) -> tuple[nn.Sequential, int, int]:
    """The first ``blocks`` encoder blocks of the NeoGen autoencoder ``ae_cfg`` describes (0 = all
    before the latent projection), without its decoder.

    Returns (encoder, its output channels, 2x downsamplings between the encoder's output grid and
    the deepest level's grid). ``encoder`` is an ``nn.Sequential`` whose block ``i`` has the
    parameter names and shapes of ``AutoencoderKL.encoder.blocks[i]``, so trained weights copy over
    (:meth:`PattenNet.load_encoder`). Shapes: (B, 1, D, H, W) -> (B, C_enc, D / 2**k, ...).
    """
    levels = len(ae_cfg.channels)
    plan = ae_encoder_plan(ae_cfg.channels, ae_cfg.num_res_blocks, ae_cfg.with_nonlocal_attn)
    depth = blocks or len(plan)
    if not 1 <= depth <= len(plan):
        raise ValueError(f"ClsConfig.encoder_blocks must be 0 or 1..{len(plan)}, got {blocks}")
    if any(c % ae_cfg.norm_num_groups for c in ae_cfg.channels):
        raise ValueError(f"AEConfig.channels {ae_cfg.channels} must all be divisible by norm_num_groups={ae_cfg.norm_num_groups}")
    full = Encoder(
        spatial_dims=3,
        in_channels=1,
        channels=tuple(ae_cfg.channels),
        out_channels=ae_cfg.latent_channels,
        num_res_blocks=(ae_cfg.num_res_blocks,) * levels,
        norm_num_groups=ae_cfg.norm_num_groups,
        norm_eps=AE_NORM_EPS,
        attention_levels=(False,) * levels,
        with_nonlocal_attn=ae_cfg.with_nonlocal_attn,
    )
    channels, level = plan[depth - 1]
    return nn.Sequential(*list(full.blocks)[:depth]), channels, levels - 1 - level


def ae_level_taps(ae_cfg: AEConfig) -> tuple[list[int], int]:
    """The encoder block indices that end each resolution level of the autoencoder ``ae_cfg``
    describes (the last block before each downsampling, and the last block before the latent
    projection), and the sum of their channels: the multi-scale features of ``PattenNet(taps=...)``.

    Example: ``ae_level_taps(AEConfig(channels=(8, 16, 32)))`` -> ``([1, 3, 5], 56)``.
    """
    plan = ae_encoder_plan(ae_cfg.channels, ae_cfg.num_res_blocks, ae_cfg.with_nonlocal_attn)
    taps = [max(i for i, (_, lv) in enumerate(plan) if lv == level) for level in range(len(ae_cfg.channels))]
    return taps, sum(plan[i][0] for i in taps)


def build_adapter(channels: int, pool_steps: int, width: int, layers: int) -> nn.Module:
    """Encoder features (B, channels, d, h, w) -> (B, width, d / 2**pool_steps, ...).

    ``pool_steps`` x [2x max-pool, 3x3x3 conv doubling the channels (at most ``width``; the last one
    to ``width`` when ``layers`` is 0), BatchNorm, ReLU] bring shallower encoder features to the
    deepest level's grid, then ``layers`` x [3x3x3 conv to ``width``, BatchNorm, ReLU]. With neither,
    the identity (``width`` must then equal ``channels``).
    """
    if not pool_steps and not layers:
        if width != channels:
            raise ValueError(f"an adapter without layers keeps the {channels} encoder channels; dab_channels is {width}")
        return nn.Identity()
    modules: list[nn.Module] = []
    for step in range(pool_steps):
        nxt = width if (step == pool_steps - 1 and not layers) else min(2 * channels, width)
        modules += [nn.MaxPool3d(2), nn.Conv3d(channels, nxt, 3, padding=1), nn.BatchNorm3d(nxt), nn.ReLU(inplace=True)]
        channels = nxt
    for _ in range(layers):
        modules += [nn.Conv3d(channels, width, 3, padding=1), nn.BatchNorm3d(width), nn.ReLU(inplace=True)]
        channels = width
    return nn.Sequential(*modules)


class PattenNet(nn.Module):
    """Frozen autoencoder encoder + adapter + dual attention blocks + linear head.

    Args:
        encoder: the autoencoder encoder blocks, (B, 1, D, H, W) -> (B, encoder_channels, d, h, w)
            (an ``nn.Sequential`` from :func:`build_ae_encoder`; :meth:`load_encoder` copies trained
            weights into it block by block).
        encoder_channels: channels of the encoder's output.
        in_channels: input channels. Channel 0 is the image (the only one the encoder sees); channels
            1.. (e.g. the tumour mask) are average-pooled to the encoder's grid and concatenated to its
            features before the adapter.
        dab_channels: channels of the features the attention blocks and the head see (the adapter's
            width). ``None``: no adapter, the encoder's features (plus the extra channels) go straight in.
        num_dab: dual attention blocks (0 = none: an ablation).
        dab_reduction: query/key channels of the position attention = ``dab_channels // dab_reduction``.
        pool_steps: 2x max-pool stages in the adapter (from the encoder's grid to the deepest level's).
        adapter_layers: conv + BatchNorm + ReLU layers at the adapter's output grid.
        dropout: dropout before the linear head.
        freeze_encoder: the encoder's weights and normalisation statistics never change.
        taps: encoder block indices whose outputs are max-pooled to the last tap's grid and
            concatenated (multi-scale features, :func:`ae_level_taps`); empty = the last block's output.
            ``encoder_channels`` is then the sum of the tapped channels.
        pooling: ``"global"`` (average + max over the whole grid) or ``"regions"`` (average + max
            within the tumour, the peritumoral shell and outside, from the mask in input channel 1:
            :mod:`neonet_core.neocls.pooling`; needs ``in_channels >= 2``).
        shell_voxels: width of the peritumoral shell at the patch grid (``"regions"`` pooling).

    Shapes: forward (B, in_channels, D, H, W) -> logits (B,). ``cam_layer`` is the module Grad-CAM hooks.

    Example::

        encoder, channels, pool_steps = build_ae_encoder(AEConfig(), blocks=2)
        net = PattenNet(encoder, channels, in_channels=1, dab_channels=32, pool_steps=pool_steps)
        net.load_encoder(trained_autoencoder)
        net(torch.rand(8, 1, 32, 32, 32)).shape  # (8,)
    """

    def __init__(
        self,
        encoder: nn.Module,
        encoder_channels: int,
        in_channels: int = 1,
        dab_channels: int | None = 32,
        num_dab: int = 1,
        dab_reduction: int = 8,
        pool_steps: int = 0,
        adapter_layers: int = 1,
        dropout: float = 0.2,
        freeze_encoder: bool = True,
        taps: Sequence[int] = (),
        pooling: str = "global",
        shell_voxels: int = 3,
    ):
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"in_channels must be at least 1, got {in_channels}")
        check_pooling(pooling, in_channels)
        if dab_channels is None and (pool_steps or adapter_layers):
            raise ValueError("PattenNet without an adapter (dab_channels None, e.g. ClsConfig.adapter_channels 0) "
                             "needs the deepest encoder features (ClsConfig.encoder_blocks 0)")
        self.in_channels = in_channels
        self.encoder = encoder
        self.taps = tuple(taps)
        self.pooling, self.shell_voxels = pooling, int(shell_voxels)
        self.frozen = freeze_encoder
        if self.frozen:
            self.encoder.requires_grad_(False)
        features = encoder_channels + in_channels - 1
        self.adapter = build_adapter(features, pool_steps, dab_channels or features, adapter_layers)
        channels = dab_channels or features
        self.dabs = nn.ModuleList(DualAttentionBlock3d(channels, dab_reduction) for _ in range(num_dab))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(pooled_width(channels, pooling), 1)

    @property
    def cam_layer(self) -> nn.Module:
        """Grad-CAM target: the last DAB (the adapter when there is none). A property, not a
        registered submodule, so the state dict names each weight once."""
        return self.dabs[-1] if len(self.dabs) else self.adapter

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, D, H, W) -> encoder features of the image channel (B, C_enc, d, h, w)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            if not self.taps:
                return self.encoder(x[:, :1])
            f, tapped = x[:, :1], []
            for i, block in enumerate(self.encoder):
                f = block(f)
                if i in self.taps:
                    tapped.append(f)
            grid = tapped[-1].shape[2:]
            return torch.cat([F.adaptive_max_pool3d(t, grid) for t in tapped], dim=1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The adapter's input: encoder features with the extra input channels pooled onto their grid."""
        f = self.encode(x)
        if self.in_channels > 1:
            f = torch.cat([f, F.adaptive_avg_pool3d(x[:, 1:].to(f.dtype), f.shape[2:])], dim=1)
        return f

    def load_encoder(self, autoencoder: nn.Module) -> None:
        """Copy the encoder blocks' weights from a trained NeoGen AutoencoderKL (or its ``encoder``)."""
        theirs = getattr(autoencoder, "encoder", autoencoder).blocks
        if len(theirs) < len(self.encoder):
            raise ValueError(f"the autoencoder has {len(theirs)} encoder blocks; PattenNet uses {len(self.encoder)}")
        for mine, block in zip(self.encoder, theirs):
            mine.load_state_dict(block.state_dict())

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.encoder.eval()  # frozen means frozen: no dropout / norm statistics change either
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.adapter(self.features(x))
        for dab in self.dabs:
            f = dab(f)
        return self.head(self.dropout(pool_features(f, x, self.pooling, self.shell_voxels))).squeeze(1)


def grad_cam(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Grad-CAM of the PNI logit on ``model.cam_layer``.

    x: (B, C, D, H, W). Returns (logits (B,), cam (B, D, H, W) in [0, 1], both detached). Only the
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


__all__ = ["PattenNet", "grad_cam", "build_ae_encoder", "ae_encoder_plan", "ae_level_taps", "build_adapter"]
