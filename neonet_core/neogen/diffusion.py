"""Class-conditional latent diffusion: MONAI ``DiffusionModelUNet`` + schedulers + one sampling loop.

Latents are scaled by ``scale_factor`` (1/std of the cached training latents) before diffusion.
Rectified flow (default): ``x_t = (1 - t) x_0 + t * noise`` with t in [0, 1] (MONAI's timesteps
are t * num_train_timesteps), the network predicts the velocity ``x_0 - noise``. DDPM/DDIM: the
network predicts the noise (``clip_sample=False``: latents are not bounded to [-1, 1]).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import torch
from monai.networks.nets import DiffusionModelUNet
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler, RFlowScheduler

from neonet_core.config import LDMConfig

NUM_CLASSES = 2  # PNI- / PNI+
SCHEDULERS = ("rflow", "ddpm", "ddim")


def unet_kwargs(cfg: LDMConfig, latent_channels: int) -> dict:
    """Arguments shared by the UNet and the ControlNet (so the ControlNet can copy the UNet's weights)."""
    bad = [c for c in cfg.channels if c % cfg.norm_num_groups]
    if bad:
        raise ValueError(f"LDMConfig.channels {cfg.channels} must all be divisible by norm_num_groups={cfg.norm_num_groups}")
    if len(cfg.attention_levels) != len(cfg.channels):
        raise ValueError(f"LDMConfig.attention_levels {cfg.attention_levels} needs one entry per channel level {cfg.channels}")
    return dict(
        spatial_dims=3,
        in_channels=latent_channels,
        channels=tuple(cfg.channels),
        attention_levels=tuple(cfg.attention_levels),
        num_res_blocks=cfg.num_res_blocks,
        num_head_channels=cfg.num_head_channels,
        norm_num_groups=cfg.norm_num_groups,
        num_class_embeds=NUM_CLASSES,
    )


def build_unet(cfg: LDMConfig, latent_channels: int) -> DiffusionModelUNet:
    """The class-conditional denoiser: latents (B, C, d, h, w), timesteps (B,), class_labels (B,) -> (B, C, d, h, w)."""
    return DiffusionModelUNet(out_channels=latent_channels, **unet_kwargs(cfg, latent_channels))


def build_scheduler(cfg: LDMConfig, latent_shape: tuple[int, int, int]):
    """The scheduler named by ``cfg.scheduler``; ``latent_shape`` (d, h, w) sets RFlow's base size."""
    if cfg.scheduler == "rflow":
        return RFlowScheduler(
            num_train_timesteps=cfg.num_train_timesteps,
            use_discrete_timesteps=True,
            sample_method=cfg.rflow_sample_method,
            use_timestep_transform=True,  # identity at the training size; shifts steps for larger latents
            base_img_size_numel=int(np.prod(latent_shape)),
            spatial_dim=3,
        )
    common = dict(
        num_train_timesteps=cfg.num_train_timesteps,
        schedule=cfg.beta_schedule,
        beta_start=cfg.beta_start,
        beta_end=cfg.beta_end,
        clip_sample=False,
        prediction_type="epsilon",
    )
    if cfg.scheduler == "ddpm":
        return DDPMScheduler(**common)
    if cfg.scheduler == "ddim":
        return DDIMScheduler(**common)
    raise ValueError(f"LDMConfig.scheduler must be one of {SCHEDULERS}, got {cfg.scheduler!r}")


def noisy_training_pair(scheduler, z0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_t, timesteps, target) for one training step; randomness from the torch global RNG.

    z0: scaled latents (B, C, d, h, w). Target: velocity ``z0 - noise`` (RFlow) or the noise (DDPM/DDIM).
    """
    noise = torch.randn_like(z0)
    if isinstance(scheduler, RFlowScheduler):
        t = scheduler.sample_timesteps(z0)
        return scheduler.add_noise(z0, noise, t), t, z0 - noise
    t = torch.randint(0, scheduler.num_train_timesteps, (z0.shape[0],), device=z0.device).long()
    return scheduler.add_noise(z0, noise, t), t, noise


def validation_pair(scheduler, z0: torch.Tensor, generator: torch.Generator):
    """Like :func:`noisy_training_pair` but from ``generator`` (CPU): the same draws every validation."""
    noise = torch.randn(z0.shape, generator=generator).to(z0.device, z0.dtype)
    t = torch.randint(1, scheduler.num_train_timesteps, (z0.shape[0],), generator=generator).to(z0.device)
    target = z0 - noise if isinstance(scheduler, RFlowScheduler) else noise
    return scheduler.add_noise(z0, noise, t), t, target


Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t, timesteps (B,)) -> model output


@torch.no_grad()
def sample_latents(denoise: Denoiser, scheduler, noise: torch.Tensor, steps: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Run the reverse process from ``noise`` (B, C, d, h, w) in ``steps`` steps; returns scaled latents.

    ``denoise(x, t)`` wraps the UNet (and ControlNet) with their conditioning. ``generator`` feeds
    the DDPM step noise (RFlow and DDIM with eta=0 are deterministic given the start noise).
    """
    x = noise
    numel = int(np.prod(noise.shape[2:]))
    if isinstance(scheduler, RFlowScheduler):
        scheduler.set_timesteps(steps, device=x.device, input_img_size_numel=numel)
    else:
        scheduler.set_timesteps(steps, device=x.device)
    timesteps = scheduler.timesteps
    for i, t in enumerate(timesteps):
        t_batch = torch.full((x.shape[0],), int(t), device=x.device, dtype=torch.long)
        out = denoise(x, t_batch).float()
        if isinstance(scheduler, RFlowScheduler):
            next_t = int(timesteps[i + 1]) if i + 1 < len(timesteps) else 0
            x, _ = scheduler.step(out, int(t), x, next_t)
        elif isinstance(scheduler, DDPMScheduler):
            x, _ = scheduler.step(out, int(t), x, generator=generator)
        else:
            x, _ = scheduler.step(out, int(t), x)
    return x
