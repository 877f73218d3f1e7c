"""The NeoSeg network: a MONAI 3D ``UNet`` built from a :class:`~neonet_core.config.SegConfig`.

Why UNet (not SegResNet or DynUNet): NeoSeg only has to find a compact tumour on a coarse grid, so
the plainest encoder-decoder suffices; MONAI's UNet takes exactly the knobs the config exposes
(``channels`` per level, ``num_res_units``), has no GroupNorm divisibility constraint on the widths,
no deep-supervision heads to manage, and is the smallest and fastest of the three at equal widths
(it matters on CPU). The paper preset widens and deepens it through the same two knobs.
"""

from __future__ import annotations

from torch import nn

from neonet_core.neoseg.data import class_names


def build_seg_net(cfg) -> nn.Module:
    """MONAI UNet: input ``(B, 1, D, H, W)`` -> logits ``(B, C, D, H, W)``, C = len(class_names(...)).

    D, H, W must be divisible by ``2 ** (len(cfg.channels) - 1)`` (sliding-window inference pads).
    """
    from monai.networks.nets import UNet

    channels = tuple(int(c) for c in cfg.channels)
    return UNet(
        spatial_dims=3,
        in_channels=1,
        out_channels=len(class_names(cfg.predict_anatomy)),
        channels=channels,
        strides=(2,) * (len(channels) - 1),
        num_res_units=int(cfg.num_res_units),
    )
