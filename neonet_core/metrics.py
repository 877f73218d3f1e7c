"""Overlap of masks, shared by NeoSeg (validation Dice) and NeoGen (mask adherence).

Classifier metrics (AUC, calibration) live in :mod:`neonet_core.neocls.metrics`.
"""

from __future__ import annotations

import numpy as np
import torch


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two masks of one shape (any number of axes; non-zero = inside); 1.0 when both are empty.

    MONAI's ``compute_dice`` on the two masks as ``(1, 1, *shape)`` tensors.
    """
    from monai.metrics import compute_dice

    pred, truth = (torch.from_numpy(np.asarray(m) != 0)[None, None].float() for m in (a, b))
    return float(compute_dice(pred, truth, ignore_empty=False))
