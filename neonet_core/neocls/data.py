"""Classifier data: what a classifier sees of a :class:`neonet_core.patches.PatchSet`.

Channel 0 is the normalised image patch; models whose registry entry asks for 2 input channels
(:mod:`neonet_core.neocls.models`) get the tumour mask as channel 1. Augmentation is the one of
:mod:`neonet_core.augment`, applied in the training step to real and synthetic patches alike.
"""

from __future__ import annotations

import numpy as np
import torch


def model_input(images: np.ndarray, tumour: np.ndarray, in_channels: int) -> np.ndarray:
    """What a classifier with ``in_channels`` sees: (N, C, D, H, W) float32 from images and tumour
    masks (N, D, H, W); channel 0 the image, channel 1 (when C = 2) the tumour mask as 0/1."""
    images = np.asarray(images, dtype=np.float32)[:, None]
    if in_channels == 1:
        return images
    return np.concatenate([images, (np.asarray(tumour) > 0).astype(np.float32)[:, None]], axis=1)


class PatchDataset(torch.utils.data.Dataset):
    """Items ``{"image": (C, D, H, W) float32 (see :func:`model_input`), "label": () float32, "real": () bool}``.

    With ``alternates`` (N, D, H, W) and ``swappable`` (N,) bool, items also hold ``"alternate"``
    (the image with channel 0 replaced by ``alternates[i]``) and ``"swappable"``: the training step
    may swap them (:class:`neonet_core.neocls.stage.ClsStage`, the autoencoder round trip).
    """

    def __init__(self, patches, in_channels: int = 1, alternates=None, swappable=None):
        self.patches, self.in_channels = patches, in_channels
        self.alternates, self.swappable = alternates, swappable

    def __len__(self):
        return len(self.patches)

    def __getitem__(self, i):
        p = self.patches
        image = torch.from_numpy(model_input(p.images[i : i + 1], p.tumour[i : i + 1], self.in_channels)[0])
        item = {"image": image, "label": torch.tensor(float(p.labels[i])), "real": torch.tensor(not bool(p.synthetic[i]))}
        if self.alternates is not None:
            alternate = image.clone()
            alternate[0] = torch.from_numpy(np.asarray(self.alternates[i], dtype=np.float32))
            item.update(alternate=alternate, swappable=torch.tensor(bool(self.swappable[i])))
        return item


__all__ = ["PatchDataset", "model_input"]
