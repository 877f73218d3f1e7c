"""Train the NeoGen stages into a bundle: autoencoder -> (latent cache) -> LDM -> ControlNet.

Each function takes the run's training and validation patches (:class:`neonet_core.patches.PatchSet`,
split by :mod:`neonet_core.splits` so every stage validates on the same patients) and an open
bundle folder, and goes through the one fit-and-publish recipe (:mod:`neonet_core.fit`): run folder
``BUNDLE/runs/<stage>``, weights into the bundle with the config that rebuilds them. Networks:
``autoencoder`` (AEConfig + preprocess), ``ldm`` (LDMConfig + latent_channels, latent_shape,
scale_factor, autoencoder_sha256), ``controlnet`` (ControlNetConfig + mask_channels, ldm_sha256).
The latent cache is ``BUNDLE/runs/latents.safetensors``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from neonet_core.bundle import load_bundle
from neonet_core.distributed import barrier, is_main_process
from neonet_core.engine import steps_for
from neonet_core.errors import NeoNetError
from neonet_core.fit import fit_stage, publish, run_dir, summary
from neonet_core.neogen.controlnet import MASK_CHANNELS
from neonet_core.neogen.data import ImagePatches, LatentCache, write_latent_cache
from neonet_core.neogen.loaders import load_autoencoder, load_ldm
from neonet_core.neogen.stages import AEStage, ControlNetStage, LDMStage
from neonet_core.patches import PatchSet
from neonet_core.progress import emit

CACHE_NAME = "latents.safetensors"
NEOGEN_STAGES = ("ae", "ldm", "controlnet")  # run names, in training order
NETWORKS = {"ae": "autoencoder", "ldm": "ldm", "controlnet": "controlnet"}


def train_autoencoder(train: PatchSet, val: PatchSet, cfg, bundle_dir, device="auto", resume: bool = False,
                      crops: PatchSet | None = None) -> Path:
    """Train the AutoencoderKL on the ``train`` patches plus ``crops`` (random crops of the training
    cases, :func:`neonet_core.patches.cohort_crops`; no labels needed), validating on the ``val``
    patches (held-out patients' TLCR patches), add it to the bundle, then encode every patch (not the
    crops) into the latent cache. The summary records the held-out PSNR (dB): ``val_psnr`` of the
    published weights and ``best_val_psnr``; it is also emitted as a ``summary`` event."""
    crops = crops if crops is not None else PatchSet.empty(train.images.shape[1:])
    leaked = set(crops.patient_ids) & set(val.patient_ids)
    if leaked:
        raise NeoNetError(f"autoencoder crops of validation patient(s) {', '.join(sorted(leaked)[:5])}: crop the training cases only")
    fit_set = train + crops
    tcfg = cfg.ae.train
    warmup = cfg.ae.adversarial_warmup_epochs * (steps_for(len(fit_set), tcfg) // max(tcfg.epochs, 1))
    stage, result = fit_stage(lambda: AEStage(cfg.ae, warmup), ImagePatches(fit_set), ImagePatches(val), tcfg,
                              run_dir(bundle_dir, "ae"), device, resume)
    net_config = {**dataclasses.asdict(cfg.ae), "preprocess": dataclasses.asdict(cfg.preprocess)}
    psnr = {"val_psnr": result.last_metrics.get("psnr"), "best_val_psnr": result.best_score}
    publish(bundle_dir, cfg, ["preprocess", "ae"], {"autoencoder": (stage.ae, net_config)}, "ae",
            summary(result, len(train), len(val), crops=len(crops), **psnr))
    emit("summary", stage="ae", steps=result.steps, train_patches=len(train), crops=len(crops), val_cases=len(val), **psnr)
    latent_cache(bundle_dir, train, val, device)
    return Path(bundle_dir)


def _cache_key(bundle, preprocess, val_ids) -> dict:
    return {"autoencoder_sha256": bundle.networks["autoencoder"]["sha256"], "preprocess": dataclasses.asdict(preprocess),
            "val_cases": sorted(val_ids)}


def latent_cache(bundle_dir, train: PatchSet, val: PatchSet, device="auto") -> LatentCache:
    """The latent cache of ``train`` + ``val`` for the bundle's autoencoder; (re)built when it does not match."""
    bundle = load_bundle(bundle_dir)
    patches = train + val
    key = _cache_key(bundle, load_autoencoder(bundle)[2], val.case_ids)
    path = run_dir(bundle_dir, CACHE_NAME)
    if path.is_file():
        cache = LatentCache.read(path)
        if cache.case_ids == patches.case_ids and cache.key == key:
            return cache
    if is_main_process():  # under torchrun rank 0 encodes and writes, the others wait and read
        is_val = np.array([c in set(val.case_ids) for c in patches.case_ids], dtype=bool)
        write_latent_cache(path, load_autoencoder(bundle)[0], patches, is_val, key, device)
    barrier()
    return LatentCache.read(path)


def _labelled(patches: PatchSet) -> None:
    if np.any(patches.labels < 0):
        raise NeoNetError("every case needs a label (0 or 1) for the class-conditional diffusion stages")


def train_ldm(train: PatchSet, val: PatchSet, cfg, bundle_dir, device="auto", resume: bool = False) -> Path:
    """Train the class-conditional latent diffusion UNet on the cached latents; add ``ldm`` to the bundle."""
    _labelled(train + val)
    cache = latent_cache(bundle_dir, train, val, device)
    scale = cache.scale_factor()
    stage, result = fit_stage(lambda: LDMStage(cfg.ldm, cache.latent_channels, cache.latent_shape, scale),
                              cache.dataset("train"), cache.dataset("val"), cfg.ldm.train, run_dir(bundle_dir, "ldm"), device, resume)
    net_config = {**dataclasses.asdict(cfg.ldm), "latent_channels": cache.latent_channels, "latent_shape": list(cache.latent_shape),
                  "scale_factor": scale, "autoencoder_sha256": cache.key["autoencoder_sha256"]}
    publish(bundle_dir, cfg, ["ldm"], {"ldm": (stage.unet, net_config)}, "ldm", summary(result, len(train), len(val)))
    return Path(bundle_dir)


def train_controlnet(train: PatchSet, val: PatchSet, cfg, bundle_dir, device="auto", resume: bool = False) -> Path:
    """Train the mask-conditioned ControlNet (UNet frozen) on the cached latents; add ``controlnet``."""
    _labelled(train + val)
    cache = latent_cache(bundle_dir, train, val, device)
    bundle = load_bundle(bundle_dir)
    _, ae_cfg, _ = load_autoencoder(bundle)
    unet, ldm_cfg, ldm_net = load_ldm(bundle)

    def build():
        return ControlNetStage(cfg.controlnet, ldm_cfg, ae_cfg, unet, cache.latent_shape, float(ldm_net["scale_factor"]))

    stage, result = fit_stage(build, cache.dataset("train"), cache.dataset("val"), cfg.controlnet.train,
                              run_dir(bundle_dir, "controlnet"), device, resume)
    net_config = {**dataclasses.asdict(cfg.controlnet), "mask_channels": list(MASK_CHANNELS), "ldm_sha256": bundle.networks["ldm"]["sha256"]}
    publish(bundle_dir, cfg, ["controlnet"], {"controlnet": (stage.controlnet, net_config)}, "controlnet", summary(result, len(train), len(val)))
    return Path(bundle_dir)


TRAINERS = {"ae": train_autoencoder, "ldm": train_ldm, "controlnet": train_controlnet}

__all__ = ["train_autoencoder", "train_ldm", "train_controlnet", "latent_cache", "TRAINERS", "NEOGEN_STAGES", "NETWORKS", "CACHE_NAME"]
