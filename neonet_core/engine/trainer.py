"""The training loop: :class:`Stage` (what a stage provides), :class:`Trainer` (the loop, validation,
checkpoints and resume, DDP) and :class:`TrainResult`. See :mod:`neonet_core.engine` for the contract."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch
from torch import nn

from neonet_core.device import resolve_device
from neonet_core.distributed import barrier, init_distributed, rank_world
from neonet_core.engine.batches import epoch_batches, iterate, step_seed, to_device
from neonet_core.engine.ema import build_emas, ema_weights
from neonet_core.engine.run_files import append_history, save_weights, truncate_history
from neonet_core.engine.train_config import TrainConfig, lr_factor
from neonet_core.errors import NeoNetError
from neonet_core.fileio import atomic_path, remove_stale_temporaries, write_text_atomic
from neonet_core.progress import Progress, emit


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
        self.emas = build_emas(stage.trainable_networks(), cfg.ema_decay)
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
        with torch.no_grad(), self._autocast(), ema_weights(self.stage.trainable_networks(), self.emas):
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
        if self.rank == 0:  # drop what a killed run logged after this checkpoint
            truncate_history(self.out_dir / "history.jsonl", self.step)

    def _save_weights(self, path: Path) -> None:
        """The stage's networks, the trainable ones as their EMA when EMA is on."""
        save_weights(path, {**self.stage.networks(), **{name: ema.module for name, ema in self.emas.items()}})

    def _log(self, record: dict) -> None:
        append_history(self.out_dir / "history.jsonl", record)

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


def _rank_device(device: torch.device, rank: int) -> torch.device:
    if device.type == "cuda" and device.index is None and rank_world()[1] > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
    return device
