"""Train the NeoGen stages into a bundle folder: autoencoder -> (latent cache) -> LDM -> ControlNet.

Every stage runs through the shared engine with its run folder at ``BUNDLE/runs/<stage>``; its
best weights go into the bundle as ``<network>.safetensors`` with the config that rebuilds it.
Networks: ``autoencoder`` (AEConfig + preprocess), ``ldm`` (LDMConfig + latent_channels,
latent_shape, scale_factor, autoencoder_sha256), ``controlnet`` (ControlNetConfig + mask_channels,
ldm_sha256). The latent cache is ``BUNDLE/runs/latents.safetensors``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from neonet_core.bundle import add_network, load_bundle, read_or_new_bundle_info, write_bundle_info
from neonet_core.config import NeoNetConfig, PreprocessConfig, _from_dict, load_config
from neonet_core.engine import TrainConfig, Trainer, load_weights, steps_for
from neonet_core.distributed import barrier, is_main_process
from neonet_core.errors import BundleError, NeoNetError
from neonet_core.neogen.autoencoder import ae_config_from_dict, build_autoencoder
from neonet_core.neogen.controlnet import MASK_CHANNELS
from neonet_core.neogen.data import ImagePatches, LatentCache, extract_patches, split_by_patient, write_latent_cache
from neonet_core.neogen.diffusion import build_unet, ldm_config_from_dict
from neonet_core.neogen.stages import AEStage, ControlNetStage, LDMStage

CACHE_NAME = "latents.safetensors"


def run_dir(bundle_dir, stage: str) -> Path:
    return Path(bundle_dir) / "runs" / stage


def resolve_config(config) -> NeoNetConfig:
    return config if isinstance(config, NeoNetConfig) else load_config(str(config))


def train_config(base: TrainConfig, device: str | None = None, epochs: int | None = None, seed: int | None = None) -> TrainConfig:
    """``base`` with the command-line overrides that are not None."""
    overrides = {k: v for k, v in {"device": device, "epochs": epochs, "seed": seed}.items() if v is not None}
    return dataclasses.replace(base, **overrides)


def _read_cases(manifest, require_labels: bool):
    from neonet_core.manifest import read_manifest

    cases = [c for c in read_manifest(manifest, require_labels=require_labels, require_tumor_masks=True) if not c.synthetic]
    if not cases:
        raise NeoNetError(f"{manifest}: no real (non-synthetic) cases to train NeoGen on")
    return cases


def _publish(bundle_dir, cfg: NeoNetConfig, sections: list[str], name: str, state, net_config: dict, summary: dict, stage: str) -> None:
    info = read_or_new_bundle_info(bundle_dir, cfg.to_dict())
    for section in sections:
        info.setdefault("config", {})[section] = dataclasses.asdict(getattr(cfg, section))
    add_network(bundle_dir, info, name, state, net_config)
    info.setdefault("metrics", {})[stage] = summary
    write_bundle_info(bundle_dir, info)


def _summary(result, n_train: int, n_val: int) -> dict:
    return {"steps": result.steps, "best_step": result.best_step, "best_score": result.best_score,
            "validation": result.last_metrics, "train_cases": n_train, "val_cases": n_val}


# --- autoencoder ------------------------------------------------------------------------------
def train_autoencoder(manifest, config="tiny", bundle_dir="bundle", resume=False, device=None, epochs=None, seed=None) -> Path:
    """Train the AutoencoderKL on the manifest's TLCR patches, add it to the bundle, build the latent cache."""
    cfg = resolve_config(config)
    tcfg = train_config(cfg.ae.train, device, epochs, seed)
    records = extract_patches(_read_cases(manifest, require_labels=False), cfg)
    val = split_by_patient([r.patient_id for r in records], cfg.ae.val_fraction, tcfg.seed)
    train_set = ImagePatches([r for r, v in zip(records, val) if not v])
    val_set = ImagePatches([r for r, v in zip(records, val) if v])
    warmup = cfg.ae.adversarial_warmup_epochs * (steps_for(len(train_set), tcfg) // max(tcfg.epochs, 1))
    torch.manual_seed(tcfg.seed)  # network initialisation
    stage = AEStage(cfg.ae, warmup)
    result = Trainer(stage, train_set, val_set, tcfg, run_dir(bundle_dir, "ae")).fit(resume)
    load_weights(result.out_dir / "best.safetensors", {"autoencoder": stage.ae})
    net_config = {**dataclasses.asdict(cfg.ae), "preprocess": dataclasses.asdict(cfg.preprocess), "split_seed": tcfg.seed}
    _publish(bundle_dir, cfg, ["preprocess", "ae"], "autoencoder", stage.ae.state_dict(), net_config, _summary(result, len(train_set), len(val_set)), "ae")
    build_latent_cache(bundle_dir, records, val, tcfg.seed, tcfg.device)
    return Path(bundle_dir)


# --- latent cache ---------------------------------------------------------------------------
def _bundle_autoencoder(bundle):
    if not bundle.has("autoencoder"):
        raise BundleError(bundle.path, "has no autoencoder yet; run `neonet train ae` into this bundle first")
    net_cfg = bundle.network_config("autoencoder")
    ae_cfg = ae_config_from_dict(net_cfg)
    preprocess = _from_dict(PreprocessConfig, net_cfg["preprocess"])
    return bundle.load_into("autoencoder", build_autoencoder(ae_cfg)), ae_cfg, preprocess


def _cache_key(bundle, preprocess: PreprocessConfig, ae_cfg, seed: int) -> dict:
    return {"autoencoder_sha256": bundle.networks["autoencoder"]["sha256"], "preprocess": dataclasses.asdict(preprocess),
            "val_fraction": ae_cfg.val_fraction, "split_seed": seed}


def build_latent_cache(bundle_dir, records, val: np.ndarray, seed: int, device: str = "auto") -> LatentCache:
    """Encode ``records`` (all flip variants) with the bundle's autoencoder into the run folder's cache."""
    from neonet_core.engine import resolve_device

    bundle = load_bundle(bundle_dir)
    ae, ae_cfg, preprocess = _bundle_autoencoder(bundle)
    path = Path(bundle_dir) / "runs" / CACHE_NAME
    if is_main_process():  # under torchrun rank 0 encodes and writes, the others wait and read
        write_latent_cache(path, ae, records, val, _cache_key(bundle, preprocess, ae_cfg, seed), resolve_device(device))
    barrier()
    return LatentCache.read(path)


def ensure_latent_cache(bundle_dir, cases, seed: int | None = None, device: str = "auto") -> LatentCache:
    """The cache for ``cases`` and the bundle's current autoencoder; rebuilt when it does not match."""
    if not (Path(bundle_dir) / "bundle.json").is_file():
        raise BundleError(bundle_dir, "holds no bundle with an autoencoder yet; run `neonet train ae` with this --out first")
    bundle = load_bundle(bundle_dir)
    _, ae_cfg, preprocess = _bundle_autoencoder(bundle)
    seed = bundle.network_config("autoencoder").get("split_seed", ae_cfg.train.seed) if seed is None else seed
    path = Path(bundle_dir) / "runs" / CACHE_NAME
    ids = [c.case_id for c in cases]
    if path.is_file():
        cache = LatentCache.read(path)
        if cache.case_ids == ids and cache.key == _cache_key(bundle, preprocess, ae_cfg, seed):
            return cache
    records = extract_patches(cases, preprocess)
    val = split_by_patient([r.patient_id for r in records], ae_cfg.val_fraction, seed)
    return build_latent_cache(bundle_dir, records, val, seed, device)


def _labelled(cache: LatentCache, manifest) -> None:
    if np.any(cache.tensors["label"].numpy() < 0):
        raise NeoNetError(f"{manifest}: every case needs a label (0 or 1) for the class-conditional diffusion stages")


# --- latent diffusion -------------------------------------------------------------------------
def train_ldm(manifest, config="tiny", bundle_dir="bundle", resume=False, device=None, epochs=None, seed=None) -> Path:
    """Train the class-conditional latent diffusion UNet on the cached latents; add ``ldm`` to the bundle."""
    cfg = resolve_config(config)
    tcfg = train_config(cfg.ldm.train, device, epochs, seed)
    cache = ensure_latent_cache(bundle_dir, _read_cases(manifest, require_labels=True), device=tcfg.device)
    _labelled(cache, manifest)
    scale = cache.scale_factor()
    torch.manual_seed(tcfg.seed)
    stage = LDMStage(cfg.ldm, cache.latent_channels, cache.latent_shape, scale)
    train_set, val_set = cache.dataset("train"), cache.dataset("val")
    result = Trainer(stage, train_set, val_set, tcfg, run_dir(bundle_dir, "ldm")).fit(resume)
    load_weights(result.out_dir / "best.safetensors", {"unet": stage.unet})
    net_config = {**dataclasses.asdict(cfg.ldm), "latent_channels": cache.latent_channels, "latent_shape": list(cache.latent_shape),
                  "scale_factor": scale, "autoencoder_sha256": cache.key["autoencoder_sha256"]}
    _publish(bundle_dir, cfg, ["ldm"], "ldm", stage.unet.state_dict(), net_config, _summary(result, len(train_set), len(val_set)), "ldm")
    return Path(bundle_dir)


def bundle_unet(bundle):
    """(UNet with the bundle's weights, LDMConfig, ldm network config)."""
    if not bundle.has("ldm"):
        raise BundleError(bundle.path, "has no latent diffusion model yet; run `neonet train ldm` into this bundle first")
    net_cfg = bundle.network_config("ldm")
    if net_cfg.get("autoencoder_sha256") != bundle.networks["autoencoder"]["sha256"]:
        raise BundleError(bundle.path, "the ldm network was trained on another autoencoder; retrain `neonet train ldm` (and controlnet)")
    ldm_cfg = ldm_config_from_dict(net_cfg)
    return bundle.load_into("ldm", build_unet(ldm_cfg, int(net_cfg["latent_channels"]))), ldm_cfg, net_cfg


# --- ControlNet --------------------------------------------------------------------------------
def train_controlnet(manifest, config="tiny", bundle_dir="bundle", resume=False, device=None, epochs=None, seed=None) -> Path:
    """Train the mask-conditioned ControlNet (UNet frozen) on the cached latents; add ``controlnet``."""
    cfg = resolve_config(config)
    tcfg = train_config(cfg.controlnet.train, device, epochs, seed)
    cache = ensure_latent_cache(bundle_dir, _read_cases(manifest, require_labels=True), device=tcfg.device)
    _labelled(cache, manifest)
    bundle = load_bundle(bundle_dir)
    _, ae_cfg, _ = _bundle_autoencoder(bundle)
    unet, ldm_cfg, ldm_net = bundle_unet(bundle)
    torch.manual_seed(tcfg.seed)
    stage = ControlNetStage(cfg.controlnet, ldm_cfg, ae_cfg, unet, cache.latent_shape, float(ldm_net["scale_factor"]))
    train_set, val_set = cache.dataset("train"), cache.dataset("val")
    result = Trainer(stage, train_set, val_set, tcfg, run_dir(bundle_dir, "controlnet")).fit(resume)
    load_weights(result.out_dir / "best.safetensors", {"controlnet": stage.controlnet})
    net_config = {**dataclasses.asdict(cfg.controlnet), "mask_channels": list(MASK_CHANNELS), "ldm_sha256": bundle.networks["ldm"]["sha256"]}
    _publish(bundle_dir, cfg, ["controlnet"], "controlnet", stage.controlnet.state_dict(), net_config, _summary(result, len(train_set), len(val_set)), "controlnet")
    return Path(bundle_dir)
