"""Train NeoSeg from a cohort manifest into a model bundle (the shared engine does the loop)."""

from __future__ import annotations

from pathlib import Path

from neonet_core.errors import NeoNetError
from neonet_core.neoseg.data import CoarseCases, prepare_case
from neonet_core.neoseg.infer import NETWORK, network_config
from neonet_core.neoseg.stage import SegStage


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


def train_seg(train_cases, val_cases, config, out_dir, device="auto", resume: bool = False) -> Path:
    """Train NeoSeg on the images + tumour masks of ``train_cases`` (validating on ``val_cases``:
    the run's hold-out, :mod:`neonet_core.splits`); returns the bundle folder ``out_dir``.

    The engine's run folder is ``out_dir/runs/seg``; the published weights go into the bundle as
    ``seg.safetensors`` with the config in ``bundle.json``. A folder whose bundle already holds a
    NeoSeg network is refused unless ``resume``.
    """
    from neonet_core.bundle import read_or_new_bundle_info
    from neonet_core.config import resolve_config
    from neonet_core.fit import fit_stage, run_dir, summary

    config = resolve_config(config)
    cfg = config.seg
    out_dir = Path(out_dir)
    if NETWORK in read_or_new_bundle_info(out_dir, config.to_dict()).get("networks", {}) and not resume:
        raise NeoNetError(f"{out_dir}: the bundle already holds a NeoSeg network; use --resume or a new folder")
    if not train_cases:
        raise NeoNetError(f"{out_dir}: no real (non-synthetic) case to train NeoSeg on")
    percentiles = (config.preprocess.lower_percentile, config.preprocess.upper_percentile)
    train_set = CoarseCases(prepare_cases(train_cases, cfg, percentiles))
    val_set = CoarseCases(prepare_cases(val_cases, cfg, percentiles)) if val_cases else None
    stage, result = fit_stage(lambda: SegStage(cfg), train_set, val_set, cfg.train, run_dir(out_dir, NETWORK), device, resume)
    save_seg_network(out_dir, stage.net, config, summary(result, len(train_cases), len(val_cases)))
    return out_dir


def save_seg_network(bundle_dir, net, config, training: dict | None = None) -> Path:
    """Put NeoSeg ``net`` (built from ``config.seg``) into the bundle ``bundle_dir`` with its training
    summary (if any); returns its bundle.json."""
    from neonet_core.config import resolve_config
    from neonet_core.fit import publish

    config = resolve_config(config)
    percentiles = (config.preprocess.lower_percentile, config.preprocess.upper_percentile)
    return publish(bundle_dir, config, ["seg"], {NETWORK: (net, network_config(config.seg, percentiles))}, NETWORK, training or {})
