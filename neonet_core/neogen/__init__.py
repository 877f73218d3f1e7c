"""NeoGen: 3D latent diffusion that balances the PNI classes with synthetic patches.

Pipeline: TLCR patches -> :mod:`autoencoder` (MONAI AutoencoderKL, 4x) -> cached latents
(:mod:`data`) -> class-conditional latent diffusion UNet (:mod:`diffusion`) -> mask-conditioned
ControlNet (:mod:`controlnet`) -> :mod:`generate` (generation, 1:1 balancing) -> :mod:`report`.
Every stage trains through the shared engine (:mod:`stages`).
"""

from neonet_core.neogen.autoencoder import build_autoencoder, decode_latents, encode_features
from neonet_core.neogen.controlnet import MASK_CHANNELS, build_controlnet, mask_channels
from neonet_core.neogen.diffusion import build_scheduler, build_unet, sample_latents

__all__ = [
    "build_autoencoder",
    "encode_features",
    "decode_latents",
    "build_unet",
    "build_scheduler",
    "sample_latents",
    "build_controlnet",
    "mask_channels",
    "MASK_CHANNELS",
]
