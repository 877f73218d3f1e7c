"""The one training engine every stage uses (NeoSeg, autoencoder, LDM, ControlNet, classifiers).

Stages differ only in model, loss and data: a :class:`Stage` says which networks it owns, which
optimisers it needs and how one batch turns into losses; :class:`Trainer` does the rest in one
loop you can read top to bottom: device, bf16 autocast on CUDA, deterministic per-step seeding,
gradient clipping, learning-rate warm-up and cosine decay, weight EMA, validation, the choice of
published weights (best validation score or final), atomic checkpoints and ``--resume``, progress
bar / JSON lines, and DistributedDataParallel under ``torchrun``.

Determinism: before step ``s`` the global torch RNG is seeded from ``(seed, s)`` and the batch
order of every epoch is a permutation drawn from ``(seed, epoch)``. The learning rate of step ``s``
is a pure function of ``s`` and the run's planned length (:func:`lr_factor`), and the EMA weights
travel in the checkpoint. A run resumed from a checkpoint therefore sees exactly the batches,
random numbers, learning rates and averages of an uninterrupted run (bit for bit on one device).

Weight EMA (``ema_decay > 0``): every trainable network has an exponential moving average of its
parameters and buffers (BatchNorm statistics included), updated after every optimiser step. The
EMA weights are the ones validated and the ones written to every ``*.safetensors`` file; the raw
(live) weights are kept only in ``checkpoint.pt``.

Run folder layout (``out_dir``):

- ``best.safetensors``: **the published weights, the file stages load** (also
  ``TrainResult.weights``). With ``select="best"`` (default) the weights of the best validation
  score; with ``select="final"`` the weights at the end of the run (validation still runs and is
  logged). When the stage has no validation data it is the final weights either way. EMA weights
  when ``ema_decay > 0``. Keys ``<network>.<param>``, read with :func:`load_weights`.
- ``last.safetensors``: the weights at the end of the run (EMA weights when EMA is on).
- ``checkpoint.pt``: latest full state (raw weights, EMA, optimisers; weights-only loadable).
- ``history.jsonl``: one JSON line per logged step / validation; read it with :func:`read_history`
  (a line torn by a kill is skipped, and dropped on ``--resume``).
- ``train_config.json``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from neonet_core.device import resolve_device
from neonet_core.distributed import barrier, init_distributed, rank_world
from neonet_core.errors import NeoNetError
from neonet_core.fileio import atomic_path, remove_stale_temporaries, write_text_atomic
from neonet_core.progress import Progress, emit


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


LR_SCHEDULES = ("constant", "cosine")
SELECT_MODES = ("best", "final")


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


class Stage:
    """What a training stage provides. Subclasses set ``name`` and implement the methods below.

    ``networks()`` holds every network saved with the stage (frozen ones included);
    ``trainable_networks()`` the ones whose weights change (DDP wraps these).
    """

    name = "stage"

    def networks(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def trainable_networks(self) -> dict[str, nn.Module]:
        return self.networks()

    def optimizers(self, cfg: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        """One AdamW ("main") over every trainable parameter by default."""
        params = [p for net in self.trainable_networks().values() for p in net.parameters() if p.requires_grad]
        return {"main": torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)}

    def training_step(
        self, nets: dict[str, nn.Module], batch: dict[str, torch.Tensor], step: int
    ) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Return ``(losses, metrics)``: ``losses[opt_name]`` is back-propagated into that optimiser.

        Call the networks through ``nets`` (the trainable ones may be DDP-wrapped under torchrun).
        """
        raise NotImplementedError

    @torch.no_grad()
    def validate(self, batches: Iterable[dict[str, torch.Tensor]]) -> dict[str, float]:
        """Validation metrics; the key ``"score"`` (higher is better) selects the best model."""
        return {}


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


@dataclass
class TrainResult:
    steps: int
    best_step: int
    best_score: float | None
    last_metrics: dict[str, float]
    out_dir: Path
    selected_step: int = 0  # the step whose weights were published (best_step or the last step)
    weights: Path | None = None  # the published weights: out_dir / "best.safetensors"


class Trainer:
    """Train ``stage`` on ``train_set`` (a map-style dataset of sample dicts), validating on ``val_set``."""

    def __init__(self, stage: Stage, train_set, val_set, cfg: TrainConfig, out_dir: str | Path, device: str | torch.device = "auto"):
        if len(train_set) == 0:
            raise NeoNetError(f"stage {stage.name}: the training set is empty")
        self.stage, self.train_set, self.val_set, self.cfg = stage, train_set, val_set, cfg
        self.out_dir = Path(out_dir)
        device = resolve_device(device)
        init_distributed(device.type)
        self.rank, self.world = rank_world()
        self.device = _rank_device(device, self.rank)
        self.steps_per_epoch = len(epoch_batches(len(train_set), cfg.batch_size, cfg.seed, 0))
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.schedule_steps = self.total_steps  # the planned length the lr schedule spans
        cfg.check()
        for net in stage.networks().values():
            net.to(self.device)
        self.nets = {**self.stage.networks(), **self._wrap_trainable()}
        self.opts = stage.optimizers(cfg)
        self.base_lrs = {n: [g["lr"] for g in o.param_groups] for n, o in self.opts.items()}
        self.emas = self._build_emas()
        self.step = 0
        self.best_score: float | None = None
        self.best_step = 0
        self.last_metrics: dict[str, float] = {}

    # --- the loop -------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> TrainResult:
        """Run (or resume) training to ``epochs``; ``TrainResult.weights`` is the published weights file."""
        self._prepare_out_dir(resume)
        cfg, is_main = self.cfg, self.rank == 0
        with Progress(self.total_steps, self.stage.name, mode=None if is_main else "none") as bar:
            bar.update(self.step)
            while self.step < self.total_steps:
                epoch, offset = divmod(self.step, self.steps_per_epoch)
                batches = epoch_batches(len(self.train_set), cfg.batch_size, cfg.seed, epoch, self.rank, self.world)
                for batch in iterate(self.train_set, batches[offset:], cfg.num_workers):
                    metrics = self._train_step(batch)
                    self.step += 1
                    bar.update(1, **{k: v for k, v in metrics.items() if k.startswith("loss")})
                    if is_main and (self.step % cfg.log_every == 0 or self.step == self.total_steps):
                        self._log({"step": self.step, "epoch": epoch, **metrics})
                    if self.step % self.steps_per_epoch == 0 and ((epoch + 1) % cfg.val_every_epochs == 0 or self.step == self.total_steps):
                        self._validate()
                    if self.step % cfg.checkpoint_every == 0 or self.step == self.total_steps:
                        self._save_checkpoint()
        publish_last = cfg.select == "final" or self.best_score is None  # no validation data: the last weights
        if is_main:
            self._save_weights(self.out_dir / "last.safetensors")
            if publish_last:
                self._save_weights(self.out_dir / "best.safetensors")
        barrier()
        selected = self.step if publish_last else self.best_step
        return TrainResult(self.step, self.best_step, self.best_score, self.last_metrics, self.out_dir,
                           selected, self.out_dir / "best.safetensors")

    def _train_step(self, batch) -> dict[str, float]:
        torch.manual_seed(step_seed(self.cfg.seed, self.step))
        factor = lr_factor(self.cfg, self.step, self.schedule_steps)
        for name, opt in self.opts.items():
            for group, base_lr in zip(opt.param_groups, self.base_lrs[name]):
                group["lr"] = base_lr * factor
        for net in self.stage.trainable_networks().values():
            net.train()
        with self._autocast():
            losses, metrics = self.stage.training_step(self.nets, to_device(batch, self.device), self.step)
        for name, loss in losses.items():
            if not torch.isfinite(loss):
                raise NeoNetError(f"stage {self.stage.name}: loss {name} became {loss.item()} at step {self.step}")
            opt = self.opts[name]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if self.cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], self.cfg.grad_clip)
            opt.step()
        trainable = self.stage.trainable_networks()
        for name, ema in self.emas.items():
            ema.update_parameters(trainable[name])
        losses = {f"loss_{k}" if len(losses) > 1 else "loss": float(v.detach()) for k, v in losses.items()}
        return {**losses, **metrics, "lr": next(iter(self.opts.values())).param_groups[0]["lr"]}

    def _validate(self) -> None:
        if self.val_set is None or len(self.val_set) == 0:
            return
        for net in self.stage.networks().values():
            net.eval()
        batches = [list(range(i, min(i + self.cfg.batch_size, len(self.val_set)))) for i in range(0, len(self.val_set), self.cfg.batch_size)]
        with torch.no_grad(), self._autocast(), self._ema_weights():
            metrics = self.stage.validate(to_device(b, self.device) for b in iterate(self.val_set, batches))
        self.last_metrics = {k: float(v) for k, v in metrics.items()}
        score = self.last_metrics.get("score")
        if self.rank == 0:
            self._log({"step": self.step, "validation": self.last_metrics})
            emit("validation", stage=self.stage.name, step=self.step, **self.last_metrics)
            if score is not None and (self.best_score is None or score > self.best_score):
                self.best_score, self.best_step = score, self.step
                if self.cfg.select == "best":
                    self._save_weights(self.out_dir / "best.safetensors")

    # --- state ----------------------------------------------------------------------------
    def _prepare_out_dir(self, resume: bool) -> None:
        ckpt = self.out_dir / "checkpoint.pt"
        cfg_text = json.dumps(dataclasses.asdict(self.cfg), indent=2, sort_keys=True)
        if resume:
            if not ckpt.exists():
                raise NeoNetError(f"{self.out_dir}: nothing to resume (no checkpoint.pt)")
            remove_stale_temporaries(self.out_dir)
            self._load_checkpoint(ckpt)
            return
        if ckpt.exists() or (self.out_dir / "last.safetensors").exists():
            raise NeoNetError(f"{self.out_dir}: holds an earlier {self.stage.name} run; use --resume or a new folder")
        if self.rank == 0:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.out_dir / "train_config.json", cfg_text)
        barrier()

    def _save_checkpoint(self) -> None:
        if self.rank != 0:
            return
        state = {
            "step": self.step,
            "best_score": self.best_score,
            "best_step": self.best_step,
            "last_metrics": self.last_metrics,
            "networks": {n: m.state_dict() for n, m in self.stage.networks().items()},
            "optimizers": {n: o.state_dict() for n, o in self.opts.items()},
            "ema": {n: e.state_dict() for n, e in self.emas.items()},
        }
        with atomic_path(self.out_dir / "checkpoint.pt") as tmp:
            torch.save(state, tmp)

    def _load_checkpoint(self, path: Path) -> None:
        state = torch.load(path, map_location=self.device, weights_only=True)
        for name, net in self.stage.networks().items():
            net.load_state_dict(state["networks"][name])
        for name, opt in self.opts.items():
            opt.load_state_dict(state["optimizers"][name])
        for name, ema in self.emas.items():  # a checkpoint without EMA (it was off): the average starts now
            if name in state.get("ema", {}):
                ema.load_state_dict(state["ema"][name])
        self.step, self.best_step = int(state["step"]), int(state["best_step"])
        self.best_score, self.last_metrics = state["best_score"], dict(state["last_metrics"])
        self._truncate_history()

    def _truncate_history(self) -> None:
        """Drop history lines written after the checkpoint we resume from (a killed run's tail),
        and any line a kill (or a full disk) left half-written."""
        path = self.out_dir / "history.jsonl"
        if self.rank != 0 or not path.exists():
            return
        kept = [record for record in read_history(path) if record["step"] <= self.step]
        write_text_atomic(path, "".join(json.dumps(record) + "\n" for record in kept))

    def _save_weights(self, path: Path) -> None:
        from safetensors.torch import save_file

        nets = {**self.stage.networks(), **{name: ema.module for name, ema in self.emas.items()}}
        tensors = {
            f"{name}.{key}": value.detach().cpu().contiguous()
            for name, net in nets.items()
            for key, value in net.state_dict().items()
        }
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp))

    def _log(self, record: dict) -> None:
        """Append one line with a single O_APPEND write: a kill leaves the line whole or absent
        (a power cut or full disk can still tear it; :func:`read_history` and resume skip such a line)."""
        data = (json.dumps(record, default=float) + "\n").encode("utf-8")
        fd = os.open(self.out_dir / "history.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)

    # --- weight EMA -----------------------------------------------------------------------------
    def _build_emas(self) -> dict[str, nn.Module]:
        """An EMA (``AveragedModel``, parameters and buffers) of every trainable network with gradients."""
        if not self.cfg.ema_decay:
            return {}
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema_update = get_ema_multi_avg_fn(self.cfg.ema_decay)

        def update(averaged, current, n_averaged):
            if averaged[0].is_floating_point() or averaged[0].is_complex():
                ema_update(averaged, current, n_averaged)
            else:  # integer buffers (BatchNorm's num_batches_tracked) follow the live network
                for a, c in zip(averaged, current):
                    a.copy_(c)

        emas = {}
        for name, net in self.stage.trainable_networks().items():
            if any(p.requires_grad for p in net.parameters()):
                emas[name] = AveragedModel(net, multi_avg_fn=update, use_buffers=True)
                emas[name].module.requires_grad_(False)
        return emas

    @contextmanager
    def _ema_weights(self):
        """Inside, the trainable networks hold their EMA weights; afterwards their own, bit for bit."""
        live = self.stage.trainable_networks()
        saved = {n: {k: v.detach().clone() for k, v in live[n].state_dict().items()} for n in self.emas}
        for name, ema in self.emas.items():
            live[name].load_state_dict(ema.module.state_dict())
        try:
            yield
        finally:
            for name, state in saved.items():
                live[name].load_state_dict(state)

    # --- devices and DDP ---------------------------------------------------------------------
    def _autocast(self):
        enabled = self.cfg.amp and self.device.type == "cuda"
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def _wrap_trainable(self) -> dict[str, nn.Module]:
        """Under torchrun, trainable networks that have gradients are wrapped in DDP."""
        if self.world == 1:
            return self.stage.trainable_networks()
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.device.index] if self.device.type == "cuda" else None
        return {
            n: DDP(m, device_ids=ids) if any(p.requires_grad for p in m.parameters()) else m
            for n, m in self.stage.trainable_networks().items()
        }


def load_weights(path: str | Path, networks: dict[str, nn.Module]) -> None:
    """Load ``<network>.<param>`` safetensors weights (as the trainer saves them) into ``networks``."""
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    for name, net in networks.items():
        prefix = f"{name}."
        net.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})


def read_history(path: str | Path) -> list[dict]:
    """The records of a run's ``history.jsonl``, skipping lines that are not whole JSON records
    (the torn last line of a killed run)."""
    records = []
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(record)
    return records


def _rank_device(device: torch.device, rank: int) -> torch.device:
    if device.type == "cuda" and device.index is None and rank_world()[1] > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
    return device


def steps_for(n_items: int, cfg: TrainConfig) -> int:
    """Total optimiser steps ``Trainer`` will run for ``n_items`` training samples."""
    return len(epoch_batches(n_items, cfg.batch_size, cfg.seed, 0)) * cfg.epochs


__all__ = [
    "TrainConfig",
    "Stage",
    "Trainer",
    "TrainResult",
    "load_weights",
    "read_history",
    "lr_factor",
    "steps_for",
    "epoch_batches",
    "collate",
]
