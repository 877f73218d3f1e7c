"""NeoSeg as a stage of the shared training engine: random crops, Dice + cross-entropy, validation Dice."""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch
from torch import nn

from neonet_core.engine import Stage
from neonet_core.metrics import dice
from neonet_core.neoseg.data import class_names
from neonet_core.neoseg.model import build_seg_net


class SegStage(Stage):
    """Trains ``build_seg_net(cfg)`` on random ``cfg.roi_size`` crops of whole coarse cases.

    Batches come from :class:`~neonet_core.neoseg.data.CoarseCases` (numpy arrays); every random
    choice is drawn from the global torch RNG inside :meth:`training_step`.
    """

    name = "seg"

    def __init__(self, cfg, net: nn.Module | None = None):
        from monai.losses import DiceCELoss

        self.cfg = cfg
        self.classes = class_names(cfg.predict_anatomy)
        self.tumour_label = len(self.classes) - 1
        self.net = net if net is not None else build_seg_net(cfg)
        self.loss = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)

    def networks(self) -> dict[str, nn.Module]:
        return {"seg": self.net}

    def _device(self) -> torch.device:
        return next(self.net.parameters()).device

    def training_step(self, nets, batch, step):
        from neonet_core.neoseg.data import random_crops

        x, y = random_crops(batch, self.cfg, self.tumour_label, self._device())
        loss = self.loss(nets["seg"](x), y)
        return {"main": loss}, {}

    @torch.no_grad()
    def validate(self, batches: Iterable[dict]) -> dict[str, float]:
        """Tumour Dice on whole coarse validation cases (sliding window, threshold, no post-processing)."""
        scores = []
        for batch in batches:
            for image, labels in zip(batch["image"], batch["labels"]):
                prob = self.predict_coarse(image)[self.tumour_label]
                scores.append(dice(prob > self.cfg.threshold, labels == self.tumour_label))
        return {"score": float(np.mean(scores)), "dice": float(np.mean(scores))} if scores else {}

    def predict_coarse(self, image: np.ndarray) -> np.ndarray:
        """Class probabilities ``(C, D, H, W)`` float32 for a whole normalised coarse image ``(D, H, W)``."""
        return predict_probabilities(self.net, image, self.cfg, self._device())


@torch.no_grad()
def predict_probabilities(net: nn.Module, image: np.ndarray, cfg, device) -> np.ndarray:
    """Sliding-window softmax of ``net`` over ``image`` (D, H, W) -> ``(C, D, H, W)`` float32 (numpy).

    Windows of ``cfg.roi_size`` run on ``device``; the blended output stays on the CPU.
    """
    from monai.inferers import sliding_window_inference

    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    out = sliding_window_inference(
        x,
        roi_size=tuple(int(s) for s in cfg.roi_size),
        sw_batch_size=int(cfg.sw_batch_size),
        predictor=lambda window: torch.softmax(net(window).float(), dim=1),
        overlap=float(cfg.sw_overlap),
        mode="gaussian",
        sw_device=device,
        device="cpu",
    )
    return out[0].numpy()
