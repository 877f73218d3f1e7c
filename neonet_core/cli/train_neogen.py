"""``neonet train ae|ldm|controlnet``: the three NeoGen stages, each into the same bundle folder.

:func:`add_train_parsers` adds the three subparsers to the ``neonet train`` group.
"""

from __future__ import annotations

from neonet_core.cli.train import add_common_options

_STAGES = {
    "ae": (
        "train the NeoGen autoencoder (AutoencoderKL, 4x)",
        "Train the NeoGen autoencoder (MONAI AutoencoderKL, 3D, 4x downsampling; L1 + KL, optional patch-adversarial "
        "loss after a warm-up) on the normalised TLCR patches of every real case in the manifest. A share of the "
        "patients (the bundle's hold-out, OUT/splits.json, shared by every stage) is held out; the weights with the best validation PSNR go into the bundle "
        "folder --out as autoencoder.safetensors, then every patch (and its 8 flip variants) is encoded once into the "
        "latent cache OUT/runs/latents.safetensors for the diffusion stages. Run folder: OUT/runs/ae.",
    ),
    "ldm": (
        "train the NeoGen class-conditional latent diffusion model",
        "Train the class-conditional latent diffusion UNet (MONAI DiffusionModelUNet, class = PNI label; rectified "
        "flow by default, DDPM/DDIM by config) on the cached latents of the bundle's autoencoder (rebuilt if the "
        "cache does not match the manifest or the autoencoder). Needs `neonet train ae` into the same bundle first "
        "and a label for every case. Adds ldm.safetensors with the latent scale factor. Run folder: OUT/runs/ldm.",
    ),
    "controlnet": (
        "train the NeoGen mask-conditioned ControlNet",
        "Train a MONAI ControlNet initialised from the LDM UNet (which stays frozen), conditioned on one-hot masks "
        "of the patch (tumour, liver, bile duct, vessel). Needs `neonet train ae` and `neonet train ldm` into the "
        "same bundle first. Adds controlnet.safetensors. Run folder: OUT/runs/controlnet.",
    ),
}


def add_train_parsers(train_subparsers) -> None:
    """Add ``ae``, ``ldm`` and ``controlnet`` to the ``neonet train`` subparsers."""
    for stage, (help_text, description) in _STAGES.items():
        parser = train_subparsers.add_parser(stage, help=help_text, description=description)
        add_common_options(parser, "bundle folder (the NeoGen stages add their networks to the same folder)")
        parser.set_defaults(func=run, neogen_stage=stage)


def run(args) -> int:
    from neonet_core.bundle import load_bundle
    from neonet_core.cli.train import config_from_args
    from neonet_core.device import resolve_device
    from neonet_core.workflows.training import train_stage

    config = config_from_args(args, (args.neogen_stage,))
    bundle_dir = train_stage(args.neogen_stage, args.manifest, config, args.out, resolve_device(args.device), resume=args.resume)
    summary = load_bundle(bundle_dir).info["training"][args.neogen_stage]
    shown = ", ".join(f"{k} {v:.4g}" for k, v in summary["validation"].items() if k != "score") or "no validation cases"
    print(f"NeoGen {args.neogen_stage} trained: {summary['steps']} steps, best at step {summary['best_step']} ({shown}); bundle {bundle_dir}")
    return 0
