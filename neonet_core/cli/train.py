"""``neonet train <stage>``: train one stage of NeoNet into a model bundle.

One subparser per stage: a stage adds itself with a ``_register_<stage>(stages)`` function listed in
:data:`STAGES`, or from its own module (listed in :data:`STAGE_MODULES`) exposing
``add_train_parsers(stages)`` (NeoGen's ae, ldm and controlnet live in ``train_neogen``).
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path


def add_common_options(parser: argparse.ArgumentParser, default_out_help: str) -> None:
    """Options every ``train`` stage shares."""
    parser.add_argument("--manifest", type=Path, required=True, help="cohort manifest CSV (case_id,image,tumor_mask,...)")
    parser.add_argument("--config", default="tiny", help="preset name (tiny, paper) or a JSON config file (default tiny)")
    parser.add_argument("--out", type=Path, required=True, help=default_out_help)
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N or mps (default: the config's, auto)")
    parser.add_argument("--epochs", type=int, default=None, help="override the config's number of epochs")
    parser.add_argument("--seed", type=int, default=None, help="override the config's random seed")


def apply_overrides(train_cfg, args) -> None:
    """Copy --device / --epochs / --seed onto a stage's TrainConfig."""
    from neonet_core.errors import InputError

    if args.epochs is not None:
        if args.epochs < 1:
            raise InputError(None, f"--epochs must be at least 1, got {args.epochs}")
        train_cfg.epochs = args.epochs
    if args.device is not None:
        train_cfg.device = args.device
    if args.seed is not None:
        train_cfg.seed = args.seed


# --- seg ----------------------------------------------------------------------------------------
def _register_seg(stages) -> None:
    parser = stages.add_parser(
        "seg",
        help="train NeoSeg, the automatic tumour segmentation",
        description="Train NeoSeg (a MONAI 3D UNet at the config's coarse isotropic spacing) on the image and tumour "
        "mask of every case in the manifest. A fifth of the patients (at least one) is held out; the weights with "
        "the best validation Dice go into the bundle folder --out as seg.safetensors, with the config in "
        "bundle.json. The run's checkpoint and history live in OUT/runs/seg; --resume continues it.",
    )
    add_common_options(parser, "bundle folder to write (created; a folder already holding NeoSeg is refused without --resume)")
    parser.add_argument("--val-fraction", type=float, default=0.2, help="share of patients held out for validation (default 0.2)")
    parser.set_defaults(func=run_seg)


def run_seg(args) -> int:
    from neonet_core.config import load_config
    from neonet_core.errors import InputError
    from neonet_core.neoseg import train_seg
    from neonet_core.bundle import load_bundle

    if not 0.0 <= args.val_fraction < 1.0:
        raise InputError(None, f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    config = load_config(args.config)
    apply_overrides(config.seg.train, args)
    bundle_dir = train_seg(args.manifest, config, args.out, resume=args.resume, val_fraction=args.val_fraction)
    metrics = load_bundle(bundle_dir).info["metrics"]["seg"]
    dice = "n/a (no validation cases)" if metrics["val_dice"] is None else f"{metrics['val_dice']:.3f}"
    print(f"NeoSeg trained: best validation Dice {dice} at step {metrics['best_step']} of {metrics['steps']}; bundle {bundle_dir}")
    return 0


STAGES = [_register_seg]
# Modules under neonet_core.cli that add more stages with ``add_train_parsers(stages)``.
STAGE_MODULES = ["train_neogen", "train_cls"]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a NeoNet stage into a model bundle",
        description="Train one stage of NeoNet from a cohort manifest into a model bundle folder. Training uses the "
        "shared engine: device selection, bf16 autocast on CUDA, checkpoints with --resume, a progress bar "
        "(or JSON lines with --progress json), validation each epoch and best-model selection.",
    )
    stages = parser.add_subparsers(dest="stage", metavar="STAGE", required=True)
    for add in STAGES:
        add(stages)
    for name in STAGE_MODULES:
        importlib.import_module(f"neonet_core.cli.{name}").add_train_parsers(stages)
