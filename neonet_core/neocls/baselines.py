"""Baseline classifiers (MONAI, 3D, one input channel) and the one factory for every NeoCls model.

All models share one interface: forward (B, 1, D, H, W) -> logits (B,), and ``cam_layer``, the
module whose output Grad-CAM uses (:func:`neonet_core.neocls.pattennet.grad_cam`).
"""

from __future__ import annotations

from torch import nn

from neonet_core.config import AEConfig, ClsConfig

MODELS = ("pattennet", "densenet121", "resnet18")


class DenseNet121Classifier(nn.Module):
    """MONAI DenseNet121 (spatial_dims=3, 1 channel in, 1 logit out). Grad-CAM on its last dense block."""

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        from monai.networks.nets import DenseNet121

        self.net = DenseNet121(spatial_dims=3, in_channels=1, out_channels=1, dropout_prob=dropout)

    @property
    def cam_layer(self):
        return self.net.features

    def forward(self, x):
        return self.net(x).squeeze(1)


class ResNet18Classifier(nn.Module):
    """MONAI resnet18 (spatial_dims=3, n_input_channels=1, 1 logit). Grad-CAM on layer4."""

    def __init__(self):
        super().__init__()
        from monai.networks.nets import resnet18

        self.net = resnet18(spatial_dims=3, n_input_channels=1, num_classes=1)

    @property
    def cam_layer(self):
        return self.net.layer4

    def forward(self, x):
        return self.net(x).squeeze(1)


def build_classifier(cls_cfg: ClsConfig, ae_cfg: AEConfig | None = None) -> nn.Module:
    """The model named by ``cls_cfg.model`` (PattenNet needs the AE config of its encoder)."""
    if cls_cfg.model == "pattennet":
        from neonet_core.neocls.pattennet import PattenNet

        return PattenNet(ae_cfg or AEConfig(), cls_cfg)
    if cls_cfg.model == "densenet121":
        return DenseNet121Classifier(cls_cfg.dropout)
    if cls_cfg.model == "resnet18":
        return ResNet18Classifier()
    raise ValueError(f"unknown classifier {cls_cfg.model!r}; choose one of {', '.join(MODELS)}")


__all__ = ["MODELS", "build_classifier", "DenseNet121Classifier", "ResNet18Classifier"]
