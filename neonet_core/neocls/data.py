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
    """Items ``{"image": (C, D, H, W) float32 (see :func:`model_input`), "label": () float32, "real": () bool}``."""

    def __init__(self, patches, in_channels: int = 1):
        self.patches, self.in_channels = patches, in_channels

    def __len__(self):
        return len(self.patches)

    def __getitem__(self, i):
        p = self.patches
        return {
            "image": torch.from_numpy(model_input(p.images[i : i + 1], p.tumour[i : i + 1], self.in_channels)[0]),
            "label": torch.tensor(float(p.labels[i])),
            "real": torch.tensor(not bool(p.synthetic[i])),
        }


__all__ = ["PatchDataset", "model_input"]
