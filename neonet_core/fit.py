"""The one fit-and-publish recipe every stage uses (NeoSeg, NeoGen's three networks, the classifier).

    seed -> build the stage -> engine fit (or resume) -> load the published weights
    -> add the stage's networks to the bundle with the config that rebuilds them
    -> one training summary per stage in ``bundle.json["training"][stage]``

Which patients train and validate is decided before (:mod:`neonet_core.splits`); the stage only
sees datasets. The summary has one shape for every stage: ``steps``, ``best_step``,
``best_score`` (the stage's validation score: Dice, PSNR, -loss or AUC), ``selected_step`` (whose
weights were published), ``validation`` (the last validation metrics), ``train_cases``,
``val_cases`` and any stage-specific extras.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from neonet_core.engine import Stage, TrainConfig, Trainer, TrainResult, load_weights


def run_dir(bundle_dir, stage: str) -> Path:
    """Where the engine keeps a stage's checkpoint and history: ``BUNDLE/runs/<stage>``."""
    return Path(bundle_dir) / "runs" / stage


def fit_stage(build: Callable[[], Stage], train_set, val_set, tcfg: TrainConfig, out_dir, device, resume: bool = False) -> tuple[Stage, TrainResult]:
    """Seed, build the stage, train it through the engine and load its published weights."""
    torch.manual_seed(tcfg.seed)  # initial weights
    stage = build()
    val_set = val_set if val_set is not None and len(val_set) else None
    result = Trainer(stage, train_set, val_set, tcfg, out_dir, device).fit(resume)
    load_weights(Path(out_dir) / "best.safetensors", stage.networks())
    return stage, result


def summary(result: TrainResult, n_train: int, n_val: int, **extra) -> dict:
    """The training summary of one stage (see the module docstring)."""
    return {"steps": result.steps, "best_step": result.best_step, "best_score": result.best_score,
            "selected_step": getattr(result, "selected_step", result.best_step),
            "validation": result.last_metrics, "train_cases": n_train, "val_cases": n_val, **extra}


def publish(bundle_dir, cfg, sections: list[str], networks: dict[str, tuple[nn.Module, dict]], stage: str, stage_summary: dict,
            **info_updates) -> Path:
    """Add ``networks`` ({name: (module, network config)}) and the stage's summary to the bundle;
    ``sections`` of ``cfg`` are stored under ``bundle.json["config"]``; returns bundle.json's path."""
    from neonet_core.bundle import add_network, read_or_new_bundle_info, write_bundle_info

    info = read_or_new_bundle_info(bundle_dir, cfg.to_dict())
    for section in sections:
        info.setdefault("config", {})[section] = dataclasses.asdict(getattr(cfg, section))
    for name, (module, net_config) in networks.items():
        add_network(bundle_dir, info, name, module.state_dict(), net_config)
    if stage_summary:
        info.setdefault("training", {})[stage] = stage_summary
    info.update(info_updates)
    return write_bundle_info(bundle_dir, info)


__all__ = ["fit_stage", "publish", "summary", "run_dir"]
