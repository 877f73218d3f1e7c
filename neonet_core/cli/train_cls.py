"""``neonet train cls`` and ``neonet train all`` (added to the ``neonet train`` group by cli/train.py)."""

from __future__ import annotations

from pathlib import Path

from neonet_core.cli.train import add_common_options, config_from_args


def _common(parser, out_help: str) -> None:
    add_common_options(parser, out_help)
    parser.add_argument("--cv", type=Path, metavar="DIR", help="take the decision threshold (and CV metrics) from this `neonet cv` folder")


def add_train_parsers(train_subparsers) -> None:
    """Add ``cls`` and ``all`` to the ``neonet train`` subcommands."""
    cls = train_subparsers.add_parser(
        "cls",
        help="train the PNI classifier (PattenNet or a baseline) into a bundle",
        description="Train the classifier on the manifest's TLCR patches into a bundle. PattenNet uses the bundle's "
        "NeoGen autoencoder as its frozen encoder (run `neonet train ae` first); with --neogen (or the config's "
        "cls.neogen) the bundle's LDM and ControlNet balance the classes 1:1 with synthetic patches. Held-out training "
        "patients give the decision threshold (or --cv takes it from a cross-validation run of the same model).",
    )
    _common(cls, "bundle folder to add the classifier to")
    from neonet_core.neocls.models import classifier_names

    cls.add_argument("--model", choices=classifier_names(), help="classifier (default: the config's cls.model)")
    balance = cls.add_mutually_exclusive_group()
    balance.add_argument("--neogen", dest="neogen", action="store_true", default=None,
                         help="balance the classes 1:1 with NeoGen synthetic patches (default: the config's cls.neogen)")
    balance.add_argument("--no-neogen", dest="neogen", action="store_false", help="train on real patches only")
    cls.set_defaults(func=run_cls)

    everything = train_subparsers.add_parser(
        "all",
        help="train every stage (NeoSeg, NeoGen AE/LDM/ControlNet, the classifier) into one bundle",
        description="The whole pipeline into one complete bundle: NeoSeg (so the bundle can localise tumours in new "
        "cases), the NeoGen autoencoder, latent diffusion model and ControlNet (synthetic patches for `neonet generate` "
        "and the Slicer panel), and the config's classifier (cls.model; balanced 1:1 with synthetic patches when "
        "cls.neogen), with the decision threshold and the training-cohort summary. Resumable with --resume.",
    )
    _common(everything, "bundle folder to create (--epochs, --seed and --device apply to every stage)")
    everything.set_defaults(func=run_all)


def run_cls(args) -> int:
    from neonet_core.device import resolve_device
    from neonet_core.workflows.training import train_cls

    config = config_from_args(args, ("cls",))
    if args.model:
        config.cls.model = args.model
    bundle = train_cls(args.manifest, config, args.out, resolve_device(args.device), args.resume, neogen=args.neogen, cv_dir=args.cv)
    print(f"classifier added to bundle {bundle}")
    return 0


def run_all(args) -> int:
    from neonet_core.config import TRAINED_SECTIONS
    from neonet_core.device import resolve_device
    from neonet_core.workflows.training import train_all

    config = config_from_args(args, TRAINED_SECTIONS)
    bundle = train_all(args.manifest, config, args.out, resolve_device(args.device), resume=args.resume, cv_dir=args.cv)
    print(f"bundle ready: {bundle} (try `neonet predict --bundle {bundle} --image IMAGE --out DIR`)")
    return 0
