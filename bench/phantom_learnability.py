"""Is the phantom's PNI label learnable, and how hard? A small 3D CNN on TLCR crops, k-fold CV AUC.

    .venv/bin/python bench/phantom_learnability.py --cases 128 --positives 44 --difficulty 0.5

Generates the cohort in memory (no files), cuts 64 mm / 32^3 tumour-centred crops with
:func:`neonet_core.tlcr.tlcr_crop`, normalises them, trains a 4-layer CNN per fold (CPU) and prints
the per-fold AUCs, their mean (the CV AUC) and the pooled out-of-fold AUC. The phantom's default
difficulty is tuned so that the CV AUC lands well above chance but below perfect (about 0.75-0.9).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from torch import nn

from neonet_core.normalize import normalise_patch
from neonet_core.phantom import PhantomParams, cohort_labels, generate_case
from neonet_core.tlcr import tlcr_crop


def crops(n: int, positives: int, seed: int, params: PhantomParams) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 1, 32, 32, 32)`` float32 normalised crops and ``(n,)`` labels."""
    labels = cohort_labels(n, positives, seed)
    x = np.zeros((n, 1, 32, 32, 32), dtype=np.float32)
    for i, label in enumerate(labels):
        case = generate_case(i, seed, int(label), params)
        patch = tlcr_crop(case.image, case.tumour, roi_mm=64.0, patch_size=32).image_patch
        x[i, 0] = normalise_patch(patch).array
    return x, np.asarray(labels)


class TinyCNN(nn.Module):
    """(B, 1, 32, 32, 32) -> (B,) logits: 4 conv blocks, global max+mean pooling, linear head."""

    def __init__(self, width: int = 8):
        super().__init__()
        chans = [1, width, 2 * width, 4 * width, 4 * width]
        layers = []
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv3d(a, b, 3, padding=1), nn.BatchNorm3d(b), nn.ReLU(inplace=True), nn.MaxPool3d(2)]
        self.features = nn.Sequential(*layers[:-1])  # no pooling after the last block
        self.head = nn.Linear(2 * chans[-1], 1)

    def forward(self, x):
        f = self.features(x)
        return self.head(torch.cat([f.amax(dim=(2, 3, 4)), f.mean(dim=(2, 3, 4))], dim=1)).squeeze(1)


def augment(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random flips, in-plane 90-degree turns and shifts of up to 2 voxels, per sample ``(B, 1, D, H, W)``."""
    out = np.empty_like(batch)
    for b, sample in enumerate(batch):
        sample = np.rot90(sample, k=int(rng.integers(4)), axes=(2, 3))
        for axis in (1, 2, 3):
            if rng.uniform() < 0.5:
                sample = np.flip(sample, axis=axis)
        out[b] = np.roll(sample, tuple(rng.integers(-2, 3, size=3)), axis=(1, 2, 3))
    return out


def train_fold(x, y, epochs: int, seed: int) -> TinyCNN:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = TinyCNN()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-3)
    pos_weight = torch.tensor((y == 0).sum() / max((y == 1).sum(), 1), dtype=torch.float32)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    for _ in range(epochs):
        model.train()
        for idx in np.array_split(rng.permutation(len(x)), max(len(x) // 16, 1)):
            batch = augment(x[idx], rng)
            batch *= rng.uniform(0.9, 1.1, size=(len(idx), 1, 1, 1, 1)).astype(np.float32)
            opt.zero_grad()
            loss = loss_fn(model(torch.from_numpy(batch)), torch.from_numpy(y[idx].astype(np.float32)))
            loss.backward()
            opt.step()
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=128)
    parser.add_argument("--positives", type=int, default=44)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--difficulty", type=float, default=0.5)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    start = time.perf_counter()
    x, y = crops(args.cases, args.positives, args.seed, PhantomParams(difficulty=args.difficulty))
    print(f"generated and cropped {args.cases} cases in {time.perf_counter() - start:.1f} s")
    oof, aucs = np.zeros(len(y)), []
    folds = StratifiedKFold(args.folds, shuffle=True, random_state=args.seed)
    for f, (tr, te) in enumerate(folds.split(x, y)):
        model = train_fold(x[tr], y[tr], args.epochs, args.seed + f)
        model.eval()
        with torch.no_grad():
            oof[te] = torch.sigmoid(model(torch.from_numpy(x[te]))).numpy()
        aucs.append(roc_auc_score(y[te], oof[te]))
        print(f"fold {f}: AUC {aucs[-1]:.3f}", flush=True)
    print(f"difficulty {args.difficulty}: CV AUC {np.mean(aucs):.3f} +- {np.std(aucs):.3f} (mean of folds), "
          f"pooled out-of-fold {roc_auc_score(y, oof):.3f} ({args.cases} cases, {args.folds}-fold, "
          f"{args.epochs} epochs, {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
