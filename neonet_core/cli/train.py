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
    from neonet_core.device import add_device_option

    parser.add_argument("--manifest", type=Path, required=True, help="cohort manifest CSV (case_id,image,tumor_mask,...)")
    parser.add_argument("--config", default="tiny", help="preset name (tiny, paper) or a JSON config file (default tiny)")
    parser.add_argument("--out", type=Path, required=True, help=default_out_help)
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    add_device_option(parser)
    parser.add_argument("--epochs", type=int, default=None, help="override the config's number of epochs")
    parser.add_argument("--seed", type=int, default=None, help="override the config's seed (the hold-out, synthetic draws and every stage)")


def config_from_args(args, sections):
    """The config ``--config`` names with ``--epochs`` (for ``sections``) and ``--seed`` applied."""
    from neonet_core.config import load_config

    return load_config(args.config).with_overrides(epochs=args.epochs, seed=args.seed, sections=sections)


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
    parser.add_argument("--val-fraction", type=float, default=0.2, help="share of patients held out for validation by every stage "
                        "trained into this bundle (default 0.2; the hold-out is saved as OUT/splits.json)")
    parser.set_defaults(func=run_seg)


def run_seg(args) -> int:
    from neonet_core.bundle import load_bundle
    from neonet_core.device import resolve_device
    from neonet_core.errors import InputError
    from neonet_core.workflows.training import train_stage

    if not 0.0 <= args.val_fraction < 1.0:
        raise InputError(None, f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    config = config_from_args(args, ("seg",))
    config.val_fraction = args.val_fraction
    bundle_dir = train_stage("seg", args.manifest, config, args.out, resolve_device(args.device), resume=args.resume)
    summary = load_bundle(bundle_dir).info["training"]["seg"]
    dice = "n/a (no validation cases)" if summary["best_score"] is None else f"{summary['best_score']:.3f}"
    print(f"NeoSeg trained: best validation Dice {dice} at step {summary['best_step']} of {summary['steps']}; bundle {bundle_dir}")
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
