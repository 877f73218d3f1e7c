"""Rebuild NeoGen's networks from an open bundle: the one place that reads their stored configs.

``load_autoencoder`` / ``load_ldm`` / ``load_controlnet`` each check that the network exists and
that it was trained on the network below it (hash references), then build it from its stored
config through :meth:`Bundle.build` (meta device first: parameter shapes checked against the
weight file and the size capped before anything is allocated) and load its verified weights.
``load_neogen`` gathers everything sampling needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from neonet_core.bundle import Bundle, load_bundle
from neonet_core.config import AEConfig, ControlNetConfig, LDMConfig, PreprocessConfig, section_from_dict
from neonet_core.device import resolve_device
from neonet_core.errors import BundleError


def open_bundle(bundle) -> Bundle:
    """``bundle`` if it is already open, else the bundle at that path."""
    return bundle if isinstance(bundle, Bundle) else load_bundle(bundle)


def load_autoencoder(bundle: Bundle) -> tuple[torch.nn.Module, AEConfig, PreprocessConfig]:
    """(AutoencoderKL with the bundle's weights, its AEConfig, the preprocessing it was trained on)."""
    from neonet_core.neogen.autoencoder import build_autoencoder

    if not bundle.has("autoencoder"):
        raise BundleError(bundle.path, "has no autoencoder yet; run `neonet train ae` into this bundle first")
    net_cfg = bundle.network_config("autoencoder")
    ae = bundle.build("autoencoder", lambda stored: build_autoencoder(section_from_dict(AEConfig, stored)))
    return ae, section_from_dict(AEConfig, net_cfg), section_from_dict(PreprocessConfig, net_cfg["preprocess"])


def _stacked_config(bundle: Bundle, network: str, what: str, below: str, retrain: str) -> dict:
    """The stored config of ``network``, checked to exist and to reference the bundle's ``below`` by hash."""
    if not bundle.has(network):
        raise BundleError(bundle.path, f"has no {what} yet; run `neonet train {network}` into this bundle first")
    net_cfg = bundle.network_config(network)
    if net_cfg.get(f"{below}_sha256") != bundle.networks[below]["sha256"]:
        raise BundleError(bundle.path, f"the {network} network was trained on another {below}; retrain `neonet train {retrain}`")
    return net_cfg


def load_ldm(bundle: Bundle) -> tuple[torch.nn.Module, LDMConfig, dict]:
    """(diffusion UNet with the bundle's weights, its LDMConfig, its stored network config)."""
    from neonet_core.neogen.diffusion import build_unet

    net_cfg = _stacked_config(bundle, "ldm", "latent diffusion model", "autoencoder", "ldm (and controlnet)")
    unet = bundle.build("ldm", lambda stored: build_unet(section_from_dict(LDMConfig, stored), int(stored["latent_channels"])))
    return unet, section_from_dict(LDMConfig, net_cfg), net_cfg


def load_controlnet(bundle: Bundle, ldm_cfg: LDMConfig, ae_cfg: AEConfig) -> tuple[torch.nn.Module, ControlNetConfig]:
    """(ControlNet with the bundle's weights, its ControlNetConfig)."""
    from neonet_core.neogen.controlnet import build_controlnet

    net_cfg = _stacked_config(bundle, "controlnet", "ControlNet", "ldm", "controlnet")
    controlnet = bundle.build("controlnet", lambda stored: build_controlnet(section_from_dict(ControlNetConfig, stored), ldm_cfg, ae_cfg))
    return controlnet, section_from_dict(ControlNetConfig, net_cfg)


@dataclass
class NeoGenModels:
    """Everything generation needs, loaded from a bundle (eval mode, on ``device``)."""

    ae: torch.nn.Module
    unet: torch.nn.Module
    controlnet: torch.nn.Module
    ldm_cfg: LDMConfig
    conditioning_scale: float
    scale_factor: float
    latent_shape: tuple[int, int, int]
    latent_channels: int
    patch_size: int
    preprocess: PreprocessConfig
    device: torch.device


def load_neogen(bundle, device="cpu") -> NeoGenModels:
    """The autoencoder, LDM UNet and ControlNet of ``bundle`` (a path or an open Bundle) on ``device``."""
    bundle = open_bundle(bundle)
    dev = resolve_device(device)
    ae, ae_cfg, preprocess = load_autoencoder(bundle)
    unet, ldm_cfg, ldm_net = load_ldm(bundle)
    controlnet, cn_cfg = load_controlnet(bundle, ldm_cfg, ae_cfg)
    return NeoGenModels(
        ae.to(dev).eval(), unet.to(dev).eval(), controlnet.to(dev).eval(), ldm_cfg, float(cn_cfg.conditioning_scale),
        float(ldm_net["scale_factor"]), tuple(int(n) for n in ldm_net["latent_shape"]), int(ldm_net["latent_channels"]),
        int(preprocess.patch_size), preprocess, dev,
    )


__all__ = ["open_bundle", "load_autoencoder", "load_ldm", "load_controlnet", "load_neogen", "NeoGenModels"]
