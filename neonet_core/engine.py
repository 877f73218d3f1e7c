"""The one training engine every stage uses (NeoSeg, autoencoder, LDM, ControlNet, classifiers).

Stages differ only in model, loss and data: a :class:`Stage` says which networks it owns, which
optimisers it needs and how one batch turns into losses; :class:`Trainer` does the rest in one
loop you can read top to bottom: device, bf16 autocast on CUDA, deterministic per-step seeding,
gradient clipping, validation with best-model selection, atomic checkpoints and ``--resume``,
progress bar / JSON lines, and DistributedDataParallel under ``torchrun``.

Determinism: before step ``s`` the global torch RNG is seeded from ``(seed, s)`` and the batch
order of every epoch is a permutation drawn from ``(seed, epoch)``. A run resumed from a
checkpoint therefore sees exactly the batches and random numbers of an uninterrupted run.

Run folder layout (``out_dir``): ``checkpoint.pt`` (latest full state, weights-only loadable),
``best.safetensors`` / ``last.safetensors`` (network weights, keys ``<network>.<param>``),
``history.jsonl`` (one line per logged step / validation), ``train_config.json``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch
from torch import nn

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
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    amp: bool = True  # bf16 autocast, on CUDA only
    seed: int = 0
    val_every_epochs: int = 1
    checkpoint_every: int = 50  # steps
    num_workers: int = 0
    log_every: int = 10  # steps between history lines


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


def resolve_device(name: str = "auto") -> torch.device:
    """"auto" -> cuda if available, else mps, else cpu; explicit names are checked."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise NeoNetError(f"device {name!r} requested but CUDA is not available on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise NeoNetError(f"device {name!r} requested but Apple MPS is not available on this machine")
    return device


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


class Trainer:
    """Train ``stage`` on ``train_set`` (a map-style dataset of sample dicts), validating on ``val_set``."""

    def __init__(self, stage: Stage, train_set, val_set, cfg: TrainConfig, out_dir: str | Path):
        if len(train_set) == 0:
            raise NeoNetError(f"stage {stage.name}: the training set is empty")
        self.stage, self.train_set, self.val_set, self.cfg = stage, train_set, val_set, cfg
        self.out_dir = Path(out_dir)
        init_distributed(cfg.device)
        self.rank, self.world = rank_world()
        self.device = _rank_device(resolve_device(cfg.device), self.rank)
        self.steps_per_epoch = len(epoch_batches(len(train_set), cfg.batch_size, cfg.seed, 0))
        self.total_steps = self.steps_per_epoch * cfg.epochs
        for net in stage.networks().values():
            net.to(self.device)
        self.nets = {**self.stage.networks(), **self._wrap_trainable()}
        self.opts = stage.optimizers(cfg)
        self.step = 0
        self.best_score: float | None = None
        self.best_step = 0
        self.last_metrics: dict[str, float] = {}

    # --- the loop -------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> TrainResult:
        """Run (or resume) training to ``epochs``; returns where the best weights are."""
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
        if is_main:
            self._save_weights(self.out_dir / "last.safetensors")
            if self.best_score is None:  # no validation data: the last weights are the best
                self._save_weights(self.out_dir / "best.safetensors")
        barrier()
        return TrainResult(self.step, self.best_step, self.best_score, self.last_metrics, self.out_dir)

    def _train_step(self, batch) -> dict[str, float]:
        torch.manual_seed(step_seed(self.cfg.seed, self.step))
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
        return {**{f"loss_{k}" if len(losses) > 1 else "loss": float(v.detach()) for k, v in losses.items()}, **metrics}

    def _validate(self) -> None:
        if self.val_set is None or len(self.val_set) == 0:
            return
        for net in self.stage.networks().values():
            net.eval()
        batches = [list(range(i, min(i + self.cfg.batch_size, len(self.val_set)))) for i in range(0, len(self.val_set), self.cfg.batch_size)]
        with torch.no_grad(), self._autocast():
            metrics = self.stage.validate(to_device(b, self.device) for b in iterate(self.val_set, batches))
        self.last_metrics = {k: float(v) for k, v in metrics.items()}
        score = self.last_metrics.get("score")
        if self.rank == 0:
            self._log({"step": self.step, "validation": self.last_metrics})
            emit("validation", stage=self.stage.name, step=self.step, **self.last_metrics)
            if score is not None and (self.best_score is None or score > self.best_score):
                self.best_score, self.best_step = score, self.step
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
        }
        with atomic_path(self.out_dir / "checkpoint.pt") as tmp:
            torch.save(state, tmp)

    def _load_checkpoint(self, path: Path) -> None:
        state = torch.load(path, map_location=self.device, weights_only=True)
        for name, net in self.stage.networks().items():
            net.load_state_dict(state["networks"][name])
        for name, opt in self.opts.items():
            opt.load_state_dict(state["optimizers"][name])
        self.step, self.best_step = int(state["step"]), int(state["best_step"])
        self.best_score, self.last_metrics = state["best_score"], dict(state["last_metrics"])
        self._truncate_history()

    def _truncate_history(self) -> None:
        """Drop history lines written after the checkpoint we resume from (a killed run's tail)."""
        path = self.out_dir / "history.jsonl"
        if self.rank != 0 or not path.exists():
            return
        kept = [line for line in path.read_text(encoding="utf-8").splitlines() if line and json.loads(line)["step"] <= self.step]
        write_text_atomic(path, "".join(line + "\n" for line in kept))

    def _save_weights(self, path: Path) -> None:
        from safetensors.torch import save_file

        tensors = {
            f"{name}.{key}": value.detach().cpu().contiguous()
            for name, net in self.stage.networks().items()
            for key, value in net.state_dict().items()
        }
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp))

    def _log(self, record: dict) -> None:
        with open(self.out_dir / "history.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record, default=float) + "\n")

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
    "resolve_device",
    "load_weights",
    "steps_for",
    "epoch_batches",
    "collate",
]
