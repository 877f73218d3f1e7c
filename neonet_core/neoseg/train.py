"""Train NeoSeg from a cohort manifest into a model bundle (the shared engine does the loop)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from neonet_core.errors import NeoNetError
from neonet_core.neoseg.data import CoarseCases, prepare_case, split_cases
from neonet_core.neoseg.infer import NETWORK, network_config
from neonet_core.neoseg.stage import SegStage


def _config(config):
    from neonet_core.config import NeoNetConfig, load_config

    return config if isinstance(config, NeoNetConfig) else load_config(str(config))


def prepare_cases(cases, cfg, percentiles) -> list:
    """Read every case and put it on its coarse working grid (a progress bar while it runs)."""
    from neonet_core.manifest import load_case
    from neonet_core.progress import Progress

    out = []
    with Progress(len(cases), "seg-data") as bar:
        for case in cases:
            image, tumour, anatomy = load_case(case)
            out.append(prepare_case(case.case_id, image, tumour, anatomy, cfg, percentiles))
            bar.update(1)
    return out


def train_seg(manifest_path, config, out_dir, resume: bool = False, val_fraction: float = 0.2) -> Path:
    """Train NeoSeg on the manifest's images + tumour masks; returns the bundle folder ``out_dir``.

    config: a NeoNetConfig, a preset name or a JSON config path (its ``seg`` section is used).
    The engine's run folder is ``out_dir/runs/seg`` (checkpoint, history); the best weights by
    validation Dice go into the bundle as ``seg.safetensors`` with the config in ``bundle.json``.
    A folder whose bundle already holds a NeoSeg network is refused unless ``resume``.
    """
    from neonet_core.bundle import read_or_new_bundle_info
    from neonet_core.engine import Trainer, load_weights
    from neonet_core.manifest import read_manifest

    config = _config(config)
    cfg = config.seg
    out_dir = Path(out_dir)
    info = read_or_new_bundle_info(out_dir, config.to_dict())
    if NETWORK in info.get("networks", {}) and not resume:
        raise NeoNetError(f"{out_dir}: the bundle already holds a NeoSeg network; use --resume or a new folder")
    cases = [c for c in read_manifest(manifest_path, require_tumor_masks=True) if not c.synthetic]
    if not cases:
        raise NeoNetError(f"{manifest_path}: no real (non-synthetic) case to train NeoSeg on")
    train_cases, val_cases = split_cases(cases, val_fraction, cfg.train.seed)
    percentiles = (config.preprocess.lower_percentile, config.preprocess.upper_percentile)
    train_set = CoarseCases(prepare_cases(train_cases, cfg, percentiles))
    val_set = CoarseCases(prepare_cases(val_cases, cfg, percentiles)) if val_cases else None

    torch.manual_seed(cfg.train.seed)  # the network's initial weights
    stage = SegStage(cfg)
    result = Trainer(stage, train_set, val_set, cfg.train, out_dir / "runs" / NETWORK).fit(resume)
    load_weights(result.out_dir / "best.safetensors", stage.networks())

    save_seg_network(out_dir, stage.net, config, info, {
        "val_dice": result.best_score,
        "best_step": result.best_step,
        "steps": result.steps,
        "train_cases": len(train_cases),
        "val_cases": len(val_cases),
    })
    return out_dir


def save_seg_network(bundle_dir, net, config, info: dict | None = None, metrics: dict | None = None) -> Path:
    """Put NeoSeg ``net`` (built from ``config.seg``) into the bundle ``bundle_dir``; returns its bundle.json.

    ``info``: the bundle.json dict to extend (default: the folder's current one, or a new one).
    """
    from neonet_core.bundle import add_network, read_or_new_bundle_info, write_bundle_info

    config = _config(config)
    info = info if info is not None else read_or_new_bundle_info(bundle_dir, config.to_dict())
    percentiles = (config.preprocess.lower_percentile, config.preprocess.upper_percentile)
    info.setdefault("config", {})["seg"] = dataclasses.asdict(config.seg)
    add_network(bundle_dir, info, NETWORK, net.state_dict(), network_config(config.seg, percentiles))
    if metrics is not None:
        info.setdefault("metrics", {})[NETWORK] = metrics
    return write_bundle_info(bundle_dir, info)
