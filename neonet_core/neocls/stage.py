"""The classifier as an engine Stage, and the functions that train and apply it.

Loss: binary cross-entropy on the PNI logit, positives weighted by ``n_neg / n_pos`` of the training
set when ``ClsConfig.balance_loss`` (1 once NeoGen has balanced the classes).

The decoded-look control (``ClsConfig.round_trip``): NeoGen's synthetic patches are all of the
minority class and all decoded by the autoencoder, so "looks decoded" would predict the label. When
the training set holds synthetic patches, each real patch of the majority class is swapped, at each
draw, for its autoencoder round trip with probability n_synthetic / n_real_majority: decoded patches
then come in both classes as often, and the real patches of both classes stay 1:1 among the rest. Validation score: AUC
minus 0.001 x loss (ties between epochs go to the lower loss); minus the loss when the validation
set holds one class only.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neonet_core.config import NeoNetConfig
from neonet_core.device import resolve_device
from neonet_core.engine import Stage, TrainResult
from neonet_core.fit import fit_stage
from neonet_core.augment import FLIPS, augment_batch, flip_variant
from neonet_core.neocls.data import PatchDataset
from neonet_core.neocls.models import build_classifier, get_classifier
from neonet_core.patches import PatchSet
from neonet_core.neocls.metrics import roc_auc

NETWORK = "cls"


class ClsStage(Stage):
    name = "cls"

    def __init__(self, model: nn.Module, cls_cfg, pos_weight: float = 1.0, swap_probability: float = 0.0):
        self.model, self.cfg = model, cls_cfg
        self.pos_weight = float(pos_weight)
        self.swap_probability = float(swap_probability)

    def networks(self):
        return {NETWORK: self.model}

    def training_step(self, nets, batch, step):
        x, y = batch["image"], batch["label"].float()
        if self.swap_probability and "alternate" in batch:
            swap = batch["swappable"] & (torch.rand(len(x), device=x.device) < self.swap_probability)
            x = torch.where(swap[:, None, None, None, None], batch["alternate"], x)
        x = augment_batch(x, self.cfg.augment, intensity_channels=[0])  # channel 1, if any, is the tumour mask
        logits = nets[NETWORK](x).float()
        weight = torch.tensor(self.pos_weight, device=logits.device)
        loss = F.binary_cross_entropy_with_logits(logits, y, pos_weight=weight)
        return {"main": loss}, {}

    @torch.no_grad()
    def validate(self, batches):
        logits, labels = [], []
        for batch in batches:
            logits.append(self.model(batch["image"]).float().cpu())
            labels.append(batch["label"].float().cpu())
        logits, labels = torch.cat(logits), torch.cat(labels)
        loss = float(F.binary_cross_entropy_with_logits(logits, labels))
        auc = roc_auc(labels.numpy(), logits.numpy())
        # AUC selects the best epoch; on small validation sets many epochs tie, the lower loss breaks the tie
        return {"auc": auc, "loss": loss, "score": -loss if np.isnan(auc) else auc - 1e-3 * loss}


def network_config(cfg: NeoNetConfig) -> dict:
    """What rebuilds the classifier from a bundle: the cls and ae sections and the preprocessing."""
    return {"cls": dataclasses.asdict(cfg.cls), "ae": dataclasses.asdict(cfg.ae), "preprocess": dataclasses.asdict(cfg.preprocess)}


def build_from_network_config(net_cfg: dict) -> nn.Module:
    """The classifier a bundle's ``cls`` network config describes (untrained)."""
    cfg = NeoNetConfig.from_dict({k: net_cfg[k] for k in ("cls", "ae", "preprocess") if k in net_cfg})
    return build_classifier(cfg.cls, cfg.ae)


def train_classifier(train: PatchSet, val: PatchSet | None, cfg: NeoNetConfig, run_dir: str | Path, device="auto",
                     autoencoder: nn.Module | None = None, resume: bool = False) -> tuple[nn.Module, TrainResult]:
    """Train ``cfg.cls.model`` on ``train`` (real + synthetic patches) through the fit recipe.

    A model that needs the autoencoder takes its encoder from ``autoencoder`` (the trained NeoGen
    AutoencoderKL; required when the encoder is frozen). Returns the model holding the published
    weights (see :mod:`neonet_core.engine`) and the engine's result.
    """
    spec = get_classifier(cfg.cls.model)
    n_pos, n_neg = int((train.labels == 1).sum()), int((train.labels == 0).sum())
    pos_weight = n_neg / n_pos if (cfg.cls.balance_loss and n_pos and n_neg) else 1.0

    def build() -> ClsStage:
        model = build_classifier(cfg.cls, cfg.ae)
        if spec.needs_autoencoder:
            if autoencoder is not None:
                model.load_encoder(autoencoder)
            elif cfg.cls.freeze_encoder:
                raise ValueError(f"{spec.name} with a frozen encoder needs the trained NeoGen autoencoder")
        return ClsStage(model, cfg.cls, pos_weight, swap)

    dataset, swap = _training_dataset(train, spec.in_channels, autoencoder if cfg.cls.round_trip else None)
    val_set = PatchDataset(val, spec.in_channels) if val is not None and len(val) else None
    stage, result = fit_stage(build, dataset, val_set, cfg.cls.train, run_dir, device, resume)
    return stage.model.eval(), result


def _training_dataset(train: PatchSet, in_channels: int, autoencoder: nn.Module | None) -> tuple[PatchDataset, float]:
    """The training items and the swap probability of the decoded-look control (module docstring);
    (plain dataset, 0) without synthetic patches or without an autoencoder."""
    n_synthetic = int(train.synthetic.sum())
    if autoencoder is None or not n_synthetic:
        return PatchDataset(train, in_channels), 0.0
    from neonet_core.neogen.autoencoder import round_trip

    real = ~train.synthetic
    minority = int(np.bincount(train.labels[train.synthetic].astype(int), minlength=2).argmax())
    swappable = real & (train.labels != minority)
    alternates = np.array(train.images, dtype=np.float32, copy=True)
    alternates[swappable] = round_trip(autoencoder, train.images[swappable])
    return PatchDataset(train, in_channels, alternates, swappable), min(1.0, n_synthetic / max(int(swappable.sum()), 1))


@torch.no_grad()
def predict_probabilities(model: nn.Module, images: np.ndarray | torch.Tensor, device="cpu", tta: bool = False, batch_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """p(PNI) for patches (N, D, H, W) or model inputs (N, C, D, H, W): (mean probability (N,), spread (N,)).

    With ``tta`` the 8 flip variants are averaged and the spread is their standard deviation;
    without, the spread is 0.
    """
    device = resolve_device(device)
    model = model.to(device).eval()
    x_all = torch.as_tensor(np.asarray(images, dtype=np.float32))
    x_all = x_all[:, None] if x_all.ndim == 4 else x_all
    means, spreads = [], []
    for start in range(0, len(x_all), batch_size):
        x = x_all[start : start + batch_size].to(device)
        variants = range(len(FLIPS)) if tta else (0,)
        probs = torch.stack([torch.sigmoid(model(flip_variant(x, v, 2)).float()) for v in variants])
        means.append(probs.mean(0).cpu())
        spreads.append((probs.std(0, unbiased=False) if tta else torch.zeros_like(probs[0])).cpu())
    if not means:
        return np.zeros(0), np.zeros(0)
    return torch.cat(means).numpy().astype(np.float64), torch.cat(spreads).numpy().astype(np.float64)


__all__ = ["ClsStage", "train_classifier", "predict_probabilities", "network_config", "build_from_network_config", "NETWORK"]
