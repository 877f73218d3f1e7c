"""How to train a stage (:class:`TrainConfig`) and the learning rate of each step (:func:`lr_factor`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

LR_SCHEDULES = ("constant", "cosine")
SELECT_MODES = ("best", "final")


@dataclass
class TrainConfig:
    """How to train a stage (the model itself is configured by the stage's own config)."""

    epochs: int = 10
    batch_size: int = 4  # global batch: split across ranks under torchrun
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    amp: bool = True  # bf16 autocast, on CUDA only
    seed: int = 0
    val_every_epochs: int = 1
    checkpoint_every: int = 50  # steps
    num_workers: int = 0
    log_every: int = 10  # steps between history lines
    # learning rate of step s = lr * lr_factor(s, total steps): "constant" | "cosine" (to 0 at the end),
    # after a linear warm-up over warmup_steps (or warmup_fraction of the run; set one of the two)
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    warmup_fraction: float = 0.0
    ema_decay: float = 0.0  # weight EMA per optimiser step (e.g. 0.99-0.999); 0 = off
    select: str = "best"  # published weights: "best" (validation score) | "final" (end of the run)

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        """Raise ValueError naming the field for an invalid schedule / EMA / select setting."""
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, not {self.lr_schedule!r}")
        if self.select not in SELECT_MODES:
            raise ValueError(f"select must be one of {SELECT_MODES}, not {self.select!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), not {self.ema_decay}")
        if not 0.0 <= self.warmup_fraction < 1.0 or self.warmup_steps < 0:
            raise ValueError(f"warmup_fraction must be in [0, 1) and warmup_steps >= 0 (got {self.warmup_fraction}, {self.warmup_steps})")
        if self.warmup_steps and self.warmup_fraction:
            raise ValueError("set warmup_steps or warmup_fraction, not both")


def lr_factor(cfg: TrainConfig, step: int, total_steps: int) -> float:
    """Multiplier of ``cfg.lr`` for optimiser step ``step`` (0-based) of a run of ``total_steps``.

    Warm-up of ``W`` steps: ``(step + 1) / W`` for ``step < W`` (the first step is not wasted at 0,
    step ``W - 1`` reaches 1). Then "constant" stays at 1 and "cosine" falls as
    ``0.5 * (1 + cos(pi * (step - W) / (total_steps - W)))``: 1 at ``step == W``, ~0 at the last step.
    """
    warmup = cfg.warmup_steps or int(round(cfg.warmup_fraction * total_steps))
    warmup = min(warmup, max(total_steps - 1, 0))
    if step < warmup:
        return (step + 1) / warmup
    if cfg.lr_schedule == "constant":
        return 1.0
    progress = min((step - warmup) / max(total_steps - warmup, 1), 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * progress))
