"""The classifier registry: every NeoCls model, by name, with what training and inference need to know.

Adding a classifier is one builder (configs -> network) and one entry in ``CLASSIFIERS``; the CLI's
``--model`` choices, cross-validation and bundles read everything else from the entry.

Every network maps (B, in_channels, D, H, W) -> logits (B,) and has a ``cam_layer`` property (the
module Grad-CAM hooks, :func:`neonet_core.neocls.pattennet.grad_cam`). Builders map the configs to
the networks' explicit constructor arguments; the networks never read a config.

    >>> spec = get_classifier("cnn")
    >>> spec.in_channels, spec.needs_autoencoder
    (2, False)
    >>> net = build_classifier(ClsConfig(model="cnn"))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from torch import nn

from neonet_core.config import AEConfig, ClsConfig
from neonet_core.errors import NeoNetError
from neonet_core.neocls.baselines import DenseNet121Classifier, PlainCNN, ResNet18Classifier
from neonet_core.neocls.pattennet import PattenNet, ae_level_taps, build_ae_encoder


class UnknownClassifierError(NeoNetError, ValueError):
    """A model name that is not in the registry (a ValueError too, so a bundle naming one is a BundleError)."""


@dataclass(frozen=True)
class ClassifierSpec:
    """One registry entry.

    name: the ``--model`` / ``ClsConfig.model`` name.
    builder: ``builder(cls_cfg, ae_cfg) -> nn.Module``.
    needs_autoencoder: its encoder comes from the trained NeoGen autoencoder (``load_encoder``), so
        the autoencoder must be trained (or loaded) before it.
    in_channels: 1 = the image patch; 2 = the image and the tumour mask patch, stacked on dim 1.
    patch_size: its own patch side in voxels, or None for the preprocessing's ``patch_size``.
    description: one line for ``--help`` and reports.
    """

    name: str
    builder: Callable[[ClsConfig, AEConfig], nn.Module]
    needs_autoencoder: bool = False
    in_channels: int = 1
    patch_size: int | None = None
    description: str = ""


ENCODER_FEATURES = ("blocks", "multiscale")


def _pattennet(cls_cfg: ClsConfig, ae_cfg: AEConfig, in_channels: int, pooling: str = "global") -> PattenNet:
    if cls_cfg.encoder_features not in ENCODER_FEATURES:
        raise ValueError(f"ClsConfig.encoder_features must be one of {ENCODER_FEATURES}, not {cls_cfg.encoder_features!r}")
    taps: list[int] = []
    if cls_cfg.encoder_features == "multiscale":  # the whole encoder; every level's last block, on the deepest grid
        encoder, _, pool_steps = build_ae_encoder(ae_cfg, 0)
        taps, channels = ae_level_taps(ae_cfg)
    else:
        encoder, channels, pool_steps = build_ae_encoder(ae_cfg, cls_cfg.encoder_blocks)
    if pool_steps and not cls_cfg.adapter_channels:
        raise ValueError("ClsConfig.adapter_channels must be > 0 when encoder_blocks stops above the deepest level")
    return PattenNet(
        encoder,
        channels,
        in_channels=in_channels,
        dab_channels=cls_cfg.adapter_channels or None,
        num_dab=cls_cfg.num_dab,
        dab_reduction=cls_cfg.dab_reduction,
        pool_steps=pool_steps,
        adapter_layers=cls_cfg.adapter_layers if cls_cfg.adapter_channels else 0,
        dropout=cls_cfg.dropout,
        freeze_encoder=cls_cfg.freeze_encoder,
        taps=taps,
        pooling=pooling,
    )


def _cnn(cls_cfg: ClsConfig, ae_cfg: AEConfig, in_channels: int, **options) -> PlainCNN:
    return PlainCNN(in_channels=in_channels, dropout=cls_cfg.dropout, **options)


def _resnet18(cls_cfg: ClsConfig, ae_cfg: AEConfig, in_channels: int) -> ResNet18Classifier:
    return ResNet18Classifier(in_channels=in_channels, dropout=cls_cfg.dropout)


def _densenet121(cls_cfg: ClsConfig, ae_cfg: AEConfig, in_channels: int) -> DenseNet121Classifier:
    return DenseNet121Classifier(in_channels=in_channels, dropout=cls_cfg.dropout)


def _entry(name: str, builder, in_channels: int = 1, options: dict | None = None, **kwargs) -> ClassifierSpec:
    """An entry whose builder gets the entry's ``in_channels`` (stated once, here) and ``options``."""
    return ClassifierSpec(name, partial(builder, in_channels=in_channels, **(options or {})), in_channels=in_channels, **kwargs)


CLASSIFIERS: dict[str, ClassifierSpec] = {spec.name: spec for spec in (
    _entry("pattennet", _pattennet, needs_autoencoder=True,
           description="PattenNet: frozen NeoGen autoencoder encoder + dual attention blocks (the paper's NeoCls)"),
    _entry("pattennet-mask", _pattennet, in_channels=2, needs_autoencoder=True,
           description="PattenNet with the tumour mask pooled onto the encoder features (beyond the paper)"),
    _entry("pattennet-regions", _pattennet, in_channels=2, options={"pooling": "regions"}, needs_autoencoder=True,
           description="PattenNet-mask pooling its attention features within the tumour, the peritumoral shell and "
                       "outside (beyond the paper)"),
    _entry("cnn", _cnn, in_channels=2,
           description="plain 3D CNN (4 conv blocks, BatchNorm) on the image and the tumour mask"),
    _entry("cnn-regions", _cnn, in_channels=2, options={"channels": (16, 32, 64), "pooling": "regions"},
           description="plain 3D CNN, 3 blocks (8^3 last grid, as PattenNet's), pooling within tumour / shell / outside"),
    _entry("cnn-image", _cnn,
           description="plain 3D CNN (4 conv blocks, BatchNorm) on the image only"),
    _entry("resnet18", _resnet18,
           description="MONAI 3D ResNet-18 layout, 16-128 channels, stride-2 stem without max-pool, BatchNorm"),
    _entry("densenet121", _densenet121,
           description="MONAI 3D DenseNet, blocks (6, 12), growth 16, stride-2 stem and max-pool, BatchNorm"),
)}


def classifier_names() -> tuple[str, ...]:
    """The registered names, in registry order (the ``--model`` choices)."""
    return tuple(CLASSIFIERS)


def get_classifier(name: str) -> ClassifierSpec:
    """The entry called ``name``; :class:`UnknownClassifierError` naming the choices otherwise."""
    try:
        return CLASSIFIERS[name]
    except (KeyError, TypeError):
        raise UnknownClassifierError(f"unknown classifier {name!r}; choose one of {', '.join(CLASSIFIERS)}") from None


def build_classifier(cls_cfg: ClsConfig, ae_cfg: AEConfig | None = None) -> nn.Module:
    """The network ``cls_cfg.model`` names, built from the configs (untrained; an autoencoder-based
    model gets its encoder weights from :meth:`PattenNet.load_encoder` afterwards)."""
    return get_classifier(cls_cfg.model).builder(cls_cfg, ae_cfg or AEConfig())


__all__ = ["CLASSIFIERS", "ClassifierSpec", "UnknownClassifierError", "classifier_names", "get_classifier", "build_classifier"]
