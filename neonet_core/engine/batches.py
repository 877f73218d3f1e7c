"""What each training step sees: the batch order of an epoch, the step's seed, collated batches."""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch

from neonet_core.engine.train_config import TrainConfig


def step_seed(seed: int, step: int) -> int:
    """A 63-bit seed for step ``step`` of a run seeded with ``seed``."""
    return int(np.random.SeedSequence([seed, step]).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def epoch_batches(n_items: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1) -> list[list[int]]:
    """The batches of one epoch: a (seed, epoch) permutation cut into global batches, this rank's share.

    The last incomplete batch is dropped when there is more than one batch, so every step has the
    same size on every rank (DDP needs equal step counts).
    """
    order = np.random.default_rng([seed, epoch]).permutation(n_items).tolist()
    batch_size = min(batch_size, n_items)
    n_batches = max(1, n_items // batch_size)
    batches = [order[b * batch_size : (b + 1) * batch_size] for b in range(n_batches)]
    return [batch[rank::world] for batch in batches]


def steps_for(n_items: int, cfg: TrainConfig) -> int:
    """Total optimiser steps ``Trainer`` will run for ``n_items`` training samples."""
    return len(epoch_batches(n_items, cfg.batch_size, cfg.seed, 0)) * cfg.epochs


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack a list of sample dicts into a batch dict (tensors stacked, everything else listed)."""
    out = {}
    for key in items[0]:
        values = [item[key] for item in items]
        out[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    return out


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def iterate(dataset, batches: list[list[int]], num_workers: int = 0) -> Iterator[dict[str, Any]]:
    """Yield collated batches for the given index lists (optionally with DataLoader workers)."""
    if num_workers > 0:
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=num_workers, collate_fn=collate)
        yield from loader
    else:
        for idx in batches:
            yield collate([dataset[i] for i in idx])
