"""The NeoGen autoencoder: MONAI ``AutoencoderKL`` in 3D with ``len(channels) - 1`` stride-2 stages.

Images are normalised TLCR patches in [0, 1], shape (B, 1, D, H, W); latents are
(B, latent_channels, D/4, H/4, W/4) for the 3-level presets.
"""

from __future__ import annotations

import dataclasses

import torch
from monai.networks.nets import AutoencoderKL, PatchDiscriminator

from neonet_core.config import AEConfig


def build_autoencoder(cfg: AEConfig) -> AutoencoderKL:
    """A 3D single-channel AutoencoderKL from ``cfg`` (no attention inside the levels)."""
    bad = [c for c in cfg.channels if c % cfg.norm_num_groups]
    if bad:
        raise ValueError(f"AEConfig.channels {cfg.channels} must all be divisible by norm_num_groups={cfg.norm_num_groups}")
    return AutoencoderKL(
        spatial_dims=3,
        in_channels=1,
        out_channels=1,
        channels=tuple(cfg.channels),
        num_res_blocks=cfg.num_res_blocks,
        attention_levels=(False,) * len(cfg.channels),
        latent_channels=cfg.latent_channels,
        norm_num_groups=cfg.norm_num_groups,
        with_encoder_nonlocal_attn=cfg.with_nonlocal_attn,
        with_decoder_nonlocal_attn=cfg.with_nonlocal_attn,
    )


def build_discriminator(cfg: AEConfig) -> PatchDiscriminator:
    """The patch discriminator of the optional adversarial loss (instance norm: batch-size independent)."""
    return PatchDiscriminator(spatial_dims=3, channels=cfg.discriminator_channels, in_channels=1, num_layers_d=2, norm="INSTANCE")


def downsampling_factor(cfg: AEConfig) -> int:
    """Spatial reduction of the autoencoder (4 for three levels)."""
    return 2 ** (len(cfg.channels) - 1)


def kl_loss(z_mu: torch.Tensor, z_sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma) || N(0, 1)) summed over latent voxels, averaged over the batch."""
    kl = 0.5 * (z_mu.pow(2) + z_sigma.pow(2) - torch.log(z_sigma.pow(2) + 1e-12) - 1.0)
    return kl.flatten(1).sum(1).mean()


def encode_features(ae: AutoencoderKL, x: torch.Tensor) -> torch.Tensor:
    """The encoder's deepest feature map before the latent projection.

    x: (B, 1, D, H, W) -> (B, channels[-1], D/4, H/4, W/4) (after the last residual/attention block,
    before the final GroupNorm + conv that make the latent). NeoCls builds on this.
    """
    blocks = ae.encoder.blocks
    for block in blocks[:-2]:  # the last two blocks are GroupNorm and the conv to the latent channels
        x = block(x)
    return x


@torch.no_grad()
def decode_latents(ae: AutoencoderKL, z: torch.Tensor) -> torch.Tensor:
    """Latents (B, C, d, h, w) (unscaled) -> images (B, 1, D, H, W) clipped to the patch range [0, 1]."""
    return ae.decode(z).clamp(0.0, 1.0)


@torch.no_grad()
def round_trip(ae: AutoencoderKL, images, batch_size: int = 16):
    """Patches (N, D, H, W) in [0, 1] through the autoencoder: encode (latent mean), decode, clip.

    Returns a float32 numpy array of the same shape: what a real patch looks like after the
    autoencoder, as every synthetic patch does (the classifier's "decoded look" control).
    """
    import numpy as np

    ae = ae.eval()
    device = next(ae.parameters()).device
    out = np.empty(np.shape(images), dtype=np.float32)
    for start in range(0, len(images), batch_size):
        x = torch.as_tensor(np.asarray(images[start : start + batch_size], dtype=np.float32))[:, None].to(device)
        z_mu, _ = ae.encode(x)
        out[start : start + batch_size] = decode_latents(ae, z_mu)[:, 0].float().cpu().numpy()
    return out
