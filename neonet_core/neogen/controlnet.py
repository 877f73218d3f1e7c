"""The mask-conditioned ControlNet (MONAI ``ControlNet``) and its conditioning tensor.

Conditioning: one channel per structure at patch resolution, ``MASK_CHANNELS`` = tumour, liver,
bile duct, vessel (1 inside, 0 outside). No background channel: it is implied by all-zero voxels
and would only add a redundant input. The tumour channel is the tumour mask or anatomy label 4.
The mask encoder has one stride-2 stage per autoencoder downsampling, so its output lands on the
latent grid (D/4, H/4, W/4).
"""

from __future__ import annotations

import numpy as np
import torch
from monai.networks.nets import ControlNet, DiffusionModelUNet

from neonet_core.config import AEConfig, ControlNetConfig, LDMConfig
from neonet_core.labels import ANATOMY_LABELS, TUMOUR_LABEL
from neonet_core.neogen.diffusion import unet_kwargs

MASK_CHANNELS = ("tumour",) + tuple(ANATOMY_LABELS[k] for k in sorted(ANATOMY_LABELS) if k != TUMOUR_LABEL)
_ANATOMY_FOR_CHANNEL = [k for k in sorted(ANATOMY_LABELS) if k != TUMOUR_LABEL]


def mask_channels(tumour: np.ndarray, anatomy: np.ndarray | None = None) -> np.ndarray:
    """One-hot conditioning (len(MASK_CHANNELS), D, H, W) float32 from a tumour mask and anatomy labels."""
    tumour = np.asarray(tumour) != 0
    out = np.zeros((len(MASK_CHANNELS),) + tumour.shape, dtype=np.float32)
    out[0] = tumour
    if anatomy is not None:
        anatomy = np.asarray(anatomy)
        if anatomy.shape != tumour.shape:
            raise ValueError(f"anatomy mask shape {anatomy.shape} differs from the tumour mask {tumour.shape}")
        out[0] = np.logical_or(tumour, anatomy == TUMOUR_LABEL)
        for c, label in enumerate(_ANATOMY_FOR_CHANNEL, start=1):
            out[c] = anatomy == label
    return out


def build_controlnet(cfg: ControlNetConfig, ldm_cfg: LDMConfig, ae_cfg: AEConfig) -> ControlNet:
    """A ControlNet with the UNet's architecture and a mask encoder matching the AE's downsampling.

    ``cfg.conditioning_channels`` holds the channels after each stride-2 stage; MONAI's encoder gets
    ``(c[0],) + c`` (a stride-1 input block, then one stride-2 block per entry).
    """
    stages = len(ae_cfg.channels) - 1
    if len(cfg.conditioning_channels) != stages:
        raise ValueError(
            f"ControlNetConfig.conditioning_channels {cfg.conditioning_channels} needs {stages} entries "
            f"(one per autoencoder downsampling, AE channels {ae_cfg.channels})"
        )
    channels = (cfg.conditioning_channels[0],) + tuple(cfg.conditioning_channels)
    return ControlNet(
        **unet_kwargs(ldm_cfg, ae_cfg.latent_channels),
        conditioning_embedding_in_channels=len(MASK_CHANNELS),
        conditioning_embedding_num_channels=channels,
    )


def init_from_unet(controlnet: ControlNet, unet: DiffusionModelUNet) -> ControlNet:
    """Copy the UNet's weights into the matching ControlNet layers (its zero convs stay zero)."""
    controlnet.load_state_dict(unet.state_dict(), strict=False)
    return controlnet


def controlled_unet_output(
    unet: DiffusionModelUNet,
    controlnet: ControlNet,
    x: torch.Tensor,
    t: torch.Tensor,
    labels: torch.Tensor,
    cond: torch.Tensor,
    scale: float = 1.0,
) -> torch.Tensor:
    """UNet output with ControlNet residuals. x: (B, C, d, h, w); cond: (B, len(MASK_CHANNELS), D, H, W)."""
    down, mid = controlnet(x=x, timesteps=t, controlnet_cond=cond, conditioning_scale=scale, class_labels=labels)
    return unet(x=x, timesteps=t, class_labels=labels, down_block_additional_residuals=down, mid_block_additional_residual=mid)
