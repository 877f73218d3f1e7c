"""The NeoGen training stages for the shared engine (:class:`neonet_core.engine.Trainer`).

All training randomness (flips, flip variants, latent sampling, noise, timesteps) is drawn from
the torch global RNG inside ``training_step``, which the engine seeds per step: resume is exact.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from neonet_core.augment import AugmentConfig, augment_batch, flip_variant
from neonet_core.config import AEConfig, ControlNetConfig, LDMConfig
from neonet_core.engine import Stage, TrainConfig
from neonet_core.neogen.autoencoder import build_autoencoder, build_discriminator, decode_latents, downsampling_factor, kl_loss
from neonet_core.neogen.controlnet import build_controlnet, controlled_unet_output, init_from_unet
from neonet_core.neogen.data import pick_variant
from neonet_core.neogen.diffusion import build_scheduler, build_unet, noisy_training_pair, validation_pair


class AEStage(Stage):
    """AutoencoderKL: L1 + kl_weight * KL (+ adversarial_weight * patch-GAN loss after the warm-up).

    Validation: PSNR and SSIM of the mean-latent reconstruction (clipped to [0, 1]); score = PSNR.
    """

    name = "ae"

    def __init__(self, cfg: AEConfig, warmup_steps: int = 0):
        self.cfg, self.warmup_steps = cfg, warmup_steps
        self.ae = build_autoencoder(cfg)
        self.disc = build_discriminator(cfg) if cfg.adversarial_weight > 0 else None

    def networks(self):
        return {"autoencoder": self.ae, **({"discriminator": self.disc} if self.disc is not None else {})}

    def optimizers(self, cfg: TrainConfig):
        if self.disc is None:
            return super().optimizers(cfg)
        return {
            "gen": torch.optim.AdamW(self.ae.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay),
            "disc": torch.optim.AdamW(self.disc.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay),
        }

    def training_step(self, nets, batch, step):
        from monai.losses import PatchAdversarialLoss

        x = augment_batch(batch["image"], self.cfg.augment)
        recon, mu, sigma = nets["autoencoder"](x)
        recon = recon.float()
        l1 = F.l1_loss(recon, x)
        kl = kl_loss(mu.float(), sigma.float())
        loss = l1 + self.cfg.kl_weight * kl
        metrics = {"l1": float(l1.detach()), "kl": float(kl.detach())}
        if self.disc is None:
            return {"main": loss}, metrics
        if step < self.warmup_steps:
            return {"gen": loss}, metrics
        adv = PatchAdversarialLoss(criterion="least_squares")
        gen_adv = adv(nets["discriminator"](recon)[-1].float(), target_is_real=True, for_discriminator=False)
        fake = adv(nets["discriminator"](recon.detach())[-1].float(), target_is_real=False, for_discriminator=True)
        real = adv(nets["discriminator"](x)[-1].float(), target_is_real=True, for_discriminator=True)
        metrics["adv"] = float(gen_adv.detach())
        return {"gen": loss + self.cfg.adversarial_weight * gen_adv, "disc": 0.5 * (fake + real)}, metrics

    @torch.no_grad()
    def validate(self, batches):
        from monai.metrics import PSNRMetric, SSIMMetric

        psnr, ssim = PSNRMetric(max_val=1.0), SSIMMetric(spatial_dims=3, data_range=1.0, win_size=7)
        l1 = []
        for batch in batches:
            x = batch["image"].float()
            recon = decode_latents(self.ae, self.ae.encode(x)[0]).float()
            psnr(recon, x)
            ssim(recon, x)
            l1.append(F.l1_loss(recon, x, reduction="none").flatten(1).mean(1))
        p = float(psnr.aggregate().item())
        return {"psnr": p, "ssim": float(ssim.aggregate().item()), "l1": float(torch.cat(l1).mean()), "score": p}


class LDMStage(Stage):
    """Class-conditional latent diffusion on cached latents (``batch`` from LatentPatches).

    With ``ae`` given, batches hold images instead and are encoded on the fly (the usual tutorial
    loop; kept for the benchmark). Validation: the loss at fixed noise/timesteps; score = -loss.
    """

    name = "ldm"

    def __init__(self, cfg: LDMConfig, latent_channels: int, latent_shape, scale_factor: float, ae: nn.Module | None = None):
        self.cfg, self.scale_factor, self.ae = cfg, float(scale_factor), ae
        self.unet = build_unet(cfg, latent_channels)
        self.scheduler = build_scheduler(cfg, tuple(latent_shape))

    def networks(self):
        return {"unet": self.unet}

    def latents(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(scaled z0 (B, C, d, h, w), flip variant (B,)) of a batch."""
        if self.ae is not None:
            with torch.no_grad():
                self.ae.to(batch["image"].device).eval()
                mu, sigma = self.ae.encode(augment_batch(batch["image"], AugmentConfig(rotate_deg=0.0, gain=0.0, offset=0.0)))
            z, v = mu + sigma * torch.randn_like(mu), torch.zeros(len(mu), dtype=torch.long)
        else:
            z, v = pick_variant(batch)
        return z.float() * self.scale_factor, v

    def training_step(self, nets, batch, step):
        z0, _ = self.latents(batch)
        x_t, t, target = noisy_training_pair(self.scheduler, z0)
        pred = nets["unet"](x=x_t, timesteps=t, class_labels=batch["label"])
        return {"main": F.mse_loss(pred.float(), target)}, {}

    @torch.no_grad()
    def validate(self, batches):
        g = torch.Generator().manual_seed(1234)
        losses = []
        for batch in batches:
            z0 = batch["mu"][:, 0].float() * self.scale_factor
            x_t, t, target = validation_pair(self.scheduler, z0, g)
            pred = self.unet(x=x_t, timesteps=t, class_labels=batch["label"])
            losses.append(F.mse_loss(pred.float(), target, reduction="none").flatten(1).mean(1))
        loss = float(torch.cat(losses).mean())
        return {"loss": loss, "score": -loss}


class ControlNetStage(Stage):
    """ControlNet on cached latents + masks, the LDM UNet frozen; ``tumour_loss_weight`` inside the tumour."""

    name = "controlnet"

    def __init__(self, cfg: ControlNetConfig, ldm_cfg: LDMConfig, ae_cfg: AEConfig, unet: nn.Module, latent_shape, scale_factor: float):
        self.cfg, self.scale_factor = cfg, float(scale_factor)
        self.factor = downsampling_factor(ae_cfg)
        self.unet = unet.eval().requires_grad_(False)
        self.controlnet = init_from_unet(build_controlnet(cfg, ldm_cfg, ae_cfg), unet)
        self.scheduler = build_scheduler(ldm_cfg, tuple(latent_shape))

    def networks(self):
        return {"unet": self.unet, "controlnet": self.controlnet}

    def trainable_networks(self):
        return {"controlnet": self.controlnet}

    def _loss(self, nets, z0, cond, labels, pair):
        x_t, t, target = pair
        pred = controlled_unet_output(nets["unet"], nets["controlnet"], x_t, t, labels, cond, self.cfg.conditioning_scale).float()
        se = (pred - target).pow(2).mean(1, keepdim=True)
        if self.cfg.tumour_loss_weight == 1.0:
            return se.flatten(1).mean(1)
        w = 1.0 + (self.cfg.tumour_loss_weight - 1.0) * F.avg_pool3d(cond[:, :1].float(), self.factor)
        return (w * se).flatten(1).sum(1) / w.flatten(1).sum(1)

    def training_step(self, nets, batch, step):
        z0, v = pick_variant(batch)
        z0 = z0.float() * self.scale_factor
        cond = torch.stack([flip_variant(c, int(k), 1) for c, k in zip(batch["cond"], v.tolist())])
        loss = self._loss(nets, z0, cond, batch["label"], noisy_training_pair(self.scheduler, z0)).mean()
        return {"main": loss}, {}

    @torch.no_grad()
    def validate(self, batches):
        g = torch.Generator().manual_seed(1234)
        nets = self.networks()
        losses = []
        for batch in batches:
            z0 = batch["mu"][:, 0].float() * self.scale_factor
            losses.append(self._loss(nets, z0, batch["cond"], batch["label"], validation_pair(self.scheduler, z0, g)))
        loss = float(torch.cat(losses).mean())
        return {"loss": loss, "score": -loss}
