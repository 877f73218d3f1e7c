"""Baseline classifiers for 3D patches that learn at 32^3 (the tiny preset's patch size).

Every network maps (B, in_channels, D, H, W) -> logits (B,) and has a ``cam_layer`` property, the
module whose output Grad-CAM uses (:func:`neonet_core.neocls.pattennet.grad_cam`). They are built
from the configs by :mod:`neonet_core.neocls.models`, the classifier registry.

Why not the ImageNet-style stems: MONAI's DenseNet121 and ResNet18 reduce the grid 4x before their
first block (strided 7x7x7 conv + max-pool) and 32x overall, so a 32^3 patch reaches the last block
as 1x1x1 maps. Here the deepest blocks run on 2x2x2 to 4x4x4 maps at 32^3. The sizes are set for CPU
training in minutes (one conv per CNN block; a stride-2 first stage for ResNet and DenseNet, two
dense blocks). Normalisation is BatchNorm: on the phantom (100 training patches, 60 epochs) the
plain CNN reached held-out AUC 0.78 with BatchNorm and 0.36 with instance norm, which removes the
per-patch intensity level the PNI extensions are seen against.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import Convolution
from monai.networks.nets import DenseNet, ResNet
from torch import nn

from neonet_core.neocls.pooling import check_pooling, pool_features, pooled_width

INSTANCE_NORM = ("instance", {"affine": True})  # MONAI norm spec: per-sample, learnable scale and shift
BATCH_NORM = "batch"


class PlainCNN(nn.Module):
    """A plain 3D CNN: ``len(channels)`` blocks of [conv 3x3x3 - norm - ReLU] x ``convs_per_block``,
    a 2x max-pool between blocks, global average + max pooling, dropout, linear.

    Args:
        in_channels: input channels (1: the image; 2: the image and the tumour mask).
        channels: output channels of each block; the grid halves between blocks
            (4 blocks: 32^3 -> 4^3 in the last block).
        convs_per_block: conv - norm - ReLU units per block.
        norm: MONAI normalisation spec (``"batch"``, ``"instance"``, ``("group", {"num_groups": 8})``, ...).
        dropout: dropout before the linear head.

    Shapes: (B, in_channels, D, H, W) -> logits (B,); D, H, W divisible by 2 ** (len(channels) - 1).

    Example::

        net = PlainCNN(in_channels=2, channels=(16, 32, 64, 128))
        net(torch.rand(8, 2, 32, 32, 32)).shape  # (8,)
    """

    def __init__(self, in_channels: int = 1, channels: Sequence[int] = (16, 32, 64, 128), convs_per_block: int = 1,
                 norm: str | tuple = BATCH_NORM, dropout: float = 0.2, pooling: str = "global", shell_voxels: int = 3):
        super().__init__()
        check_pooling(pooling, in_channels)
        self.pooling, self.shell_voxels = pooling, shell_voxels
        blocks = []
        for out in channels:
            units = []
            for _ in range(convs_per_block):
                units.append(Convolution(3, in_channels, out, kernel_size=3, act="relu", norm=norm))
                in_channels = out
            blocks.append(nn.Sequential(*units))
        self.blocks = nn.ModuleList(blocks)
        self.pool = nn.MaxPool3d(2)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(pooled_width(channels[-1], pooling), 1)

    @property
    def cam_layer(self) -> nn.Module:
        """The last block (the deepest feature maps, before global pooling)."""
        return self.blocks[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = x
        for i, block in enumerate(self.blocks):
            f = block(self.pool(f) if i else f)
        return self.head(self.dropout(pool_features(f, x, self.pooling, self.shell_voxels))).squeeze(1)


class ResNet18Classifier(nn.Module):
    """MONAI 3D ResNet with the ResNet-18 layout (basic blocks, [2, 2, 2, 2]) sized for small patches.

    Args:
        in_channels: input channels.
        block_inplanes: channels of the four stages (the ImageNet ResNet18 has 64, 128, 256, 512).
        conv1_kernel: kernel size of the first convolution.
        conv1_stride: its stride (2 halves the grid before the first stage; 1 keeps it, at ~4x the cost).
        max_pool: MONAI's 3x3x3 stride-2 max-pool after the first convolution.
        norm: MONAI normalisation spec.
        dropout: dropout before the linear head.

    Shapes: (B, in_channels, D, H, W) -> logits (B,). With the defaults the grid is halved by the
    first convolution and by stages 2, 3 and 4: 32^3 -> 2^3 in ``layer4`` (the Grad-CAM layer).

    Example::

        net = ResNet18Classifier(in_channels=1)
        net(torch.rand(8, 1, 32, 32, 32)).shape  # (8,)
    """

    def __init__(self, in_channels: int = 1, block_inplanes: Sequence[int] = (16, 32, 64, 128), conv1_kernel: int = 3,
                 conv1_stride: int = 2, max_pool: bool = False, norm: str | tuple = BATCH_NORM, dropout: float = 0.2):
        super().__init__()
        self.net = ResNet("basic", [2, 2, 2, 2], list(block_inplanes), spatial_dims=3, n_input_channels=in_channels,
                          conv1_t_size=conv1_kernel, conv1_t_stride=conv1_stride, no_max_pool=not max_pool,
                          feed_forward=False, norm=norm)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(block_inplanes[-1], 1)

    @property
    def cam_layer(self) -> nn.Module:
        return self.net.layer4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.net(x))).squeeze(1)


class DenseNet121Classifier(nn.Module):
    """MONAI 3D DenseNet with a shallower block configuration and no stem max-pool, for small patches.

    Args:
        in_channels: input channels.
        block_config: dense layers per block; a 2x average-pool transition between blocks (DenseNet121
            has (6, 12, 24, 16); two blocks after the stem and its max-pool keep 4^3 maps in the last one at 32^3).
        init_features: channels of the stem convolution (7x7x7, stride 2).
        growth_rate: channels each dense layer adds.
        bn_size: bottleneck width = ``bn_size * growth_rate``.
        stem_pool: MONAI's 3x3x3 stride-2 max-pool after the stem (another 2x reduction).
        norm: MONAI normalisation spec.
        dropout: dropout before the linear head.

    Shapes: (B, in_channels, D, H, W) -> logits (B,); 32^3 -> 16^3 (stem) -> 8^3 (max-pool) -> 4^3 in the last
    block with the defaults. Grad-CAM on ``features`` (the last block after its norm).

    Example::

        net = DenseNet121Classifier(in_channels=1)
        net(torch.rand(8, 1, 32, 32, 32)).shape  # (8,)
    """

    def __init__(self, in_channels: int = 1, block_config: Sequence[int] = (6, 12), init_features: int = 32,
                 growth_rate: int = 16, bn_size: int = 4, stem_pool: bool = True, norm: str | tuple = BATCH_NORM,
                 dropout: float = 0.2):
        super().__init__()
        net = DenseNet(3, in_channels, 1, init_features=init_features, growth_rate=growth_rate,
                       block_config=tuple(block_config), bn_size=bn_size, norm=norm)
        if not stem_pool:
            net.features.pool0 = nn.Identity()
        self.features = net.features  # MONAI's head (ReLU, average pool, linear) is replaced by ours below
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(net.class_layers.out.in_features, 1)

    @property
    def cam_layer(self) -> nn.Module:
        return self.features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = torch.relu(self.features(x))
        return self.head(self.dropout(f.mean(dim=(2, 3, 4)))).squeeze(1)


__all__ = ["PlainCNN", "ResNet18Classifier", "DenseNet121Classifier", "INSTANCE_NORM"]
